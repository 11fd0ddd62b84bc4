"""test-connections.py: configuration, states, output and exit codes, protocols against local fakes.

The checks against the real services are in tests/integration/test_connections_protocols.py.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import http.server
import json
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.static.static_helpers import ROOT, load_connections_script

tc = load_connections_script()


def unused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_file_with(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "test.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()), encoding="utf-8")
    return path


def closed_ports_env(tmp_path: Path) -> Path:
    values: dict[str, Any] = {key: unused_port() for key, _ in tc.PORTS.values()}
    values |= {
        "PLATFORM_HOST": "127.0.0.1",
        "APP_DB_PASSWORD": "x",
        "MLFLOW_DB_PASSWORD": "x",
        "AIRFLOW_DB_PASSWORD": "x",
        "GRAFANA_ADMIN_PASSWORD": "x",
    }
    return env_file_with(tmp_path, values)


# --- configuration --------------------------------------------------------------------


def test_parse_env_file() -> None:
    text = "# comment\n\nexport A=1\nB='two words'\nC=\"3\"\nD=4 # inline\nE=\nnot a pair\n"
    assert tc.parse_env_file(text) == {"A": "1", "B": "two words", "C": "3", "D": "4", "E": ""}


def test_environment_overrides_the_env_file(tmp_path: Path) -> None:
    env_file = env_file_with(tmp_path, {"API_PORT": 8001, "PLATFORM_HOST": "box", "KAFKA_PORT": 9999})
    config = tc.Config.load(env_file, {"API_PORT": "8002", "CHECK_KAFKA_HOST": "broker"})
    assert config.address("api") == "box:8002"
    assert config.address("kafka") == "broker:9999"
    assert config.address("redis") == "box:6379"


def test_defaults_are_localhost_and_the_platform_ports(tmp_path: Path) -> None:
    config = tc.Config.load(tmp_path / "missing.env", {})
    assert {service: config.address(service) for service in tc.CHECKS} == {
        "zookeeper": "localhost:2181",
        "kafka": "localhost:9092",
        "postgres": "localhost:5432",
        "redis": "localhost:6379",
        "spark": "localhost:8081",
        "mlflow": "localhost:5000",
        "airflow": "localhost:8080",
        "api": "localhost:8000",
        "prometheus": "localhost:9090",
        "grafana": "localhost:3000",
    }


def test_a_bad_port_fails_its_check_only() -> None:
    config = tc.Config.load(None, {"API_PORT": "eighty"})
    result = tc.run_check("api", config)
    assert not result.healthy
    assert "API_PORT='eighty'" in result.detail
    assert result.endpoint == "http://localhost:?/ready"


# --- arguments ------------------------------------------------------------------------


def test_only_and_skip_select_services() -> None:
    args = tc.parse_args(["--only", "kafka,api,redis", "--skip", "api"])
    assert tc.selected_services(args.only, args.skip) == ["kafka", "redis"]
    assert tc.selected_services(None, ["grafana"]) == [name for name in tc.CHECKS if name != "grafana"]


@pytest.mark.parametrize(
    "argv", [["--only", "kafka,nosuch"], ["--skip", "nosuch"], ["--wait", "-1"], ["--timeout", "0"]]
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        tc.parse_args(argv)
    assert raised.value.code == 2


def test_nothing_left_to_check_exits_2(tmp_path: Path) -> None:
    assert tc.main(["--only", "api", "--skip", "api", "--env-file", str(tmp_path / "none")], environ={}) == 2


# --- output ---------------------------------------------------------------------------

RESULTS = [
    tc.Result("kafka", "kafka://localhost:9092", tc.OK, 12.34, "1 broker(s)"),
    tc.Result("api", "http://localhost:8000/ready", tc.FAIL, 3.0, "URLError: refused"),
]


def test_table_lists_every_result() -> None:
    lines = tc.render_table(RESULTS).splitlines()
    assert lines[0].split() == ["service", "endpoint", "status", "latency", "ms", "detail"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split()[:4] == ["kafka", "kafka://localhost:9092", "OK", "12.3"]
    assert lines[3].split()[:4] == ["api", "http://localhost:8000/ready", "FAIL", "3.0"]
    assert lines[-1] == "1/2 services healthy"
    # Columns line up: the status column starts at the same offset on every row.
    assert len({line.index(status) for line, status in zip(lines[2:4], ("OK", "FAIL"), strict=True)}) == 1


def test_table_names_the_accepted_states() -> None:
    results = [
        *RESULTS[:1],
        tc.Result("api", "http://localhost:8000/ready", tc.NO_MODEL_YET, 3.0, "run make compose-bootstrap"),
        tc.Result("grafana", "http://localhost:3000/api/health", tc.NOT_STARTED, 0.0, "no image"),
    ]
    lines = tc.render_table(results).splitlines()
    assert "no model yet" in lines[3] and lines[3].endswith("run make compose-bootstrap")
    assert "not started" in lines[4] and lines[4].endswith("no image")
    assert lines[-1] == "1/3 services healthy; no model yet: api; not started: grafana"


def test_json_output() -> None:
    payload = json.loads(tc.render_json(RESULTS))
    assert payload["healthy"] is False
    assert payload["results"][0] == {
        "service": "kafka",
        "endpoint": "kafka://localhost:9092",
        "healthy": True,
        "status": "OK",
        "latency_ms": 12.34,
        "detail": "1 broker(s)",
    }
    assert payload["results"][1]["status"] == "FAIL"


def test_json_healthy_is_the_verdict_and_each_result_healthy_only_when_ok() -> None:
    results = [
        RESULTS[0],
        tc.Result("api", "http://localhost:8000/ready", tc.NO_MODEL_YET, 3.0, "run make compose-bootstrap"),
        tc.Result("grafana", "http://localhost:3000/api/health", tc.NOT_STARTED, 0.0, "no image"),
    ]
    payload = json.loads(tc.render_json(results))
    assert payload["healthy"] is True
    assert [r["healthy"] for r in payload["results"]] == [True, False, False]
    assert [r["status"] for r in payload["results"]] == ["OK", "no model yet", "not started"]
    assert json.loads(tc.render_json(results, require_model=True))["healthy"] is False


# --- against closed ports -------------------------------------------------------------


def test_everything_unreachable_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_file = closed_ports_env(tmp_path)
    code = tc.main(["--json", "--timeout", "1", "--env-file", str(env_file)], environ={})
    payload = json.loads(capsys.readouterr().out)
    assert code == 1
    assert payload["healthy"] is False
    assert [result["service"] for result in payload["results"]] == list(tc.CHECKS)
    assert not any(result["healthy"] for result in payload["results"])
    assert all(result["detail"] for result in payload["results"])


def test_missing_credentials_are_named(tmp_path: Path) -> None:
    config = tc.Config.load(None, {"PLATFORM_HOST": "127.0.0.1", "POSTGRES_PORT": str(unused_port())})
    result = tc.run_check("postgres", config)
    assert result.status == tc.FAIL
    assert "APP_DB_PASSWORD is not set" in result.detail


def test_wait_retries_only_failing_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {"api": 0, "redis": 0}

    def flaky_api(_config: Any) -> str:
        calls["api"] += 1
        if calls["api"] < 3:
            raise tc.CheckFailed("starting")
        return "ready"

    def steady_redis(_config: Any) -> str:
        calls["redis"] += 1
        return "PONG"

    monkeypatch.setitem(tc.CHECKS, "api", (flaky_api, "http://{address}/ready"))
    monkeypatch.setitem(tc.CHECKS, "redis", (steady_redis, "redis://{address}"))
    now = [0.0]
    results = tc.wait_for_checks(
        ["redis", "api"],
        tc.Config.load(None, {}),
        wait_seconds=60,
        interval_seconds=5,
        clock=lambda: now[0],
        sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
    )
    assert [result.healthy for result in results] == [True, True]
    assert calls == {"api": 3, "redis": 1}
    assert now[0] == 10


def test_wait_gives_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(_config: Any) -> str:
        raise tc.CheckFailed("down")

    monkeypatch.setitem(tc.CHECKS, "api", (never, "http://{address}/ready"))
    now = [0.0]
    results = tc.wait_for_checks(
        ["api"],
        tc.Config.load(None, {}),
        wait_seconds=12,
        interval_seconds=5,
        clock=lambda: now[0],
        sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
    )
    assert not results[0].healthy
    assert now[0] == 12


# --- against local fakes that speak the protocols --------------------------------------


class FakeZooKeeper(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        word = self.request.recv(4)
        reply = {b"ruok": b"imok", b"srvr": b"Zookeeper version: 3.8\nMode: standalone\n"}.get(word, b"")
        self.request.sendall(reply)


class FakePrometheus(http.server.BaseHTTPRequestHandler):
    targets: ClassVar[list[dict[str, Any]]] = [{"labels": {"job": "filmrec-api"}, "health": "up"}]

    def do_GET(self) -> None:
        if self.path == "/-/ready":
            body = b"Prometheus Server is Ready.\n"
        elif self.path.startswith("/api/v1/targets"):
            body = json.dumps({"status": "success", "data": {"activeTargets": self.targets}}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def fakes() -> Iterator[dict[str, int]]:
    zookeeper = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FakeZooKeeper)
    prometheus = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    servers = [zookeeper, prometheus]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"ZOOKEEPER_PORT": zookeeper.server_address[1], "PROMETHEUS_PORT": prometheus.server_address[1]}
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_healthy_services_exit_0(
    tmp_path: Path, fakes: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = env_file_with(tmp_path, {"PLATFORM_HOST": "127.0.0.1", **fakes})
    code = tc.main(["--only", "zookeeper,prometheus", "--env-file", str(env_file)], environ={})
    output = capsys.readouterr().out
    assert code == 0, output
    assert "imok, mode standalone" in output
    assert "1/1 targets up" in output
    assert output.rstrip().endswith("2/2 services healthy")


def test_a_down_scrape_target_fails_prometheus(
    tmp_path: Path, fakes: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    down = {"labels": {"job": "filmrec-api"}, "health": "down", "lastError": "connection refused"}
    monkeypatch.setattr(FakePrometheus, "targets", [*FakePrometheus.targets, down])
    config = tc.Config.load(env_file_with(tmp_path, {"PLATFORM_HOST": "127.0.0.1", **fakes}), {})
    result = tc.run_check("prometheus", config)
    assert not result.healthy
    assert "1/2 targets not up" in result.detail and "connection refused" in result.detail


class FakeAirflow(http.server.BaseHTTPRequestHandler):
    """/api/v2/monitor/health as Airflow 3's api-server answers it."""

    health: ClassVar[dict[str, Any]] = {
        name: {"status": "healthy"} for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    }

    def do_GET(self) -> None:
        if self.path != "/api/v2/monitor/health":
            self.send_error(404)
            return
        body = json.dumps(self.health).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def airflow_config(tmp_path: Path) -> Iterator[Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeAirflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        values = {"PLATFORM_HOST": "127.0.0.1", "AIRFLOW_PORT": server.server_address[1]}
        yield tc.Config.load(env_file_with(tmp_path, values), {})
    finally:
        server.shutdown()
        server.server_close()


def test_airflow_is_healthy_with_every_component(airflow_config: Any) -> None:
    result = tc.run_check("airflow", airflow_config)
    assert result.healthy, result.detail
    assert "triggerer healthy" in result.detail


@pytest.mark.parametrize("triggerer", [{"status": "unhealthy"}, {"status": None}, None])
def test_airflow_without_a_live_triggerer_fails(
    airflow_config: Any, monkeypatch: pytest.MonkeyPatch, triggerer: dict[str, Any] | None
) -> None:
    # None: no triggerer ever ran; deferred tasks would then never resume.
    monkeypatch.setitem(FakeAirflow.health, "triggerer", triggerer)
    result = tc.run_check("airflow", airflow_config)
    assert not result.healthy
    assert f"triggerer {(triggerer or {}).get('status')}" in result.detail


# --- the standard library only -----------------------------------------------------------


def test_the_script_imports_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "test-connections.py").read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported - sys.stdlib_module_names
    assert not {call for call in ast.walk(tree) if isinstance(call, ast.Name) and call.id == "__import__"}


def test_the_script_parses_as_python_3_9() -> None:
    # A user's system python3 may be older than the project's: the syntax stays 3.9.
    ast.parse((ROOT / "test-connections.py").read_text(encoding="utf-8"), feature_version=(3, 9))


def test_help_names_no_client_library() -> None:
    text = (tc.build_parser().format_help() + (tc.__doc__ or "")).lower()
    for library in ("confluent", "psycopg", "redis-py", "pip install"):
        assert library not in text


# --- services not started on purpose ------------------------------------------------------


def test_not_started_parses_service_reason_pairs() -> None:
    assert tc.parse_not_started("grafana=no image can be had; spark = left out ;;") == {
        "grafana": "no image can be had",
        "spark": "left out",
    }
    assert tc.parse_not_started("") == {}
    assert tc.parse_not_started("grafana") == {"grafana": "left out by this run"}
    with pytest.raises(ValueError, match="unknown service 'grafna'"):
        tc.parse_not_started("grafna=typo")


def test_a_not_started_service_is_reported_not_checked_and_passes(
    tmp_path: Path, fakes: dict[str, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_run(_config: Any) -> str:
        raise AssertionError("a service that was not started must not be checked")

    monkeypatch.setitem(tc.CHECKS, "grafana", (must_not_run, "http://{address}/api/health"))
    env_file = env_file_with(tmp_path, {"PLATFORM_HOST": "127.0.0.1", **fakes})
    environ = {"FILMREC_NOT_STARTED": "grafana=no image can be had here"}
    argv = ["--only", "zookeeper,grafana", "--env-file", str(env_file), "--wait", "30"]
    assert tc.main(argv, environ=environ) == 0
    output = capsys.readouterr().out
    grafana_row = next(line for line in output.splitlines() if line.startswith("grafana"))
    assert "not started" in grafana_row and grafana_row.endswith("no image can be had here")
    assert output.rstrip().endswith("1/2 services healthy; not started: grafana")


def test_not_started_outside_the_selection_is_not_reported(
    tmp_path: Path, fakes: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = env_file_with(tmp_path, {"PLATFORM_HOST": "127.0.0.1", **fakes})
    argv = ["--only", "zookeeper", "--json", "--env-file", str(env_file)]
    assert tc.main(argv, environ={"FILMREC_NOT_STARTED": "grafana=no image"}) == 0
    assert [r["service"] for r in json.loads(capsys.readouterr().out)["results"]] == ["zookeeper"]


def test_an_unknown_not_started_service_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--only", "api", "--env-file", str(tmp_path / "none")]
    assert tc.main(argv, environ={"FILMREC_NOT_STARTED": "grafna=typo"}) == 2
    assert "grafna" in capsys.readouterr().err


# --- the API: ready, no model yet, failing --------------------------------------------------


def ready_body(*, model_loaded: bool, registry: str) -> bytes:
    """A /ready body as the API's own schema builds it."""
    from filmrec.serving.schemas import DependencyOut, ReadyOut

    report = ReadyOut(
        status="ready" if model_loaded else "not_ready",
        model_loaded=model_loaded,
        model_version="3" if model_loaded else None,
        dependencies=[
            DependencyOut(name="database", status="up", kind="postgresql"),
            DependencyOut(
                name="model_registry",
                status=registry,  # type: ignore[arg-type]
                kind="mlflow-server",
                detail=None if registry == "up" else "MlflowException: connection refused",
            ),
        ],
    )
    return report.model_dump_json().encode()


class FakeApi(http.server.BaseHTTPRequestHandler):
    answer: ClassVar[tuple[int, bytes]] = (200, b"")

    def do_GET(self) -> None:
        if self.path != "/ready":
            self.send_error(404)
            return
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def api_env(tmp_path: Path) -> Iterator[Path]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield env_file_with(tmp_path, {"PLATFORM_HOST": "127.0.0.1", "API_PORT": server.server_address[1]})
    finally:
        server.shutdown()
        server.server_close()


def test_an_api_with_a_model_is_ok(api_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeApi, "answer", (200, ready_body(model_loaded=True, registry="up")))
    result = tc.run_check("api", tc.Config.load(api_env, {}))
    assert result.status == tc.OK and '"model_loaded":true' in result.detail


def test_an_api_without_a_model_is_no_model_yet_and_passes(
    api_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(FakeApi, "answer", (503, ready_body(model_loaded=False, registry="up")))
    assert tc.main(["--only", "api", "--json", "--env-file", str(api_env)], environ={}) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["healthy"] is True
    (result,) = payload["results"]
    assert result["status"] == "no model yet" and result["healthy"] is False
    assert result["detail"].startswith("run make compose-bootstrap")


def test_require_model_makes_no_model_yet_fail(
    api_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(FakeApi, "answer", (503, ready_body(model_loaded=False, registry="up")))
    argv = ["--only", "api", "--require-model", "--env-file", str(api_env)]
    assert tc.main(argv, environ={}) == 1
    assert "no model yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((503, ready_body(model_loaded=False, registry="down")), "model registry down (MlflowException"),
        ((503, b"<html>502 Bad Gateway</html>"), "/ready: HTTP 503 <html>"),
        ((500, b"Internal Server Error"), "/ready: HTTP 500"),
    ],
)
def test_an_api_without_its_registry_or_broken_fails(
    api_env: Path, monkeypatch: pytest.MonkeyPatch, answer: tuple[int, bytes], expected: str
) -> None:
    monkeypatch.setattr(FakeApi, "answer", answer)
    result = tc.run_check("api", tc.Config.load(api_env, {}))
    assert result.status == tc.FAIL
    assert expected in result.detail


def no_model_api(_config: Any) -> str:
    raise tc.NoModelYet("run make compose-bootstrap")


def fake_clock() -> tuple[list[float], dict[str, Any]]:
    now = [0.0]
    return now, {"clock": lambda: now[0], "sleep": lambda seconds: now.__setitem__(0, now[0] + seconds)}


def test_wait_stops_once_the_api_has_no_model_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tc.CHECKS, "api", (no_model_api, "http://{address}/ready"))
    now, timing = fake_clock()
    results = tc.wait_for_checks(
        ["api", "grafana"],
        tc.Config.load(None, {}),
        wait_seconds=300,
        interval_seconds=5,
        not_started={"grafana": "no image"},
        **timing,
    )
    assert [result.status for result in results] == [tc.NO_MODEL_YET, tc.NOT_STARTED]
    assert now[0] == 0


def test_wait_with_require_model_waits_for_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([tc.NoModelYet("run make compose-bootstrap"), None])

    def api_gets_a_model(_config: Any) -> str:
        answer = next(answers)
        if answer is not None:
            raise answer
        return "/ready ready"

    monkeypatch.setitem(tc.CHECKS, "api", (api_gets_a_model, "http://{address}/ready"))
    now, timing = fake_clock()
    results = tc.wait_for_checks(
        ["api"],
        tc.Config.load(None, {}),
        wait_seconds=300,
        interval_seconds=5,
        require_model=True,
        **timing,
    )
    assert results[0].status == tc.OK
    assert now[0] == 5


# --- MLflow behind basic auth -------------------------------------------------------------


class FakeMlflowWithBasicAuth(http.server.BaseHTTPRequestHandler):
    expected = "Basic " + base64.b64encode(b"admin:s3cret").decode()

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"OK" if self.path == "/health" else json.dumps({"registered_models": [{}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("credentials", "healthy"),
    [({"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "s3cret"}, True), ({}, False)],
)
def test_mlflow_uses_basic_auth_when_configured(
    tmp_path: Path, credentials: dict[str, str], healthy: bool
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeMlflowWithBasicAuth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        values = {"PLATFORM_HOST": "127.0.0.1", "MLFLOW_PORT": server.server_address[1]}
        result = tc.run_check("mlflow", tc.Config.load(env_file_with(tmp_path, values), credentials))
    finally:
        server.shutdown()
        server.server_close()
    assert result.healthy is healthy, result.detail
    assert result.detail == ("/health OK, registry: 1 model(s)" if healthy else "/health: HTTP 401")


# --- SCRAM-SHA-256 ------------------------------------------------------------------------

# RFC 7677, section 3: user "user", password "pencil".
RFC7677_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_matches_the_rfc_7677_example() -> None:
    scram = tc.ScramSha256("pencil", user="user", nonce=RFC7677_NONCE)
    assert scram.client_first() == b"n,,n=user,r=" + RFC7677_NONCE.encode()
    assert scram.client_final(RFC7677_SERVER_FIRST) == RFC7677_CLIENT_FINAL
    scram.verify_server_final(RFC7677_SERVER_FINAL)


def test_scram_rejects_a_server_that_does_not_know_the_password() -> None:
    scram = tc.ScramSha256("not pencil", user="user", nonce=RFC7677_NONCE)
    scram.client_final(RFC7677_SERVER_FIRST)
    with pytest.raises(tc.CheckFailed, match="signature does not match"):
        scram.verify_server_final(RFC7677_SERVER_FINAL)
    with pytest.raises(tc.CheckFailed, match="server error invalid-proof"):
        scram.verify_server_final(b"e=invalid-proof")


def test_scram_rejects_a_nonce_that_is_not_ours() -> None:
    scram = tc.ScramSha256("pencil", nonce="abc")
    with pytest.raises(tc.CheckFailed, match="nonce"):
        scram.client_final(b"r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")


def test_postgres_scram_sends_an_empty_user_name_and_a_fresh_nonce() -> None:
    first, second = tc.ScramSha256("pw").client_first(), tc.ScramSha256("pw").client_first()
    assert first.startswith(b"n,,n=,r=") and first != second


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("pencil", b"pencil"),
        ("I\u00adX", b"IX"),  # soft hyphen: mapped to nothing
        ("a\u00a0b", b"a b"),  # no-break space: mapped to a space
        ("\u2168", b"IX"),  # ROMAN NUMERAL NINE: NFKC
        ("a\u0007b", b"a\x07b"),  # a control character is prohibited: the raw bytes, as PostgreSQL
    ],
)
def test_saslprep_prepares_passwords_as_postgresql_does(password: str, prepared: bytes) -> None:
    assert tc.saslprep(password) == prepared


# --- Kafka: a fake broker for what a real one will not do ------------------------------------


def kafka_string(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


class FakeKafka(socketserver.BaseRequestHandler):
    """ApiVersions v0 and Metadata v4 answers (one broker, the topics in `topics`)."""

    metadata_versions: ClassVar[tuple[int, int]] = (0, 12)
    topics: ClassVar[dict[str, tuple[int, int]]] = {"ratings": (0, 3)}  # name: (error, partitions)
    requests: ClassVar[list[tuple[int, int, bytes]]] = []

    def handle(self) -> None:
        messages: list[bytes] = []
        FakePostgres.received.append(messages)
        stream = self.request.makefile("rb")
        while header := stream.read(4):
            message = stream.read(struct.unpack(">i", header)[0])
            api_key, version, correlation_id, client_id_size = struct.unpack(">hhih", message[:10])
            body = message[10 + client_id_size :]
            FakeKafka.requests.append((api_key, version, body))
            if api_key == 18:
                low, high = self.metadata_versions
                reply = (
                    struct.pack(">hi", 0, 2)
                    + struct.pack(">hhh", 3, low, high)
                    + struct.pack(">hhh", 18, 0, 3)
                )
            else:
                (name_size,) = struct.unpack(">h", body[4:6])
                name = body[6 : 6 + name_size].decode()
                error, partitions = self.topics.get(name, (3, 0))
                # error, index, leader, then the replica and ISR arrays of one node each
                partition = struct.pack(">hii", 0, 0, 1) + struct.pack(">ii", 1, 1) + struct.pack(">ii", 1, 1)
                reply = (
                    struct.pack(">i", 0)
                    + struct.pack(">i", 1)
                    + struct.pack(">i", 1)
                    + kafka_string("broker")
                    + struct.pack(">ih", 9092, -1)
                    + kafka_string("cluster")
                    + struct.pack(">i", 1)
                    + struct.pack(">i", 1)
                    + struct.pack(">h", error)
                    + kafka_string(name)
                    + struct.pack(">?", False)
                    + struct.pack(">i", partitions)
                    + partition * partitions
                )
            response = struct.pack(">i", correlation_id) + reply
            self.request.sendall(struct.pack(">i", len(response)) + response)


@pytest.fixture
def kafka_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(FakeKafka, "requests", [])
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FakeKafka)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tc.Config.load(
            None, {"PLATFORM_HOST": "127.0.0.1", "KAFKA_PORT": str(server.server_address[1])}
        )
    finally:
        server.shutdown()
        server.server_close()


def test_kafka_reports_brokers_and_partitions_without_creating_topics(kafka_config: Any) -> None:
    result = tc.run_check("kafka", kafka_config)
    assert result.detail == "1 broker(s), topic ratings: 3 partitions"
    assert result.status == tc.OK
    (versions_key, _, _), (metadata_key, metadata_version, body) = FakeKafka.requests
    assert (versions_key, metadata_key, metadata_version) == (18, 3, 4)
    assert body == struct.pack(">ih", 1, 7) + b"ratings" + b"\x00"  # allow_auto_topic_creation false


def test_kafka_without_the_topic_fails_clearly(kafka_config: Any) -> None:
    config = tc.Config.load(None, {**kafka_config.values, "KAFKA_RATINGS_TOPIC": "other"})
    result = tc.run_check("kafka", config)
    assert result.status == tc.FAIL
    assert result.detail == "1 broker(s) but no topic 'other'"


def test_kafka_without_metadata_v4_fails_clearly(kafka_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeKafka, "metadata_versions", (0, 3))
    result = tc.run_check("kafka", kafka_config)
    assert result.detail == "broker does not serve Metadata v4 (it serves v0-v3)"


# --- PostgreSQL: a fake server for cleartext and MD5 and for errors ------------------------


def pg_message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack(">i", len(payload) + 4) + payload


def pg_error_payload(**fields: str) -> bytes:
    return b"".join(code.encode() + value.encode() + b"\0" for code, value in fields.items()) + b"\0"


class FakePostgres(socketserver.BaseRequestHandler):
    """Authenticates with `method` ("cleartext" or "md5") against user/password, then answers one query."""

    method: ClassVar[str] = "md5"
    password: ClassVar[str] = "s3cret"
    row: ClassVar[list[bytes | None]] = [b"1"]
    # What each connection sent after its start-up message, one list per connection in
    # the order they were accepted (the check connects to each database in turn).
    received: ClassVar[list[list[bytes]]] = []

    def read(self, stream: Any) -> tuple[bytes, bytes]:
        kind = stream.read(1)
        (size,) = struct.unpack(">i", stream.read(4))
        return kind, stream.read(size - 4)

    def handle(self) -> None:
        messages: list[bytes] = []
        FakePostgres.received.append(messages)
        stream = self.request.makefile("rb")
        (size,) = struct.unpack(">i", stream.read(4))
        startup = stream.read(size - 4)
        words = startup[4:].split(b"\0")
        parameters = dict(zip(words[0:-2:2], words[1:-2:2], strict=True))
        user = parameters[b"user"].decode()
        salt = b"\x01\x02\x03\x04"
        if self.method == "md5":
            self.request.sendall(pg_message(b"R", struct.pack(">i", 5) + salt))
            inner = hashlib.md5((self.password + user).encode()).hexdigest().encode()
            expected = b"md5" + hashlib.md5(inner + salt).hexdigest().encode() + b"\0"
        else:
            self.request.sendall(pg_message(b"R", struct.pack(">i", 3)))
            expected = self.password.encode() + b"\0"
        _, answer = self.read(stream)
        messages.append(answer)
        if answer != expected:
            failure = pg_error_payload(
                S="FATAL", V="FATAL", C="28P01", M=f'password authentication failed for user "{user}"'
            )
            self.request.sendall(pg_message(b"E", failure))
            return
        self.request.sendall(
            pg_message(b"R", struct.pack(">i", 0))
            + pg_message(b"S", b"server_version\x0016.4\x00")
            + pg_message(b"K", struct.pack(">ii", 1, 2))
            + pg_message(b"Z", b"I")
        )
        kind, query = self.read(stream)
        messages.append(kind + query)
        cells = b"".join(
            struct.pack(">i", -1) if cell is None else struct.pack(">i", len(cell)) + cell
            for cell in self.row
        )
        self.request.sendall(
            pg_message(b"T", b"")  # RowDescription: its content is not read
            + pg_message(b"D", struct.pack(">h", len(self.row)) + cells)
            + pg_message(b"C", b"SELECT 1\0")
            + pg_message(b"Z", b"I")
        )
        messages.append(self.read(stream)[0])


@pytest.fixture
def postgres_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(FakePostgres, "received", [])
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FakePostgres)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    values = {"PLATFORM_HOST": "127.0.0.1", "POSTGRES_PORT": str(server.server_address[1])}
    values |= {key: "s3cret" for key in ("APP_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "AIRFLOW_DB_PASSWORD")}
    try:
        yield tc.Config.load(None, values)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("method", ["md5", "cleartext"])
def test_postgres_logs_in_with_md5_and_cleartext(
    postgres_config: Any, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.setattr(FakePostgres, "method", method)
    result = tc.run_check("postgres", postgres_config)
    assert result.status == tc.OK, result.detail
    assert result.detail == "SELECT 1 ok on filmrec, mlflow, airflow"
    # The client may be done before the server's thread has read its Terminate: wait for
    # every connection's last message (a bound, not a timing).
    deadline = time.monotonic() + 10
    while any(len(messages) < 3 for messages in FakePostgres.received) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(FakePostgres.received) == 3
    for messages in FakePostgres.received:
        assert messages[1:] == [b"QSELECT 1\0", b"X"]  # the query, then Terminate


def test_postgres_error_response_is_reported(postgres_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakePostgres, "password", "other")
    result = tc.run_check("postgres", postgres_config)
    assert result.status == tc.FAIL
    assert result.detail == (
        "app database 'filmrec': FATAL 28P01: password authentication failed for user \"filmrec\""
    )


def test_postgres_checks_the_data_row(postgres_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakePostgres, "row", [None])
    result = tc.run_check("postgres", postgres_config)
    assert result.detail == "app database 'filmrec': SELECT 1 returned [[None]]"


def test_pg_error_keeps_detail_and_hint() -> None:
    payload = pg_error_payload(S="ERROR", C="42P01", M="relation missing", D="the detail", H="the hint")
    assert tc.pg_error(payload) == "ERROR 42P01: relation missing (the detail; the hint)"


class FakeSsh(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        self.request.recv(1024)


@pytest.mark.parametrize("service", ["kafka", "postgres"])
def test_another_protocol_on_the_port_fails_clearly(service: str) -> None:
    # An SSH server greets first: "SSH-" read as a message length is far beyond any answer.
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FakeSsh)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port_variable = tc.PORTS[service][0]
    values = {
        "PLATFORM_HOST": "127.0.0.1",
        port_variable: str(server.server_address[1]),
        "APP_DB_PASSWORD": "x",
    }
    try:
        result = tc.run_check(service, tc.Config.load(None, values))
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == tc.FAIL
    assert "implausible message length" in result.detail
