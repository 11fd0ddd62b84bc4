"""Turning model output into responses: cache first, then the model, then titles.

The user's online state (ratings the model lacks) comes before the cache: its
version is part of the cache key, and the ratings are folded in when scoring.

Every dependency on this path (cache, metadata database) degrades instead of failing:
a cache error means computing the list, a database error means items without titles.
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
from filmrec.serving.breaker import CircuitOpenError
from filmrec.serving.cache import recommendation_key
from filmrec.serving.model_holder import LoadedModel
from filmrec.serving.online_state import EMPTY_STATE, UserOnlineState
from filmrec.serving.schemas import RecommendationsOut, ScoredMovieOut, SimilarMoviesOut
from filmrec.serving.state import AppState

log = logging.getLogger(__name__)


def _cache_failed(error: Exception, operation: str) -> None:
    metrics.CACHE_REQUESTS.labels(result="error").inc()
    metrics.DEPENDENCY_UP.labels(dependency="cache").set(0)
    log.debug("cache %s failed: %s", operation, error)


def _cache_get(state: AppState, key: str) -> dict[str, Any] | None:
    try:
        value = state.cache.get(key)
    except Exception as error:  # a cache outage degrades to computing, never to a 500
        _cache_failed(error, "get")
        return None
    metrics.CACHE_REQUESTS.labels(result="hit" if value is not None else "miss").inc()
    # Set on success too, so the gauge shows the cache back without waiting for /ready.
    metrics.DEPENDENCY_UP.labels(dependency="cache").set(1)
    return value


def _cache_set(state: AppState, key: str, value: dict[str, Any]) -> None:
    try:
        state.cache.set(key, value, ttl_seconds=state.settings.cache_ttl_seconds)
    except Exception as error:
        _cache_failed(error, "set")


def movie_metadata(state: AppState, movie_ids: Sequence[int]) -> Mapping[int, MovieInfo] | None:
    """Titles for `movie_ids`; None when the database is down (behind a breaker)."""
    try:
        return state.db_breaker.call(lambda: state.movies.get_many(movie_ids))
    except CircuitOpenError:  # already logged when the breaker opened; not once per request
        metrics.DEPENDENCY_UP.labels(dependency="database").set(0)
        return None
    except Exception as error:  # no titles is better than no recommendations
        metrics.DEPENDENCY_UP.labels(dependency="database").set(0)
        log.warning("movie metadata unavailable: %s", error)
        return None


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


def _cached(state: AppState, key: str) -> RecommendationsOut | None:
    """The cached response, or None; an entry that no longer validates is a miss."""
    cached = _cache_get(state, key)
    if cached is None:
        return None
    try:
        response = RecommendationsOut.model_validate(cached | {"source": "cache"})
    except (ValidationError, TypeError) as error:  # another schema, another writer: recompute
        _cache_failed(error, "decode")
        return None
    metrics.RECOMMENDATIONS_SERVED.labels(strategy="cache").inc()
    return response


def online_state(state: AppState, user_id: int) -> UserOnlineState:
    """The user's ratings the model lacks; none when the state is off or unreachable."""
    if state.online is None:
        return EMPTY_STATE
    try:
        user_state = state.online.get(user_id)
    except Exception as error:  # degrade to the model alone: stale for this user, not down
        metrics.DEPENDENCY_UP.labels(dependency="online_state").set(0)
        log.debug("online state unavailable: %s", error)
        return EMPTY_STATE
    return user_state


@dataclass(frozen=True)
class _Scored:
    recs: Recommendations
    key: str


def _cached_or_scored(
    state: AppState, model: LoadedModel, *, user_id: int, k: int
) -> RecommendationsOut | _Scored:
    user_state = online_state(state, user_id)
    key = recommendation_key(
        model_name=model.name,
        model_version=model.version,
        user_id=user_id,
        k=k,
        state_version=user_state.version,
    )
    cached = _cached(state, key)
    if cached is not None:
        state.visibility.served(user_id)
        return cached
    recs = model.recommender.recommend(user_id, k=k, online=user_state.as_online())
    state.visibility.served(user_id)
    metrics.RECOMMENDATIONS_SERVED.labels(strategy=recs.strategy).inc()
    if recs.strategy == "fold-in":
        metrics.FOLD_INS.inc()
    return _Scored(recs, key)


def _titled(
    state: AppState, model: LoadedModel, recs: Recommendations, *, key: str, user_id: int, k: int
) -> RecommendationsOut:
    info = movie_metadata(state, recs.movie_ids.tolist())
    response = recommendations_out(model, recs, info, user_id=user_id, k=k)
    # A list without titles (database down) is served but not cached: it would
    # outlive the outage by the whole TTL.
    if info is not None:
        _cache_set(state, key, response.model_dump(mode="json"))
    return response


async def recommend_for_user(
    state: AppState, model: LoadedModel, *, user_id: int, k: int
) -> RecommendationsOut:
    """Online state, cache, else the model, then titles; blocking steps off the event loop.

    The online-state read, the cache lookup and the scoring run on the few scoring
    threads (SCORING_THREADS): they hold the GIL, or wait briefly on Redis (its own
    short timeout and retry pause). The title lookup waits on the database, so it
    runs on the shared thread pool: a slow database must not hold the scoring
    threads, and with them every hit.
    """
    step = partial(_cached_or_scored, state, model, user_id=user_id, k=k)
    result = await anyio.to_thread.run_sync(step, limiter=state.scoring_limiter)
    if isinstance(result, RecommendationsOut):
        return result
    titled = partial(_titled, state, model, result.recs, key=result.key, user_id=user_id, k=k)
    return await anyio.to_thread.run_sync(titled)


async def similar_movies(state: AppState, model: LoadedModel, *, movie_id: int, k: int) -> SimilarMoviesOut:
    """Nearest movies by item factors (scoring threads), then titles (shared pool)."""
    score = partial(model.recommender.similar, movie_id, k=k)
    recs = await anyio.to_thread.run_sync(score, limiter=state.scoring_limiter)
    movie_ids = recs.movie_ids.tolist()
    info = await anyio.to_thread.run_sync(movie_metadata, state, movie_ids)
    return SimilarMoviesOut(
        movie_id=movie_id,
        k=k,
        model_version=model.version,
        items=scored_items(info, movie_ids, recs.scores.tolist()),
    )
