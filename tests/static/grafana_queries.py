"""Every PromQL query of the provisioned Grafana dashboards.

Used by the static dashboard tests (names and labels), and by
tests/integration/test_services_prometheus.py, which runs each query against a real
Prometheus scraping the API and checks that every API metric is there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"

# The metrics of the filmrec API (histograms also expose _bucket, _sum and _count) and
# Prometheus' own `up`: the only series dashboards and alerts may query.
API_METRICS = frozenset(
    {
        "filmrec_http_requests_total",
        "filmrec_http_request_duration_seconds",
        "filmrec_recommendations_served_total",
        "filmrec_cache_requests_total",
        "filmrec_model_info",
        "filmrec_model_age_seconds",
        "filmrec_model_reloads_total",
        "filmrec_model_reload_failures_total",
        "filmrec_model_refused_total",
        "filmrec_model_champion_refused",
        "filmrec_kafka_publish_failures_total",
        "filmrec_dependency_up",
        "filmrec_model_metric",
        "filmrec_ingestion_events_total",
        "filmrec_ingestion_lag_messages",
        "filmrec_ingestion_last_success_timestamp_seconds",
        "filmrec_ingestion_batches_total",
        "filmrec_ingestion_batch_duration_seconds",
        "filmrec_ingestion_last_batch_timestamp_seconds",
        "filmrec_ingestion_running",
        "filmrec_event_visibility_seconds",
        "filmrec_online_events_total",
        "filmrec_fold_ins_total",
        "filmrec_online_consumer_lag_messages",
        "filmrec_online_state_users",
        "filmrec_online_state_ratings",
        "filmrec_online_versions_synced",
        "filmrec_online_versions_syncs_total",
    }
)
HISTOGRAMS = frozenset({"filmrec_http_request_duration_seconds", "filmrec_event_visibility_seconds"})
KNOWN_METRICS = (
    API_METRICS
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | {"up"}
)

# Identifiers in PromQL that are not metric names.
_PROMQL_WORDS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "histogram_quantile",
        "time",
        "vector",
        "scalar",
        "abs",
        "absent",
        "absent_over_time",
        "clamp",
        "clamp_min",
        "clamp_max",
        "ceil",
        "floor",
        "round",
        "label_replace",
        "label_join",
        "sort",
        "sort_desc",
        "timestamp",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "le",
    ]
)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (label matchers and strings removed)."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    stripped = re.sub(r"\{[^}]*\}", "", stripped)  # label matchers
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)  # range selectors
    stripped = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped)
    words = set(re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", stripped))
    return words - _PROMQL_WORDS


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # file name
    panel: str  # panel title
    ref_id: str
    expr: str
    datasource_uid: str | None


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Panels in display order, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def dashboard_files(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def panel_queries(directory: Path = DASHBOARDS_DIR) -> list[PanelQuery]:
    queries = []
    for path in dashboard_files(directory):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in iter_panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                datasource = target.get("datasource") or panel.get("datasource") or {}
                queries.append(
                    PanelQuery(
                        dashboard=path.name,
                        panel=panel.get("title", ""),
                        ref_id=target.get("refId", ""),
                        expr=target.get("expr", ""),
                        datasource_uid=datasource.get("uid"),
                    )
                )
    return queries


def panel_exprs(directory: Path = DASHBOARDS_DIR) -> list[str]:
    """Just the expressions, in dashboard order."""
    return [query.expr for query in panel_queries(directory)]
