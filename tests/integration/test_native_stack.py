"""The platform without Docker (issue 6, part 6a): every Compose service run natively on
the Compose ports, checked by test-connections.py, and training scaled out on Spark.

The module brings the native stack up (`python -m devstack.stack up`), or uses it
as it is when `make stack-up` already ran, and stops at the end only what it started.
Then, on that stack:

1. a slice of MovieLens (the first 100 users) is loaded and ALS is trained with the
   quick search, both submitted to the *standalone* Spark master (not local mode) and
   reading/writing the stack's shared lakehouse;
2. the master records the training application as finished, with executors granted;
3. the API picks up the model trained there as its champion and recommends from it;
4. test-connections.py reports every service healthy except Grafana (no package here),
   which must be reported unreachable, not hidden.

Minutes on 2 cores; FILMREC_STACK_KEEP=1 leaves a stack the test started running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require
from tests.integration.service_helpers import save_screenshot

REPO = Path(__file__).resolve().parents[2]
SLICE_USERS = 100
GRAFANA = "grafana"


def _require_prerequisites() -> None:
    from devstack.services import ServiceError, postgres_bin

    require(shutil.which("java") is not None, "`java` 17+ (install openjdk-17-jre-headless)")
    try:
        postgres_bin("initdb")
        has_postgres = True
    except ServiceError:
        has_postgres = False
    require(has_postgres, "PostgreSQL server binaries (apt-get install postgresql)")
    require(shutil.which("redis-server") is not None, "`redis-server` (apt-get install redis-server)")
    require(shutil.which("prometheus") is not None, "`prometheus` (apt-get install prometheus)")
    bin_dir = Path(sys.executable).parent
    require((bin_dir / "airflow").exists(), "the airflow CLI (pip install -e '.[airflow]')")
    require((bin_dir / "spark-submit").exists(), "spark-submit (pip install -e '.[spark]')")


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    _require_prerequisites()
    from devstack.stack import NativeStack, StackError

    native = NativeStack.from_env()
    try:
        states = native.up(log=lambda line: print(f"[stack] {line}", flush=True))
    except StackError as error:
        pytest.fail(f"the native stack did not come up: {error}", pytrace=False)
    started = [name for name, state in states.items() if state == "started"]
    assert states.get("airflow-scheduler") != "missing", states
    try:
        yield native
    finally:
        if started and os.environ.get("FILMREC_STACK_KEEP") != "1":
            native.down(only=started, log=lambda line: print(f"[stack] {line}", flush=True))


@pytest.fixture(scope="module")
def trained(stack: Any) -> Iterator[dict[str, Any]]:
    """Load the slice and train on the standalone master; the result of the training job."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    settings = stack._settings()
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    # Promotion needs a strictly better metric, and the same slice and search give the
    # same metric every run: without this, a second run on a kept stack would train a
    # model the API never serves. The previous champion is restored afterwards.
    previous: str | None = None
    try:
        previous = client.get_model_version_by_alias(settings.model_name, settings.champion_alias).version
        client.delete_registered_model_alias(settings.model_name, settings.champion_alias)
    except MlflowException:
        previous = None  # no such model or alias yet (a fresh stack)
    try:
        result = stack.bootstrap(users=SLICE_USERS, search="quick", log=lambda line: print(line, flush=True))
        yield result
    finally:
        if previous is not None:
            client.set_registered_model_alias(settings.model_name, settings.champion_alias, previous)


def test_training_ran_on_the_standalone_master(stack: Any, trained: dict[str, Any]) -> None:
    app_id = trained["_app_id"]
    assert app_id, f"the job log names no standalone application: {trained['_log']}"
    app = stack.application(app_id)
    assert app is not None, f"{app_id} unknown to the master at {stack.master_json_url}"
    assert app["name"] == "filmrec-train-als"
    assert app["state"] == "FINISHED", app
    # Executors on the worker did the work: the master granted the application cores.
    assert app["cores"] >= 1, app
    assert trained["promotion"]["promoted"], trained["promotion"]
    # The driver ran with spark/config/spark-defaults.conf (rendered for this machine):
    # its event log (Spark 4 rolls it: eventlog_v2_<app id>/) is where that file puts it.
    events = stack.var_dir / "spark-events"
    assert any(app_id in path.name for path in events.iterdir()), f"no event log in {events}"
    # It read the stack's shared lakehouse: the Delta version it trained on is a commit there.
    from filmrec.lakehouse.tables import LakehouseTables

    commit = Path(LakehouseTables(stack.lakehouse).clean_ratings) / "_delta_log"
    commit /= f"{int(trained['data_version']):020d}.json"
    assert commit.is_file(), f"training read data version {trained['data_version']}, not in {commit.parent}"


def test_api_serves_the_model_trained_on_the_cluster(stack: Any, trained: dict[str, Any]) -> None:
    version = str(trained["model_version"])
    deadline = time.monotonic() + 120
    served: dict[str, Any] = {}
    with httpx.Client(base_url=stack.api_url, timeout=10) as api:
        while time.monotonic() < deadline:
            response = api.get("/model")
            served = response.json() if response.status_code == 200 else {"status": response.status_code}
            if served.get("version") == version:
                break
            time.sleep(1)
        assert served.get("version") == version, f"API serves {served}, the cluster trained v{version}"
        assert served["run_id"] == trained["run_id"]
        recommendations = api.get("/recommendations/1", params={"k": 5})
    assert recommendations.status_code == 200, recommendations.text
    body = recommendations.json()
    assert body["model_version"] == version
    assert body["strategy"] == "model"
    assert len(body["items"]) == 5


def _test_connections(stack: Any, *args: str) -> tuple[int, dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, str(REPO / "test-connections.py"), "--json", *args],
        env=os.environ | stack.connections_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(completed.stderr, file=sys.stderr)
    return completed.returncode, json.loads(completed.stdout)


def test_test_connections_reports_all_healthy_but_grafana(
    stack: Any, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Wait for the slow ones (Prometheus scrapes the API every 15 s) without Grafana,
    # which would only make --wait wait for nothing.
    code, report = _test_connections(stack, "--skip", GRAFANA, "--wait", "120", "--interval", "3")
    unhealthy = {r["service"]: r["detail"] for r in report["results"] if not r["healthy"]}
    assert code == 0 and not unhealthy, unhealthy

    # Then everything, Grafana included: it must be there, and the only failure.
    code, report = _test_connections(stack)
    results = {r["service"]: r for r in report["results"]}
    assert code == 1
    assert GRAFANA in results, "grafana must be reported, not hidden"
    assert not results[GRAFANA]["healthy"]
    assert {name for name, r in results.items() if not r["healthy"]} == {GRAFANA}, results
    assert set(results) == {
        "zookeeper",
        "kafka",
        "postgres",
        "redis",
        "spark",
        "mlflow",
        "airflow",
        "api",
        "prometheus",
        GRAFANA,
    }


# The home page's health section: one badge per component, in the UI's English titles
# (airflow/ui i18n dashboard.json, health.*), each with "Status: Healthy" in its tooltip.
AIRFLOW_COMPONENTS = ("MetaDatabase", "Scheduler", "Triggerer", "Dag Processor")
CHROMIUM = Path("/usr/bin/chromium")


def test_the_airflow_home_page_shows_every_component_healthy(stack: Any) -> None:
    """The Airflow UI as an operator opens it: no login (the native stack's simple auth
    manager makes everyone admin), then each health badge says healthy.

    Runs on the module's stack, so CI starts Airflow once for every test here.
    """
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        require(False, "the playwright package (pip install -e '.[dev]')")
    executable = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    require(executable is not None, "chromium (apt-get install -y chromium)")
    # The badges follow the heartbeats: wait until the API reports all four healthy, so
    # the page is checked in the state the stack is meant to be in (bounded, not timed).
    health: dict[str, Any] = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        health = httpx.get(f"{stack.airflow_url}/api/v2/monitor/health", timeout=10).json()
        if all(
            (health.get(name) or {}).get("status") == "healthy"
            for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        ):
            break
        time.sleep(2)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(stack.airflow_url)
            expect(page.get_by_text("Health", exact=True).first).to_be_visible()
            for component in AIRFLOW_COMPONENTS:
                badge = page.get_by_test_id("state-badge").filter(has_text=component)
                expect(badge).to_have_count(1)
                badge.hover()
                tooltip = page.get_by_role("tooltip").filter(has_text="Status:")
                expect(tooltip).to_contain_text("Status: Healthy")
                page.mouse.move(0, 0)  # close it: the next badge's tooltip must be the only one
                expect(tooltip).to_have_count(0)
            save_screenshot(page, "airflow-home")
        finally:
            browser.close()
    assert all(health.get(name, {}).get("status") == "healthy" for name in health), health
