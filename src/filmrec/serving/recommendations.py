"""Turning model output into responses: cache first, then the model, then titles.

Every dependency on this path (cache, metadata database) degrades instead of failing:
a cache error means computing the list, a database error means items without titles.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from filmrec.metadata.store import MovieInfo
from filmrec.model.recommender import Recommendations
from filmrec.serving import metrics
from filmrec.serving.cache import recommendation_key
from filmrec.serving.model_holder import LoadedModel
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


def recommend_for_user(state: AppState, model: LoadedModel, *, user_id: int, k: int) -> RecommendationsOut:
    key = recommendation_key(model_name=model.name, model_version=model.version, user_id=user_id, k=k)
    cached = _cache_get(state, key)
    if cached is not None:
        metrics.RECOMMENDATIONS_SERVED.labels(strategy="cache").inc()
        return RecommendationsOut.model_validate(cached | {"source": "cache"})
    recs = model.recommender.recommend(user_id, k=k)
    metrics.RECOMMENDATIONS_SERVED.labels(strategy=recs.strategy).inc()
    info = movie_metadata(state, recs.movie_ids.tolist())
    response = recommendations_out(model, recs, info, user_id=user_id, k=k)
    # A list without titles (database down) is served but not cached: it would
    # outlive the outage by the whole TTL.
    if info is not None:
        _cache_set(state, key, response.model_dump(mode="json"))
    return response


def similar_movies(state: AppState, model: LoadedModel, *, movie_id: int, k: int) -> SimilarMoviesOut:
    recs = model.recommender.similar(movie_id, k=k)
    return SimilarMoviesOut(
        movie_id=movie_id,
        k=k,
        model_version=model.version,
        items=scored_items(
            movie_metadata(state, recs.movie_ids.tolist()), recs.movie_ids.tolist(), recs.scores.tolist()
        ),
    )
