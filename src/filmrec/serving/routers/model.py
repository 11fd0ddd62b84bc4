from __future__ import annotations

from fastapi import APIRouter

from filmrec.serving import responses
from filmrec.serving.deps import ModelDep
from filmrec.serving.schemas import ModelOut

router = APIRouter(prefix="/model", tags=["model"])


@router.get("", response_model=ModelOut, responses=responses.NO_MODEL)
def get_model_info(model: ModelDep) -> ModelOut:
    return ModelOut(
        name=model.name,
        version=model.version,
        family=model.family,
        run_id=model.run_id,
        metrics=model.metrics,
        created_at=model.created_at,
        loaded_at=model.loaded_at,
        n_users=model.recommender.n_users,
        n_items=model.recommender.n_items,
    )
