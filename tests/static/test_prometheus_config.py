"""Prometheus configuration and alerting rules: promtool, and consistency checks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.static.static_helpers import ROOT, require_tool

PROMETHEUS_DIR = ROOT / "prometheus"
CONFIGS = [PROMETHEUS_DIR / "prometheus.yml", PROMETHEUS_DIR / "prometheus.native.yml"]
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "tests" / "alerts_test.yml"
REQUIRED_ALERTS = {
    "FilmrecApiDown",
    "FilmrecApiHighErrorRate",
    "FilmrecApiHighLatencyP99",
    "FilmrecCacheHitRatioLow",
    "FilmrecModelStale",
    "FilmrecIngestionLagHigh",
}


def promtool(*args: str) -> None:
    completed = subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.name)
def test_promtool_check_config(config: Path) -> None:
    promtool("check", "config", str(config))


def test_promtool_check_rules() -> None:
    promtool("check", "rules", str(ALERTS))


def test_promtool_test_rules() -> None:
    promtool("test", "rules", str(ALERT_TESTS))


def alert_names() -> set[str]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_required_alerts_exist() -> None:
    assert alert_names() >= REQUIRED_ALERTS


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alert_names() <= fired, f"never fires in a test: {alert_names() - fired}"
    assert alert_names() <= quiet, f"never stays quiet in a test: {alert_names() - quiet}"


def scrape_targets(config: Path) -> dict[str, list[str]]:
    scrape_configs = yaml.safe_load(config.read_text(encoding="utf-8"))["scrape_configs"]
    return {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in scrape_configs
    }


def test_the_api_is_scraped_where_it_runs() -> None:
    assert scrape_targets(CONFIGS[0])["filmrec-api"] == ["api:8000"]
    assert scrape_targets(CONFIGS[1])["filmrec-api"] == ["127.0.0.1:8000"]


def test_native_config_differs_only_in_targets() -> None:
    def without_targets(config: Path) -> dict:
        document = yaml.safe_load(config.read_text(encoding="utf-8"))
        for job in document["scrape_configs"]:
            for static in job["static_configs"]:
                static.pop("targets")
        return document

    assert without_targets(CONFIGS[0]) == without_targets(CONFIGS[1])


def test_alerts_use_only_metrics_the_api_exposes() -> None:
    from tests.static.grafana_queries import KNOWN_METRICS, metric_names

    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    for group in groups:
        for rule in group["rules"]:
            names = metric_names(rule["expr"])
            assert names, rule["alert"]
            assert names <= KNOWN_METRICS, f"{rule['alert']}: unknown {names - KNOWN_METRICS}"
            assert re.search(r"severity", str(rule.get("labels"))), rule["alert"]
