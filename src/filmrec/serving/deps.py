"""FastAPI dependencies: narrow, typed, one per thing a route needs (Annotated aliases).

Each is built once in the lifespan (serving/app.py) and read from the app here; a
test replaces any of them with `app.dependency_overrides[get_x] = ...`.

All are `async def` although they never await: FastAPI runs a plain `def`
dependency in its thread pool, and a thread hop per dependency (with the GIL
contended by every other request's hops) costs more than the work they guard.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from filmrec.serving.health_checks import ReadinessProbe
from filmrec.serving.loaded_model import LoadedModel
from filmrec.serving.movie_lookup import MovieLookup
from filmrec.serving.rating_intake import RatingIntake
from filmrec.serving.recommendations import RecommendationService
from filmrec.serving.state import AppState


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.filmrec
    return state


async def get_model(request: Request) -> LoadedModel:
    model = _state(request).holder.current
    if model is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no model is loaded yet: train one (make train) and the API will pick it up",
        )
    return model


async def get_recommendations(request: Request) -> RecommendationService:
    return _state(request).recommendations


async def get_movies(request: Request) -> MovieLookup:
    return _state(request).movies


async def get_rating_intake(request: Request) -> RatingIntake:
    return _state(request).intake


async def get_readiness(request: Request) -> ReadinessProbe:
    return _state(request).readiness


ModelDep = Annotated[LoadedModel, Depends(get_model)]
RecommendationsDep = Annotated[RecommendationService, Depends(get_recommendations)]
MoviesDep = Annotated[MovieLookup, Depends(get_movies)]
RatingIntakeDep = Annotated[RatingIntake, Depends(get_rating_intake)]
ReadinessDep = Annotated[ReadinessProbe, Depends(get_readiness)]
