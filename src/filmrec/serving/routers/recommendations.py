from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from filmrec.serving import responses
from filmrec.serving.deps import ModelDep, RecommendationsDep
from filmrec.serving.schemas import RecommendationsOut

router = APIRouter(prefix="/recommendations", tags=["recommendations"])

UserId = Annotated[int, Path(gt=0, lt=2**31, description="MovieLens user id")]
TopK = Annotated[int, Query(ge=1, le=100, description="How many movies to return")]


@router.get(
    "/{user_id}",
    response_model=RecommendationsOut,
    responses={**responses.INVALID, **responses.NO_MODEL},
)
async def get_recommendations(
    user_id: UserId, service: RecommendationsDep, model: ModelDep, k: TopK = 10
) -> Response:
    """Top-k movies the user has not rated, with ratings the model has not seen folded in;
    the popular ones for a user with no ratings."""
    # The service answers with the JSON body itself (a cache hit as stored); returned as
    # is, it skips FastAPI's re-validation. response_model above still documents it.
    body = await service.recommend(model, user_id=user_id, k=k)
    return Response(content=body, media_type="application/json")
