from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from filmrec.serving import metrics
from filmrec.serving.deps import StateDep
from filmrec.serving.schemas import DependencyOut, HealthOut, ReadyOut
from filmrec.serving.state import AppState

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
        seconds = time.perf_counter() - start
        metrics.DEPENDENCY_UP.labels(dependency=name).set(0)
        metrics.DEPENDENCY_LATENCY.labels(dependency=name).set(seconds)
        return DependencyOut(
            name=name,
            kind=kind,
            status="down",
            latency_ms=round(seconds * 1000, 2),
            detail=f"{type(error).__name__}: {error}"[:300],
        )
    seconds = time.perf_counter() - start
    metrics.DEPENDENCY_UP.labels(dependency=name).set(1)
    metrics.DEPENDENCY_LATENCY.labels(dependency=name).set(seconds)
    return DependencyOut(name=name, kind=kind, status="up", latency_ms=round(seconds * 1000, 2))


def _ping_database(state: AppState) -> None:
    # A direct ping, not through the breaker: /ready reports the truth, and a good
    # answer lets requests use the database again before the breaker's window ends.
    try:
        state.movies.ping()
    except Exception as error:
        state.db_breaker.record_failure(error)
        raise
    state.db_breaker.record_success()


def _ping_kafka(state: AppState) -> None:
    """A metadata request with a bounded timeout (the broker list and topics)."""
    from confluent_kafka.admin import AdminClient

    settings = state.settings
    timeout = settings.dependency_timeout_seconds
    if state.kafka_admin is None:
        # One client for the process: each AdminClient starts librdkafka threads.
        state.kafka_admin = AdminClient(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers or "",
                "socket.timeout.ms": max(10, int(timeout * 1000)),
                "log_level": 0,
            }
        )
    metadata = state.kafka_admin.list_topics(timeout=timeout)  # type: ignore[attr-defined]
    if not metadata.brokers:
        raise ConnectionError("no broker answered the metadata request")


def _registry(state: AppState) -> DependencyOut:
    """The registry as the poller last saw it (polled in the background, not here)."""
    settings = state.settings
    loader = state.loader
    up = loader.registry_up
    metrics.DEPENDENCY_UP.labels(dependency="model_registry").set(1 if up else 0)
    return DependencyOut(
        name="model_registry",
        kind="mlflow-server" if settings.mlflow_tracking_uri else "mlflow-local",
        status="up" if up else "down",
        latency_ms=loader.last_latency_ms,
        detail=loader.last_error,
    )


def _ratings_stream(state: AppState) -> DependencyOut:
    """The API's consumer of the ratings topic, as its thread last saw the broker."""
    stream = state.rating_stream
    assert stream is not None  # only listed when Kafka is configured
    up = stream.running and stream.last_error is None
    metrics.DEPENDENCY_UP.labels(dependency="ratings_stream").set(1 if up else 0)
    kind = f"consumer ({'shared group' if stream.shared else 'every partition'})"
    return DependencyOut(
        name="ratings_stream", kind=kind, status="up" if up else "down", detail=stream.last_error
    )


@router.get("/ready", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def ready(state: StateDep, response: Response) -> ReadyOut:
    """Readiness: a model is loaded; each dependency with its status and latency."""
    settings = state.settings
    dependencies = [
        _check("database", state.movies.engine.dialect.name, lambda: _ping_database(state)),
        _check("cache", state.cache.name, state.cache.ping),
        _registry(state),
    ]
    if settings.kafka_bootstrap_servers:
        dependencies.append(_check("kafka", "kafka", lambda: _ping_kafka(state)))
    if state.online is not None:
        dependencies.append(_check("online_state", state.online.name, state.online.ping))
    if state.rating_stream is not None:
        dependencies.append(_ratings_stream(state))
    model = state.holder.current
    overall: Literal["ready", "degraded", "not_ready"]
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
