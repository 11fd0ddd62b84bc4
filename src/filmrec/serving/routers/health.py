from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from filmrec.serving import metrics
from filmrec.serving.deps import StateDep
from filmrec.serving.schemas import DependencyOut, HealthOut, ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthOut)
def health() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut()


def _check(name: str, kind: str, probe: Callable[[], object]) -> DependencyOut:
    start = time.perf_counter()
    try:
        probe()
    except Exception as error:
        metrics.DEPENDENCY_UP.labels(dependency=name).set(0)
        return DependencyOut(
            name=name,
            kind=kind,
            status="down",
            latency_ms=round((time.perf_counter() - start) * 1000, 2),
            detail=f"{type(error).__name__}: {error}"[:300],
        )
    metrics.DEPENDENCY_UP.labels(dependency=name).set(1)
    return DependencyOut(
        name=name, kind=kind, status="up", latency_ms=round((time.perf_counter() - start) * 1000, 2)
    )


@router.get("/ready", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def ready(state: StateDep, response: Response) -> ReadyOut:
    """Readiness: a model is loaded; each dependency with its status and latency."""
    settings = state.settings
    dependencies = [
        _check("database", "postgresql" if settings.database_url else "sqlite", state.movies.ping),
        _check("cache", state.cache.name, state.cache.ping),
    ]
    registry = DependencyOut(
        name="model_registry",
        kind="mlflow-server" if settings.mlflow_tracking_uri else "mlflow-local",
        status="down" if state.loader.last_error else "up",
        detail=state.loader.last_error,
    )
    dependencies.append(registry)
    model = state.holder.current
    if model is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        overall = "not_ready"
    elif any(dep.status == "down" for dep in dependencies):
        overall = "degraded"
    else:
        overall = "ready"
    return ReadyOut(
        status=overall,
        model_loaded=model is not None,
        model_version=model.version if model else None,
        dependencies=dependencies,
    )


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
