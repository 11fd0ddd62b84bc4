"""FastAPI dependencies, as Annotated aliases used by every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from filmrec.serving.model_holder import LoadedModel
from filmrec.serving.state import AppState


# Both are `async def` although they never await: FastAPI runs a plain `def`
# dependency in its thread pool, and two thread hops per request (with the GIL
# contended by every other request's hops) cost more than the work they guard.
async def get_state(request: Request) -> AppState:
    return request.app.state.filmrec


async def get_model(state: Annotated[AppState, Depends(get_state)]) -> LoadedModel:
    model = state.holder.current
    if model is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no model is loaded yet: train one (make train) and the API will pick it up",
        )
    return model


StateDep = Annotated[AppState, Depends(get_state)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
