"""Turning model output into responses: online state, cache, the model, then titles.

The user's online state (ratings the model lacks) comes first: its version is part
of the cache key, and its ratings are folded in when scoring. Every dependency on
this path degrades instead of failing: an online state or cache error means
computing from the model alone, a database error means items without titles.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio.to_thread
from pydantic import ValidationError

from filmrec.metadata.store import MovieInfo
from filmrec.model.recommender import Recommendations
from filmrec.serving import metrics
from filmrec.serving.cache import RecommendationCache, recommendation_key
from filmrec.serving.loaded_model import LoadedModel
from filmrec.serving.movie_lookup import MovieLookup
from filmrec.serving.online_state import EMPTY_STATE, OnlineStateStore, UserOnlineState, VisibilityTracker
from filmrec.serving.schemas import RecommendationsOut, ScoredMovieOut, SimilarMoviesOut

log = logging.getLogger(__name__)


def scored_items(
    info: Mapping[int, MovieInfo] | None, movie_ids: Sequence[int], scores: Sequence[float]
) -> list[ScoredMovieOut]:
    info = info or {}
    items = []
    for movie_id, score in zip(movie_ids, scores, strict=True):
        movie = info.get(movie_id)
        items.append(
            ScoredMovieOut(
                movie_id=movie_id,
                title=movie.title if movie else None,
                year=movie.year if movie else None,
                genres=movie.genres if movie else [],
                score=round(float(score), 6),
            )
        )
    return items


def recommendations_out(
    model: LoadedModel, recs: Recommendations, info: Mapping[int, MovieInfo] | None, *, user_id: int, k: int
) -> RecommendationsOut:
    """The response body as computed by the model (what the cache stores, too)."""
    return RecommendationsOut(
        user_id=user_id,
        k=k,
        strategy=recs.strategy,
        source="model",
        model_version=model.version,
        items=scored_items(info, recs.movie_ids.tolist(), recs.scores.tolist()),
    )


@dataclass(frozen=True)
class _Scored:
    recs: Recommendations
    key: str


class RecommendationService:
    """What /recommendations and /movies/{id}/similar need, and nothing else.

    Scoring and the cache/online-state reads run on the few scoring threads
    (`limiter`, SCORING_THREADS): they hold the GIL or wait briefly on Redis (its own
    short timeout and retry pause). Title lookups wait on the database, so they run
    on the shared thread pool: a slow database must not hold the scoring threads,
    and with them every cache hit.
    """

    def __init__(
        self,
        *,
        cache: RecommendationCache,
        movies: MovieLookup,
        online: OnlineStateStore | None,
        visibility: VisibilityTracker,
        cache_ttl_seconds: int,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.cache = cache
        self.movies = movies
        self.online = online
        self.visibility = visibility
        self.cache_ttl_seconds = cache_ttl_seconds
        self.limiter = limiter

    # -- the cache -------------------------------------------------------------------
    @staticmethod
    def _cache_failed(error: Exception, operation: str) -> None:
        metrics.CACHE_REQUESTS.labels(result="error").inc()
        metrics.DEPENDENCY_UP.labels(dependency="cache").set(0)
        log.debug("cache %s failed: %s", operation, error)

    def _cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            value = self.cache.get(key)
        except Exception as error:  # a cache outage degrades to computing, never to a 500
            self._cache_failed(error, "get")
            return None
        metrics.CACHE_REQUESTS.labels(result="hit" if value is not None else "miss").inc()
        # Set on success too, so the gauge shows the cache back without waiting for /ready.
        metrics.DEPENDENCY_UP.labels(dependency="cache").set(1)
        return value

    def _cache_set(self, key: str, value: dict[str, Any]) -> None:
        try:
            self.cache.set(key, value, ttl_seconds=self.cache_ttl_seconds)
        except Exception as error:
            self._cache_failed(error, "set")

    def _cached(self, key: str) -> RecommendationsOut | None:
        """The cached response, or None; an entry that no longer validates is a miss."""
        cached = self._cache_get(key)
        if cached is None:
            return None
        try:
            response = RecommendationsOut.model_validate(cached | {"source": "cache"})
        except (ValidationError, TypeError) as error:  # another schema, another writer: recompute
            self._cache_failed(error, "decode")
            return None
        metrics.RECOMMENDATIONS_SERVED.labels(strategy="cache").inc()
        return response

    # -- the online state ------------------------------------------------------------
    def online_state(self, user_id: int) -> UserOnlineState:
        """The user's ratings the model lacks; none when the state is off or unreachable."""
        if self.online is None:
            return EMPTY_STATE
        try:
            return self.online.get(user_id)
        except Exception as error:  # degrade to the model alone: stale for this user, not down
            metrics.DEPENDENCY_UP.labels(dependency="online_state").set(0)
            log.debug("online state unavailable: %s", error)
            return EMPTY_STATE

    # -- the two answers -------------------------------------------------------------
    def _cached_or_scored(self, model: LoadedModel, *, user_id: int, k: int) -> RecommendationsOut | _Scored:
        user_state = self.online_state(user_id)
        key = recommendation_key(
            model_name=model.name,
            model_version=model.version,
            user_id=user_id,
            k=k,
            state_version=user_state.version,
        )
        cached = self._cached(key)
        self.visibility.served(user_id)
        if cached is not None:
            return cached
        recs = model.recommender.recommend(user_id, k=k, online=user_state.as_online())
        metrics.RECOMMENDATIONS_SERVED.labels(strategy=recs.strategy).inc()
        if recs.strategy == "fold-in":
            metrics.FOLD_INS.inc()
        return _Scored(recs, key)

    def _titled(self, model: LoadedModel, scored: _Scored, *, user_id: int, k: int) -> RecommendationsOut:
        info = self.movies.get_many(scored.recs.movie_ids.tolist())
        response = recommendations_out(model, scored.recs, info, user_id=user_id, k=k)
        # A list without titles (database down) is served but not cached: it would
        # outlive the outage by the whole TTL.
        if info is not None:
            self._cache_set(scored.key, response.model_dump(mode="json"))
        return response

    async def recommend(self, model: LoadedModel, *, user_id: int, k: int) -> RecommendationsOut:
        step = partial(self._cached_or_scored, model, user_id=user_id, k=k)
        result = await anyio.to_thread.run_sync(step, limiter=self.limiter)
        if isinstance(result, RecommendationsOut):
            return result
        titled = partial(self._titled, model, result, user_id=user_id, k=k)
        return await anyio.to_thread.run_sync(titled)

    async def similar(self, model: LoadedModel, *, movie_id: int, k: int) -> SimilarMoviesOut:
        """Nearest movies by item factors (scoring threads), then titles (shared pool)."""
        score = partial(model.recommender.similar, movie_id, k=k)
        recs = await anyio.to_thread.run_sync(score, limiter=self.limiter)
        movie_ids = recs.movie_ids.tolist()
        info = await anyio.to_thread.run_sync(self.movies.get_many, movie_ids)
        return SimilarMoviesOut(
            movie_id=movie_id,
            k=k,
            model_version=model.version,
            items=scored_items(info, movie_ids, recs.scores.tolist()),
        )
