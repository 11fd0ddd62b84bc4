"""Bulk cache warm-up: the top-N list of every known user, written in pipelined batches.

Run after a promotion (by the API when it swaps in a new champion, or by a DAG):

    python -m filmrec.serving.warmup          # warm the configured cache for the champion

The entries are exactly what a request would cache (same key, same body), so the
first request of every user after a model change is a cache hit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from filmrec.config import Settings, get_settings
from filmrec.metadata.store import MovieInfo, MovieStore
from filmrec.serving import metrics
from filmrec.serving.cache import RecommendationCache, build_cache, recommendation_key
from filmrec.serving.loaded_model import LoadedModel
from filmrec.serving.model_holder import load_champion
from filmrec.serving.recommendations import cached_body, recommendations_payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmupReport:
    model_version: str
    users: int
    entries: int
    k: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def warm_cache(
    settings: Settings | None = None,
    *,
    model: LoadedModel | None = None,
    cache: RecommendationCache | None = None,
    movies: MovieStore | None = None,
    k: int | None = None,
    batch_size: int = 1000,
) -> WarmupReport:
    """Write the top-`k` list of every user the model knows into the cache.

    Anything not given is built from `settings`: the registry's champion, the
    configured cache (Redis when REDIS_URL is set) and the metadata database.
    Raises if the cache or the database fails: a half-warm cache is fine, but the
    caller should know. Lists without titles are never written (as on the request path).
    """
    settings = settings or get_settings()
    k = k or settings.cache_warm_k
    model = model or load_champion(settings)
    cache = cache if cache is not None else build_cache(settings)
    if movies is None:
        movies = MovieStore.from_settings(settings)
    recommender = model.recommender
    start = time.perf_counter()
    info: dict[int, MovieInfo] = {}
    entries = 0
    user_ids = recommender.user_ids.tolist()
    try:
        for offset in range(0, len(user_ids), batch_size):
            batch = {
                user_id: recommender.recommend(user_id, k=k)
                for user_id in user_ids[offset : offset + batch_size]
            }
            # Metadata once per movie for the whole warm-up: few movies reach anyone's top-k.
            wanted = sorted({int(m) for recs in batch.values() for m in recs.movie_ids} - info.keys())
            info.update(movies.get_many(wanted) if wanted else {})
            values = {
                recommendation_key(
                    model_name=model.name, model_version=model.version, user_id=user_id, k=k
                ): cached_body(recommendations_payload(model, recs, info, user_id=user_id, k=k))
                for user_id, recs in batch.items()
            }
            cache.set_many(values, ttl_seconds=settings.cache_ttl_seconds)
            entries += len(values)
    except Exception:
        metrics.CACHE_WARMUPS.labels(result="failure").inc()
        raise
    seconds = time.perf_counter() - start
    metrics.CACHE_WARMUPS.labels(result="success").inc()
    metrics.CACHE_WARMUP_ENTRIES.inc(entries)
    report = WarmupReport(model.version, len(user_ids), entries, k, round(seconds, 3))
    log.info("cache warm-up: %s", report.as_dict())
    return report


def main() -> int:
    import json

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(warm_cache().as_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
