"""The Compose platform, run for real: the user's path from `make compose-up` to `down -v`.

One module-scoped platform, built from the repository's own docker-compose.yml,
Dockerfiles and init.sh by `make compose-up` (scripts/compose.sh picks this machine's
Docker, or the private engine with stand-in images where none can be used). The tests
then follow the user, in file order: healthy services, a champion in MLflow, titled
recommendations through api-proxy, a keyed rating that changes the list, the
connection checks, the Airflow UI and the web page in a real browser, the streaming
profile, and a restart that keeps the state. The fixture ends with
`make compose-down VOLUMES=1` and checks that nothing is left running.

    make compose-test                          # what CI runs (.ci/run)
    FILMREC_COMPOSE_KEEP=1 make compose-test   # leave the platform up afterwards
    FILMREC_COMPOSE_REUSE=1 FILMREC_COMPOSE_KEEP=1 make compose-test   # test the one up now

Its own logs go to var/compose-test/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.static.static_helpers import load_connections_script

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / "var" / "compose-test"
CHROMIUM = Path("/usr/bin/chromium")
# The training search of the bootstrap: the small one keeps the run inside CI's budget.
SEARCH = os.environ.get("FILMREC_COMPOSE_SEARCH", "quick")
# Bounds on waiting, not measurements: a fresh machine builds every image first.
UP_TIMEOUT = 3600
# pytest-timeout's 900 s (pyproject) covers a test's fixture set-up too, and the first
# test's set-up is `make compose-up` (UP_TIMEOUT): it builds every image on a fresh machine.
pytestmark = [pytest.mark.compose, pytest.mark.timeout(UP_TIMEOUT + 600)]
WAIT_MS = 60_000


@dataclass(frozen=True)
class Platform:
    env: dict[str, str]

    def url(self, service: str, path: str) -> str:
        module = load_connections_script()
        return module.Config.load(None, self.env).url(service, path)

    @property
    def api_key(self) -> str:
        return (REPO / "var" / "api-key").read_text(encoding="utf-8").strip()


def run_logged(args: list[str], log_name: str, timeout: float, env: dict[str, str] | None = None) -> None:
    """Run a step of the user's path with its output in var/compose-test/; fail with its tail."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{log_name}.log"
    with log.open("w", encoding="utf-8") as out:
        completed = subprocess.run(
            args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env, check=False
        )
    if completed.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-6000:]
        pytest.fail(f"{' '.join(args)} exited {completed.returncode}; end of {log}:\n{tail}")


def compose(*args: str, timeout: float = 600) -> str:
    completed = subprocess.run(
        ["scripts/compose.sh", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert completed.returncode == 0, f"compose {' '.join(args)}: {completed.stderr[-3000:]}"
    return completed.stdout


def env_values() -> dict[str, str]:
    module = load_connections_script()
    values = module.parse_env_file((REPO / ".env").read_text(encoding="utf-8"))
    return {**values, **{key: value for key, value in os.environ.items() if key.endswith("_PORT")}}


def http(
    url: str, *, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def eventually(check: Callable[[], Any], *, what: str, timeout: float = 120.0, interval: float = 2.0) -> Any:
    """Poll until `check` returns something truthy; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError, KeyError) as error:  # a service still starting
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s (last: {last!r})")


def engine_usable() -> bool:
    """This machine's Docker, or what the private engine needs (root, debootstrap)."""
    engine = subprocess.run(["scripts/compose.sh", "--engine"], cwd=REPO, capture_output=True, text=True)
    if engine.stdout.strip() == "system":
        return True
    return os.geteuid() == 0 and shutil.which("debootstrap") is not None


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    require(engine_usable(), "a Docker engine: Docker 24+ with Compose 2.20+, or root and debootstrap")
    if os.environ.get("FILMREC_COMPOSE_REUSE") != "1":
        run_logged(["make", "compose-up", f"SEARCH={SEARCH}"], "compose-up", timeout=UP_TIMEOUT)
    yield Platform(env_values())
    if os.environ.get("FILMREC_COMPOSE_KEEP") == "1":
        return
    run_logged(["make", "compose-down", "VOLUMES=1"], "compose-down", timeout=600)
    # Nothing left running: no container of the project, no private engine.
    engine = subprocess.run(["scripts/compose.sh", "--engine"], cwd=REPO, capture_output=True, text=True)
    if engine.stdout.strip() == "private":
        status = subprocess.run(["scripts/private-engine.sh", "status"], cwd=REPO, capture_output=True)
        assert status.returncode != 0, "the private engine still runs after make compose-down"


def services_state() -> list[dict[str, Any]]:
    out = compose("ps", "--all", "--format", "json")
    # Compose 2.21+ prints one JSON object a line; older ones a JSON array.
    text = out.strip()
    return json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]


def test_init_brings_every_service_to_healthy(platform: Platform) -> None:
    states = {row["Service"]: row for row in services_state()}
    for one_shot in ("kafka-init", "airflow-init"):
        assert states[one_shot]["State"] == "exited" and states[one_shot]["ExitCode"] == 0, states[one_shot]
    running = {name: row for name, row in states.items() if name not in ("kafka-init", "airflow-init")}
    unhealthy = {name: (row["State"], row.get("Health")) for name, row in running.items()
                 if row["State"] != "running" or row.get("Health") != "healthy"}  # fmt: skip
    assert not unhealthy, unhealthy
    expected = {"zookeeper", "kafka", "postgres", "redis", "spark-master", "spark-worker", "mlflow",
                "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                "api", "api-proxy", "prometheus"}  # fmt: skip
    assert expected <= set(running), expected - set(running)


def test_mlflow_has_a_champion(platform: Platform) -> None:
    name = platform.env.get("MODEL_NAME") or "filmrec"
    status, body = http(
        platform.url("mlflow", f"/api/2.0/mlflow/registered-models/alias?name={name}&alias=champion"),
        headers=mlflow_auth(platform),
    )
    assert status == 200, body
    assert body["model_version"]["aliases"] == ["champion"] or "champion" in body["model_version"]["aliases"]


def mlflow_auth(platform: Platform) -> dict[str, str]:
    user = platform.env.get("MLFLOW_TRACKING_USERNAME")
    password = platform.env.get("MLFLOW_TRACKING_PASSWORD")
    if not (user and password):
        return {}
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def recommended(platform: Platform, user_id: int) -> list[dict[str, Any]]:
    status, body = http(platform.url("api", f"/recommendations/{user_id}?k=10"))
    assert status == 200, body
    return list(body["items"])


def test_recommendations_through_the_proxy_have_titles(platform: Platform) -> None:
    items = recommended(platform, 1)
    assert len(items) == 10
    assert all(item["title"] for item in items), items


def test_a_keyed_rating_leaves_the_users_list(platform: Platform) -> None:
    before = recommended(platform, 1)
    movie_id = before[0]["movie_id"]
    status, body = http(
        platform.url("api", "/ratings"),
        method="POST",
        body={"user_id": 1, "movie_id": movie_id, "rating": 4.5},
        headers={"X-API-Key": platform.api_key},
    )
    assert status in (200, 201, 202), body
    eventually(
        lambda: movie_id not in [item["movie_id"] for item in recommended(platform, 1)],
        what=f"movie {movie_id} leaving user 1's list",
        timeout=30,
        interval=0.5,
    )


def test_connections_report_every_service_healthy_but_grafana(platform: Platform) -> None:
    python = shutil.which("python3") or "python3"
    completed = subprocess.run(
        [python, "test-connections.py", "--require-model", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    report = json.loads(completed.stdout)
    statuses = {result["service"]: result["status"] for result in report["results"]}
    assert completed.returncode == 0, completed.stdout
    not_ok = {service: status for service, status in statuses.items() if status != "OK"}
    if not_ok:
        assert not_ok == {"grafana": "not started"}, not_ok
        detail = next(r["detail"] for r in report["results"] if r["service"] == "grafana")
        assert "Grafana" in detail or "grafana" in detail


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package (pip install -e '.[dev]')")
    require(CHROMIUM.exists(), "chromium (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(("http://127.0.0.1:", "http://localhost:", "data:", "blob:"))
            else route.abort()
        ),
    )
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    yield tab
    context.close()


def shoot(page: Any, name: str) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(LOGS / f"{name}.png"), full_page=True)


def test_the_airflow_ui_shows_both_runs_succeeded(platform: Platform, page: Any) -> None:
    from playwright.sync_api import expect

    airflow = platform.url("airflow", "")
    page.goto(airflow + "/")
    page.get_by_label("Username").fill(platform.env.get("AIRFLOW_ADMIN_USER") or "admin")
    page.get_by_label("Password").fill(platform.env["AIRFLOW_ADMIN_PASSWORD"])
    page.get_by_role("button", name="Sign In").click()
    for dag_id in ("bootstrap_movielens", "als_training"):
        page.goto(f"{airflow}/dags/{dag_id}/runs")
        expect(page.get_by_text(dag_id).first).to_be_visible()
        expect(page.get_by_text("success", exact=False).first).to_be_visible()
        shoot(page, f"airflow-{dag_id}")


def test_the_page_through_the_proxy_rates_a_movie_and_the_list_changes(platform: Platform, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(platform.url("api", "/"))
    page.get_by_label("API key (for rating)").fill(platform.api_key)
    page.get_by_label("API key (for rating)").dispatch_event("change")
    page.get_by_label("MovieLens user id").fill("2")
    page.get_by_role("button", name="Use this id").click()
    expect(page.locator("#recs li")).to_have_count(10)
    first = page.locator("#recs li").first
    rated = first.get_attribute("data-movie-id")
    first.locator(".rate").first.click()
    expect(page.locator(f'#recs li[data-movie-id="{rated}"]')).to_have_count(0)
    expect(page.locator("#recs li")).to_have_count(10)
    shoot(page, "page-after-rating")


def ingestion_status() -> dict[str, Any]:
    return dict(json.loads((REPO / "lakehouse" / "_status" / "ingestion.json").read_text(encoding="utf-8")))


def test_the_streaming_profile_runs_micro_batches(platform: Platform) -> None:
    compose("--profile", "streaming", "up", "-d", "ratings-stream", timeout=900)
    try:
        for movie_id in (1, 2, 3):
            status, body = http(
                platform.url("api", "/ratings"),
                method="POST",
                body={"user_id": 3, "movie_id": movie_id, "rating": 3.0},
                headers={"X-API-Key": platform.api_key},
            )
            assert status in (200, 201, 202), body

        def batched() -> bool:
            state = ingestion_status()
            return state.get("mode") == "continuous" and int(state.get("written", 0)) >= 3

        eventually(batched, what="ratings-stream writing the posted ratings", timeout=420, interval=5)
    finally:
        compose("--profile", "streaming", "stop", "ratings-stream", timeout=300)
        compose("--profile", "streaming", "rm", "-f", "ratings-stream")


def test_down_and_up_keeps_the_champion_lakehouse_and_metadata(platform: Platform) -> None:
    version_before = http(platform.url("api", "/model"))[1]["version"]
    compose("down", timeout=600)
    run_logged(["scripts/compose.sh", "--run", "./init.sh"], "init-again", timeout=UP_TIMEOUT)
    status, model = eventually(
        lambda: (lambda answer: answer if answer[0] == 200 else None)(http(platform.url("api", "/model"))),
        what="the API serving its model after the restart",
        timeout=300,
    )
    assert model["version"] == version_before
    assert recommended(platform, 1)
    status, found = http(platform.url("api", "/movies?q=toy+story&limit=5"))
    assert status == 200 and any("Toy Story" in item["title"] for item in found["items"]), found
