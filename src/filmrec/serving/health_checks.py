"""Readiness probes: each dependency's status and latency, as GET /ready reports them.

Probes talk to the dependency directly (not through breakers) so /ready tells the
truth, and a good answer closes a breaker early so requests use it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from filmrec.config import Settings
from filmrec.serving import metrics
from filmrec.serving.cache import RecommendationCache
from filmrec.serving.model_holder import ChampionLoader, ModelHolder
from filmrec.serving.movie_lookup import MovieLookup
from filmrec.serving.online_state import OnlineStateStore
from filmrec.serving.rating_stream import RatingStreamConsumer
from filmrec.serving.schemas import DependencyOut, ReadyOut


def check(name: str, kind: str, probe: Callable[[], object]) -> DependencyOut:
    """Run one probe; its outcome also sets the dependency's gauges."""
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


class ReadinessProbe:
    """Everything GET /ready looks at, built once per process in the lifespan."""

    def __init__(
        self,
        *,
        settings: Settings,
        holder: ModelHolder,
        loader: ChampionLoader,
        movies: MovieLookup,
        cache: RecommendationCache,
        online: OnlineStateStore | None,
        rating_stream: RatingStreamConsumer | None,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.loader = loader
        self.movies = movies
        self.cache = cache
        self.online = online
        self.rating_stream = rating_stream
        self._kafka_admin: Any = None  # built on first use, only when Kafka is configured

    def _ping_kafka(self) -> None:
        """A metadata request with a bounded timeout (the broker list and topics)."""
        from confluent_kafka.admin import AdminClient

        timeout = self.settings.dependency_timeout_seconds
        if self._kafka_admin is None:
            # One client for the process: each AdminClient starts librdkafka threads.
            self._kafka_admin = AdminClient(
                {
                    "bootstrap.servers": self.settings.kafka_bootstrap_servers or "",
                    "socket.timeout.ms": max(10, int(timeout * 1000)),
                    "log_level": 0,
                }
            )
        metadata = self._kafka_admin.list_topics(timeout=timeout)
        if not metadata.brokers:
            raise ConnectionError("no broker answered the metadata request")

    def _registry(self) -> DependencyOut:
        """The registry as the poller last saw it (polled in the background, not here)."""
        up = self.loader.registry_up
        metrics.DEPENDENCY_UP.labels(dependency="model_registry").set(1 if up else 0)
        return DependencyOut(
            name="model_registry",
            kind="mlflow-server" if self.settings.mlflow_tracking_uri else "mlflow-local",
            status="up" if up else "down",
            latency_ms=self.loader.last_latency_ms,
            detail=self.loader.last_error,
        )

    def _ratings_stream(self, stream: RatingStreamConsumer) -> DependencyOut:
        """The API's consumer of the ratings topic, as its thread last saw the broker."""
        up = stream.running and stream.last_error is None
        metrics.DEPENDENCY_UP.labels(dependency="ratings_stream").set(1 if up else 0)
        kind = f"consumer ({'shared group' if stream.shared else 'every partition'})"
        return DependencyOut(
            name="ratings_stream", kind=kind, status="up" if up else "down", detail=stream.last_error
        )

    def readiness(self) -> tuple[ReadyOut, bool]:
        """(the report, whether a model is loaded)."""
        dependencies = [
            check("database", self.movies.store.engine.dialect.name, self.movies.ping),
            check("cache", self.cache.name, self.cache.ping),
            self._registry(),
        ]
        if self.settings.kafka_bootstrap_servers:
            dependencies.append(check("kafka", "kafka", self._ping_kafka))
        if self.online is not None:
            dependencies.append(check("online_state", self.online.name, self.online.ping))
        if self.rating_stream is not None:
            dependencies.append(self._ratings_stream(self.rating_stream))
        model = self.holder.current
        overall: Literal["ready", "degraded", "not_ready"]
        if model is None:
            overall = "not_ready"
        elif any(dep.status == "down" for dep in dependencies):
            overall = "degraded"
        else:
            overall = "ready"
        report = ReadyOut(
            status=overall,
            model_loaded=model is not None,
            model_version=model.version if model else None,
            dependencies=dependencies,
        )
        return report, model is not None
