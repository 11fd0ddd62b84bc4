"""Turning model output into responses: online state, cache, the model, then titles.

The user's online state (ratings the model lacks) comes first: its version is part
of the cache key, and its ratings are folded in when scoring. Every dependency on
this path degrades instead of failing: an online state or cache error means
computing from the model alone, a database error means items without titles.

/recommendations answers are JSON bytes (orjson), serialised once when a list is
computed: the caches store the body a hit returns, and a hit returns it as stored.
With the online state in this process the cache key is known without I/O, so a hit
in the small LRU (serving/hit_cache.py) is answered on the event loop, no thread hop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import anyio.to_thread
import orjson

from filmrec.metadata.store import MovieInfo
from filmrec.model.recommender import Recommendations
from filmrec.serving import metrics
from filmrec.serving.cache import RecommendationCache, recommendation_key
from filmrec.serving.hit_cache import HitCache
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


def response_body(response: RecommendationsOut) -> bytes:
    """A /recommendations body as the route returns it (validated when it was built)."""
    return orjson.dumps(response.model_dump(mode="json"))


def cached_body(response: RecommendationsOut) -> bytes:
    """The body a cache hit returns: the computed one, except that it says `source: cache`."""
    return response_body(response.model_copy(update={"source": "cache"}))


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
        hit_cache: HitCache | None = None,
    ) -> None:
        self.cache = cache
        self.hit_cache = hit_cache
        # The in-process online state is a dict lookup: safe on the event loop. Redis's
        # is a network round trip, so it (and the hit it decides) runs on a thread.
        self._state_is_local = online is None or online.name == "in-process"
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

    def _cache_get(self, key: str) -> bytes | None:
        try:
            value = self.cache.get(key)
        except Exception as error:  # a cache outage degrades to computing, never to a 500
            self._cache_failed(error, "get")
            return None
        metrics.CACHE_REQUESTS.labels(result="hit" if value is not None else "miss").inc()
        # Set on success too, so the gauge shows the cache back without waiting for /ready.
        metrics.DEPENDENCY_UP.labels(dependency="cache").set(1)
        return value

    def _cache_set(self, key: str, value: bytes) -> None:
        if self.hit_cache is not None:
            self.hit_cache.put(key, value)
        try:
            self.cache.set(key, value, ttl_seconds=self.cache_ttl_seconds)
        except Exception as error:
            self._cache_failed(error, "set")

    def _hit(self, key: str) -> bytes | None:
        """The in-process LRU: bytes already held, so no lock is held across I/O."""
        if self.hit_cache is None:
            return None
        body = self.hit_cache.get(key)
        metrics.HIT_CACHE_REQUESTS.labels(result="hit" if body is not None else "miss").inc()
        if body is not None:
            # A hit of the caches as a whole: the hit ratio on the dashboard counts it.
            metrics.CACHE_REQUESTS.labels(result="hit").inc()
        return body

    def _cached(self, key: str, *, lru_checked: bool = False) -> bytes | None:
        """The cached body, from the LRU or else the shared cache (which then fills the LRU).

        The key carries the value format (cache.KEY_PREFIX), so what is stored under
        it is this code's body: returned without decoding it."""
        body = None if lru_checked else self._hit(key)
        if body is None:
            body = self._cache_get(key)
            if body is not None and self.hit_cache is not None:
                self.hit_cache.put(key, body)
        if body is not None:
            metrics.RECOMMENDATIONS_SERVED.labels(strategy="cache").inc()
        return body

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
    @staticmethod
    def _key(model: LoadedModel, user_state: UserOnlineState, *, user_id: int, k: int) -> str:
        return recommendation_key(
            model_name=model.name,
            model_version=model.version,
            user_id=user_id,
            k=k,
            state_version=user_state.version,
        )

    def _cached_or_scored(
        self, model: LoadedModel, *, user_id: int, k: int, user_state: UserOnlineState | None = None
    ) -> bytes | _Scored:
        # Given a state, recommend() has already missed the LRU on the event loop.
        lru_checked = user_state is not None
        user_state = user_state if user_state is not None else self.online_state(user_id)
        key = self._key(model, user_state, user_id=user_id, k=k)
        cached = self._cached(key, lru_checked=lru_checked)
        self.visibility.served(user_id)
        if cached is not None:
            return cached
        recs = model.recommender.recommend(user_id, k=k, online=user_state.as_online())
        metrics.RECOMMENDATIONS_SERVED.labels(strategy=recs.strategy).inc()
        if recs.strategy == "fold-in":
            metrics.FOLD_INS.inc()
        return _Scored(recs, key)

    def _titled(self, model: LoadedModel, scored: _Scored, *, user_id: int, k: int) -> bytes:
        info = self.movies.get_many(scored.recs.movie_ids.tolist())
        response = recommendations_out(model, scored.recs, info, user_id=user_id, k=k)
        # A list without titles (database down) is served but not cached: it would
        # outlive the outage by the whole TTL.
        if info is not None:
            self._cache_set(scored.key, cached_body(response))
        return response_body(response)

    async def recommend(self, model: LoadedModel, *, user_id: int, k: int) -> bytes:
        """The /recommendations body as JSON bytes (schemas.RecommendationsOut)."""
        user_state: UserOnlineState | None = None
        if self._state_is_local and self.hit_cache is not None:
            user_state = self.online_state(user_id)
            body = self._hit(self._key(model, user_state, user_id=user_id, k=k))
            if body is not None:
                metrics.RECOMMENDATIONS_SERVED.labels(strategy="cache").inc()
                self.visibility.served(user_id)
                return body
        step = partial(self._cached_or_scored, model, user_id=user_id, k=k, user_state=user_state)
        result = await anyio.to_thread.run_sync(step, limiter=self.limiter)
        if isinstance(result, bytes):
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
