"""Grafana provisioning and dashboards: valid JSON, one data source, known metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.static.grafana_queries import (
    API_METRICS,
    KNOWN_METRICS,
    dashboard_files,
    iter_panels,
    metric_names,
    panel_queries,
)
from tests.static.static_helpers import ROOT, env_example, filled_env, load_compose, service_mounts

PROVISIONING = ROOT / "grafana" / "provisioning"
EXPECTED_DASHBOARDS = {"api-serving.json", "pipeline.json"}


def test_the_dashboards_exist() -> None:
    assert {path.name for path in dashboard_files()} >= EXPECTED_DASHBOARDS


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda path: path.name)
def test_dashboard_is_valid(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard.get("uid") and dashboard.get("title")
    assert isinstance(dashboard.get("schemaVersion"), int)
    panels = list(iter_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel.get("datasource", {}).get("uid") == "prometheus", panel["title"]
        assert panel.get("targets"), f"{panel['title']} has no query"


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(path.read_text(encoding="utf-8"))["uid"] for path in dashboard_files()]
    assert len(uids) == len(set(uids))


def test_every_query_uses_prometheus_and_known_metrics() -> None:
    queries = panel_queries()
    assert queries
    for query in queries:
        where = f"{query.dashboard} / {query.panel} / {query.ref_id}"
        assert query.expr.strip(), f"{where}: empty expr"
        assert query.datasource_uid == "prometheus", where
        names = metric_names(query.expr)
        assert names, f"{where}: selects no metric"
        assert names <= KNOWN_METRICS, f"{where}: unknown metrics {names - KNOWN_METRICS}"
        # Grafana-only variables would not run against Prometheus as they are.
        assert "$" not in query.expr, f"{where}: uses a dashboard variable"


def test_dashboards_cover_the_api_metrics() -> None:
    used = set().union(*(metric_names(query.expr) for query in panel_queries()))
    used_bases = {name.removesuffix("_bucket") for name in used}
    assert used_bases >= API_METRICS, f"no panel for {sorted(API_METRICS - used_bases)}"


def test_datasource_provisioning() -> None:
    document = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    (source,) = document["datasources"]
    assert source["uid"] == "prometheus"
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provider_points_at_the_mounted_directory() -> None:
    document = yaml.safe_load((PROVISIONING / "dashboards" / "dashboard.yml").read_text(encoding="utf-8"))
    (provider,) = document["providers"]
    path = provider["options"]["path"]
    assert path == "/var/lib/grafana/dashboards"
    grafana = load_compose(filled_env(env_example()))["services"]["grafana"]
    assert ("./grafana/dashboards", path) in service_mounts(grafana)
    assert ("./grafana/provisioning", "/etc/grafana/provisioning") in service_mounts(grafana)


def test_panels_of_offline_metrics_name_both_coverages() -> None:
    """Two definitions, two names (docs/models.md#coverage): the panels say which is which."""
    from filmrec.serving.metrics import OFFLINE_METRICS

    coverages = [name for name in OFFLINE_METRICS if "coverage" in name]
    assert sorted(coverages) == ["catalogue_coverage_at_10", "scored_coverage_at_10"]
    panels = [
        panel
        for path in dashboard_files()
        for panel in iter_panels(json.loads(path.read_text())["panels"])
        if any("filmrec_model_metric" in target.get("expr", "") for target in panel.get("targets", []))
    ]
    assert panels
    for panel in panels:
        assert all(name in panel.get("description", "") for name in coverages), panel["title"]
