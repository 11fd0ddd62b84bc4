"""test-connections.py: configuration, output and exit codes, against local fakes."""

from __future__ import annotations

import http.server
import importlib.util
import json
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from tests.static.static_helpers import ROOT


def load_script() -> ModuleType:
    # The file name has a hyphen, so it is loaded by path rather than imported.
    spec = importlib.util.spec_from_file_location(
        "test_connections_script_module", ROOT / "test-connections.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


tc = load_script()


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
    tc.Result("kafka", "kafka://localhost:9092", True, 12.34, "1 broker(s)"),
    tc.Result("api", "http://localhost:8000/ready", False, 3.0, "URLError: refused"),
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


def test_json_output() -> None:
    payload = json.loads(tc.render_json(RESULTS))
    assert payload["healthy"] is False
    assert payload["results"][0] == {
        "service": "kafka",
        "endpoint": "kafka://localhost:9092",
        "healthy": True,
        "latency_ms": 12.34,
        "detail": "1 broker(s)",
    }


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
    assert not result.healthy
    assert "APP_DB_PASSWORD is not set" in result.detail or "not installed" in result.detail


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
