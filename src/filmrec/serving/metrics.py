"""Prometheus metrics of the API (route templates as labels, never raw paths)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase

if TYPE_CHECKING:
    from filmrec.serving.loaded_model import LoadedModel

_Metric = TypeVar("_Metric", bound=MetricWrapperBase)


@functools.cache
def labelled(metric: _Metric, *values: str) -> _Metric:
    """`metric.labels(*values)`, looked up once per label set.

    prometheus_client's labels() validates the values, builds a key and takes a lock
    on every call: two to five µs, several times a request on the hot paths. Only for
    label values from a small fixed set (route templates, statuses, results)."""
    return metric.labels(*values)


HTTP_REQUESTS = Counter(
    "filmrec_http_requests",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "filmrec_http_request_duration_seconds",
    "HTTP request latency by route template and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RECOMMENDATIONS_SERVED = Counter(
    "filmrec_recommendations_served", "Recommendation lists served, by strategy", ["strategy"]
)
CACHE_REQUESTS = Counter("filmrec_cache_requests", "Cache lookups by result", ["result"])
# The in-process LRU in front of the cache (serving/hit_cache.py); its hits also count
# as filmrec_cache_requests hits, so the cache hit ratio covers both layers.
HIT_CACHE_REQUESTS = Counter(
    "filmrec_hit_cache_requests", "In-process LRU lookups of response bodies, by result", ["result"]
)
CACHE_WARMUPS = Counter(
    "filmrec_cache_warmups", "Bulk cache warm-ups after a model swap, by result", ["result"]
)
CACHE_WARMUP_ENTRIES = Counter("filmrec_cache_warmup_entries", "Recommendation lists written by warm-ups")
MODEL_INFO = Gauge("filmrec_model_info", "The model being served (value 1)", ["name", "version", "run_id"])
MODEL_CREATED = Gauge("filmrec_model_created_timestamp_seconds", "When the served version was registered")
MODEL_AGE = Gauge("filmrec_model_age_seconds", "Seconds since the served version was registered")
MODEL_AGE.set_function(
    lambda: max(0.0, time.time() - MODEL_CREATED._value.get()) if MODEL_CREATED._value.get() else 0.0
)
MODEL_METRIC = Gauge("filmrec_model_metric", "Offline metrics of the served model", ["metric"])
MODEL_RELOADS = Counter("filmrec_model_reloads", "Successful model (re)loads")
MODEL_RELOAD_FAILURES = Counter("filmrec_model_reload_failures", "Failed model loads or registry checks")
# Champions the API would not serve (serving/model_holder.py), once per version and tag:
# mismatch, its artifacts do not hash to its artifacts_sha256 tag; unverified, no tag.
MODEL_REFUSED = Counter(
    "filmrec_model_refused",
    "Champion versions refused by their artifacts' hash, by reason (mismatch, unverified)",
    ["reason"],
)
for _reason in ("mismatch", "unverified"):
    MODEL_REFUSED.labels(reason=_reason)
MODEL_CHAMPION_REFUSED = Gauge(
    "filmrec_model_champion_refused",
    "1 while the registry's champion is refused (and another model, or none, serves)",
)
KAFKA_PUBLISH_FAILURES = Counter("filmrec_kafka_publish_failures", "Rating events Kafka did not take")
DEPENDENCY_UP = Gauge("filmrec_dependency_up", "1 when a dependency answered its last check", ["dependency"])
DEPENDENCY_LATENCY = Gauge(
    "filmrec_dependency_check_seconds", "How long the last /ready check of a dependency took", ["dependency"]
)

# Security: API keys, per-key rate limits, request size (serving/api_keys.py, rate_limit.py).
AUTH_FAILURES = Counter(
    "filmrec_auth_failures", "Requests refused for their API key, by reason (missing, invalid)", ["reason"]
)
RATE_LIMITED = Counter(
    "filmrec_rate_limited", "Requests refused with 429 by the per-key rate limit", ["scope"]
)
RATE_LIMIT_ERRORS = Counter(
    "filmrec_rate_limit_errors", "Rate limit checks that could not reach their storage (request let through)"
)
BODY_TOO_LARGE = Counter("filmrec_request_body_too_large", "Requests refused with 413 for their body size")

# The real-time loop: the API's consumer of the ratings topic and fold-in scoring.
ONLINE_EVENTS = Counter(
    "filmrec_online_events",
    "Rating events the API's consumer read, by outcome (applied, duplicate_or_older, in_model, invalid)",
    ["outcome"],
)
ONLINE_CONSUMER_LAG = Gauge(
    "filmrec_online_consumer_lag_messages", "Messages on the ratings topic the API's consumer has not read"
)
ONLINE_STATE_USERS = Gauge("filmrec_online_state_users", "Users with ratings the served model does not have")
ONLINE_STATE_RATINGS = Gauge("filmrec_online_state_ratings", "Ratings held in the online state")
ONLINE_STATE_PRUNED = Counter(
    "filmrec_online_state_pruned", "Online ratings dropped because a newly served model contains them"
)
# The per-process mirror of the online-state versions Redis pushes (serving/online_versions.py):
# while unsynced, every /recommendations request reads the user's version from Redis on a thread.
ONLINE_VERSIONS_SYNCED = Gauge(
    "filmrec_online_versions_synced", "1 while this process's mirror of online-state versions is in sync"
)
ONLINE_VERSIONS_SYNCS = Counter(
    "filmrec_online_versions_syncs", "Times the online-state version mirror subscribed and read a snapshot"
)
FOLD_INS = Counter("filmrec_fold_ins", "User vectors solved at request time from ratings the model lacks")
EVENT_VISIBILITY = Histogram(
    "filmrec_event_visibility_seconds",
    "From a rating event's publication to the first /recommendations answer computed with it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)

# Two coverages, two definitions (docs/models.md): scored_coverage_at_10 over the movies
# the model scores and the test users' lists; catalogue_coverage_at_10 over every movie
# in train and every user's list.
OFFLINE_METRICS = (
    "ndcg_at_10",
    "precision_at_10",
    "recall_at_10",
    "map_at_10",
    "scored_coverage_at_10",
    "catalogue_coverage_at_10",
)


def observe_model(model: LoadedModel) -> None:
    MODEL_INFO.clear()
    MODEL_INFO.labels(name=model.name, version=model.version, run_id=model.run_id or "").set(1)
    MODEL_CREATED.set(model.created_at.timestamp() if model.created_at else time.time())
    for metric in OFFLINE_METRICS:
        if metric in model.metrics:
            MODEL_METRIC.labels(metric=metric).set(model.metrics[metric])


class IngestionStatusCollector:
    """Re-exposes the status file the Kafka -> Delta ingestion job leaves in the lakehouse.

    The job (scheduled availableNow runs, or the continuous query, which rewrites the
    file after every micro-batch and on a heartbeat) has no endpoint of its own; the
    API, which Prometheus scrapes anyway, reads the file at scrape time.
    """

    def __init__(self, status_file: Path) -> None:
        self.status_file = status_file

    def collect(self) -> Iterator[Metric]:
        from filmrec.ingestion.ingest_status import IngestionMode, running_mode

        try:
            status = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return  # no ingestion has run yet: no series rather than made-up zeros
        events = CounterMetricFamily(
            "filmrec_ingestion_events", "Rating events ingested from Kafka, by outcome", labels=["outcome"]
        )
        for outcome, value in (status.get("totals") or {}).items():
            events.add_metric([outcome], float(value))
        yield events
        if status.get("batches_total") is not None:
            yield CounterMetricFamily(
                "filmrec_ingestion_batches", "Micro-batches the ingestion job has written, over all runs",
                value=float(status["batches_total"]),
            )  # fmt: skip
        yield GaugeMetricFamily(
            "filmrec_ingestion_lag_messages", "Kafka messages not yet ingested, at the last run",
            value=float(status.get("lag") or 0),
        )  # fmt: skip
        # Both modes, always: 0 for the one not running, so a panel or an alert sees a
        # mode stop rather than a series vanish.
        running = GaugeMetricFamily(
            "filmrec_ingestion_running",
            "1 while an ingestion run in this mode is running (a fresh heartbeat in the status file)",
            labels=["mode"],
        )
        current = running_mode(status)
        for mode in IngestionMode:
            running.add_metric([mode.value], 1.0 if current is mode else 0.0)
        yield running
        if status.get("last_batch_seconds") is not None:
            yield GaugeMetricFamily(
                "filmrec_ingestion_batch_duration_seconds", "How long the last micro-batch took to write",
                value=float(status["last_batch_seconds"]),
            )  # fmt: skip
        timestamps = {
            "last_batch_at": (
                "filmrec_ingestion_last_batch_timestamp_seconds",
                "When the last micro-batch was written",
            ),
            "last_success_at": (
                "filmrec_ingestion_last_success_timestamp_seconds",
                "When the ingestion job last succeeded (a continuous job: last seen caught up)",
            ),
        }
        for key, (name, documentation) in timestamps.items():
            if status.get(key):
                moment = datetime.fromisoformat(str(status[key]).replace("Z", "+00:00"))
                yield GaugeMetricFamily(name, documentation, value=moment.timestamp())


def register_ingestion_status(status_file: Path) -> None:
    """Register the collector once per process (re-registering would raise)."""
    global _INGESTION_COLLECTOR
    if _INGESTION_COLLECTOR is None:
        _INGESTION_COLLECTOR = IngestionStatusCollector(status_file)
        REGISTRY.register(_INGESTION_COLLECTOR)
    else:
        _INGESTION_COLLECTOR.status_file = status_file


_INGESTION_COLLECTOR: IngestionStatusCollector | None = None
