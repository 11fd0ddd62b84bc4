from __future__ import annotations

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from filmrec.serving.deps import ReadinessDep
from filmrec.serving.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthOut)
async def health() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut()


@router.get("/ready", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def ready(probe: ReadinessDep, response: Response) -> ReadyOut:
    """Readiness: a model is loaded; each dependency with its status and latency."""
    report, model_loaded = probe.readiness()
    if not model_loaded:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
