#!/usr/bin/env python3
"""Check every service of the filmrec platform at the protocol level.

Each check speaks the service's own protocol (ZooKeeper four-letter words, Kafka
metadata, SQL, RESP, HTTP APIs) rather than only opening a port, so "healthy" means
"usable by the platform". Host ports and credentials come from the same .env file as
docker-compose.yml, overridden by the environment; the defaults are localhost and the
platform's standard ports, so the script also checks a native stack.

    python test-connections.py                     # one pass, table output
    python test-connections.py --wait 300          # retry until healthy or 300 s
    python test-connections.py --only kafka,api --json

Exit code: 0 when every checked service is healthy, 1 otherwise, 2 on usage errors.
Only the standard library is required; the Kafka, PostgreSQL and Redis checks use
confluent-kafka, psycopg and redis when installed and fail with a clear message if not.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_HOST = "localhost"
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_INTERVAL_SECONDS = 5.0

# Published port of each service: (variable in .env, default).
PORTS: dict[str, tuple[str, int]] = {
    "zookeeper": ("ZOOKEEPER_PORT", 2181),
    "kafka": ("KAFKA_PORT", 9092),
    "postgres": ("POSTGRES_PORT", 5432),
    "redis": ("REDIS_PORT", 6379),
    "spark": ("SPARK_MASTER_WEBUI_PORT", 8081),
    "mlflow": ("MLFLOW_PORT", 5000),
    "airflow": ("AIRFLOW_PORT", 8080),
    "api": ("API_PORT", 8000),
    "prometheus": ("PROMETHEUS_PORT", 9090),
    "grafana": ("GRAFANA_PORT", 3000),
}

# The databases docker/postgres creates: (label, name var, user var, password var, default).
DATABASES: tuple[tuple[str, str, str, str, str], ...] = (
    ("app", "APP_DB_NAME", "APP_DB_USER", "APP_DB_PASSWORD", "filmrec"),
    ("mlflow", "MLFLOW_DB_NAME", "MLFLOW_DB_USER", "MLFLOW_DB_PASSWORD", "mlflow"),
    ("airflow", "AIRFLOW_DB_NAME", "AIRFLOW_DB_USER", "AIRFLOW_DB_PASSWORD", "airflow"),
)


class CheckFailed(Exception):
    """The service answered, or failed to, in a way that makes it unhealthy."""


@dataclass(frozen=True)
class Result:
    service: str
    endpoint: str
    healthy: bool
    latency_ms: float
    detail: str


# --- configuration ---------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """The KEY=VALUE pairs of a dotenv file (comments, blank lines, `export` and quotes handled)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:  # an inline comment after an unquoted value
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


@dataclass(frozen=True)
class Config:
    """Where the services are and how to log in: .env values overridden by the environment."""

    values: Mapping[str, str]
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def load(
        cls,
        env_file: Path | None,
        environ: Mapping[str, str],
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> Config:
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            values.update(parse_env_file(env_file.read_text(encoding="utf-8")))
        values.update(environ)
        return cls(values=values, timeout=timeout)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key) or default

    def require(self, key: str) -> str:
        value = self.get(key)
        if not value:
            raise CheckFailed(f"{key} is not set (in the environment or the env file)")
        return value

    def host(self, service: str) -> str:
        """CHECK_<SERVICE>_HOST, else PLATFORM_HOST, else localhost."""
        return self.get(f"CHECK_{service.upper()}_HOST") or self.get("PLATFORM_HOST", DEFAULT_HOST)

    def port(self, service: str) -> int:
        key, default = PORTS[service]
        raw = self.get(key, str(default))
        try:
            return int(raw)
        except ValueError as error:
            raise CheckFailed(f"{key}={raw!r} is not a port number") from error

    def address(self, service: str) -> str:
        return f"{self.host(service)}:{self.port(service)}"

    def url(self, service: str, path: str) -> str:
        return f"http://{self.address(service)}{path}"


# --- protocol helpers -----------------------------------------------------------------


def four_letter_word(host: str, port: int, word: str, timeout: float) -> str:
    """Send a ZooKeeper four-letter command and return the whole reply."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(word.encode("ascii"))
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def http_get(url: str, timeout: float, *, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """GET a URL and return (status, body); HTTP error statuses are returned, not raised."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_json(url: str, timeout: float, *, auth: tuple[str, str] | None = None) -> Any:
    status, body = http_get(url, timeout, auth=auth)
    if status != 200:
        raise CheckFailed(f"GET {url}: HTTP {status}")
    try:
        return json.loads(body)
    except ValueError as error:
        raise CheckFailed(f"GET {url}: not JSON") from error


def import_client(module: str, package: str) -> Any:
    """Import an optional client library, or fail the check saying what to install."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as error:
        raise CheckFailed(f"client not installed: pip install {package}") from error


# --- checks: each returns a detail string or raises -------------------------------------


def check_zookeeper(config: Config) -> str:
    host, port = config.host("zookeeper"), config.port("zookeeper")
    reply = four_letter_word(host, port, "ruok", config.timeout)
    if reply.strip() != "imok":
        raise CheckFailed(f"ruok answered {reply.strip()!r} (is ruok in 4lw.commands.whitelist?)")
    stats = four_letter_word(host, port, "srvr", config.timeout)
    modes = [line.split(":", 1)[1].strip() for line in stats.splitlines() if line.startswith("Mode:")]
    return f"imok, mode {modes[0] if modes else '?'}"


def check_kafka(config: Config) -> str:
    admin_module = import_client("confluent_kafka.admin", "confluent-kafka")
    topic = config.get("KAFKA_RATINGS_TOPIC", "ratings")
    # librdkafka logs every failed connection attempt to stderr; the result says enough.
    quiet = logging.getLogger("test-connections.kafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = admin_module.AdminClient(
        {
            "bootstrap.servers": config.address("kafka"),
            "socket.timeout.ms": int(config.timeout * 1000),
            "logger": quiet,
        }
    )
    try:
        metadata = admin.list_topics(timeout=config.timeout)
    except Exception as error:  # KafkaException, but the class lives in the optional client
        raise CheckFailed(f"metadata request failed: {error}") from error
    if topic not in metadata.topics:
        raise CheckFailed(f"{len(metadata.brokers)} broker(s) but no topic {topic!r}")
    topic_metadata = metadata.topics[topic]
    if topic_metadata.error is not None:
        raise CheckFailed(f"topic {topic!r}: {topic_metadata.error}")
    return f"{len(metadata.brokers)} broker(s), topic {topic}: {len(topic_metadata.partitions)} partitions"


def check_postgres(config: Config) -> str:
    psycopg = import_client("psycopg", "'psycopg[binary]'")
    checked = []
    for label, name_key, user_key, password_key, default in DATABASES:
        dbname = config.get(name_key, default)
        try:
            with psycopg.connect(
                host=config.host("postgres"),
                port=config.port("postgres"),
                dbname=dbname,
                user=config.get(user_key, default),
                password=config.require(password_key),
                connect_timeout=max(1, round(config.timeout)),
            ) as conn:
                row = conn.execute("SELECT 1").fetchone()
        except psycopg.Error as error:
            raise CheckFailed(f"{label} database {dbname!r}: {error}".strip()) from error
        if row != (1,):
            raise CheckFailed(f"{label} database {dbname!r}: SELECT 1 returned {row!r}")
        checked.append(dbname)
    return f"SELECT 1 ok on {', '.join(checked)}"


def check_redis(config: Config) -> str:
    redis = import_client("redis", "redis")
    retry = import_client("redis.retry", "redis")
    backoff = import_client("redis.backoff", "redis")
    client = redis.Redis(
        host=config.host("redis"),
        port=config.port("redis"),
        socket_timeout=config.timeout,
        socket_connect_timeout=config.timeout,
        # One attempt: --wait does the retrying, and a refused port should fail fast.
        retry=retry.Retry(backoff.NoBackoff(), 0),
    )
    try:
        if not client.ping():
            raise CheckFailed("PING did not answer PONG")
        version = client.info("server").get("redis_version", "?")
    except redis.RedisError as error:
        raise CheckFailed(str(error)) from error
    finally:
        client.close()
    return f"PONG, redis {version}"


def check_spark(config: Config) -> str:
    state = http_json(config.url("spark", "/json/"), config.timeout)
    if state.get("status") != "ALIVE":
        raise CheckFailed(f"master status {state.get('status')!r}")
    alive = state.get("aliveworkers")
    if alive is None:
        alive = sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")
    if alive < 1:
        raise CheckFailed("master is ALIVE but has no alive worker")
    return f"master ALIVE, {alive} alive worker(s), {state.get('cores', '?')} cores"


def check_mlflow(config: Config) -> str:
    status, body = http_get(config.url("mlflow", "/health"), config.timeout)
    if status != 200:
        raise CheckFailed(f"/health: HTTP {status}")
    search = http_json(
        config.url("mlflow", "/api/2.0/mlflow/registered-models/search?max_results=100"),
        config.timeout,
    )
    models = search.get("registered_models", [])
    more = "+" if search.get("next_page_token") else ""
    return f"/health {body.decode(errors='replace').strip()}, registry: {len(models)}{more} model(s)"


def check_airflow(config: Config) -> str:
    health = http_json(config.url("airflow", "/api/v2/monitor/health"), config.timeout)
    statuses = {
        component: (health.get(component) or {}).get("status")
        for component in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    }
    unhealthy = [
        f"{component} {status}"
        for component, status in statuses.items()
        # dag_processor is only reported when it runs as its own component.
        if status != "healthy" and not (component == "dag_processor" and status is None)
    ]
    if unhealthy:
        raise CheckFailed(", ".join(unhealthy))
    return ", ".join(f"{component} {status}" for component, status in statuses.items() if status)


def check_api(config: Config) -> str:
    status, body = http_get(config.url("api", "/ready"), config.timeout)
    text = body.decode(errors="replace").strip()
    if status != 200:
        raise CheckFailed(f"/ready: HTTP {status} {text[:200]}")
    return f"/ready {text[:200]}"


def check_prometheus(config: Config) -> str:
    status, _ = http_get(config.url("prometheus", "/-/ready"), config.timeout)
    if status != 200:
        raise CheckFailed(f"/-/ready: HTTP {status}")
    targets = http_json(config.url("prometheus", "/api/v1/targets?state=active"), config.timeout)
    active = targets.get("data", {}).get("activeTargets", [])
    if not active:
        raise CheckFailed("no active scrape targets")
    down = [
        f"{target.get('labels', {}).get('job', '?')} {target.get('health')}"
        f" ({target.get('lastError') or 'not scraped yet'})"
        for target in active
        if target.get("health") != "up"
    ]
    if down:
        raise CheckFailed(f"{len(down)}/{len(active)} targets not up: " + "; ".join(down))
    return f"ready, {len(active)}/{len(active)} targets up"


def check_grafana(config: Config) -> str:
    health = http_json(config.url("grafana", "/api/health"), config.timeout)
    if health.get("database") != "ok":
        raise CheckFailed(f"/api/health database {health.get('database')!r}")
    auth = (config.get("GRAFANA_ADMIN_USER", "admin"), config.require("GRAFANA_ADMIN_PASSWORD"))
    source = http_json(config.url("grafana", "/api/datasources/uid/prometheus"), config.timeout, auth=auth)
    if source.get("type") != "prometheus":
        raise CheckFailed(f"datasource uid 'prometheus' has type {source.get('type')!r}")
    return f"grafana {health.get('version', '?')}, datasource prometheus -> {source.get('url')}"


CheckFunction = Callable[[Config], str]

# Dependency order: the first failures in the table are the likely causes.
CHECKS: dict[str, tuple[CheckFunction, str]] = {
    "zookeeper": (check_zookeeper, "tcp://{address} ruok/srvr"),
    "kafka": (check_kafka, "kafka://{address}"),
    "postgres": (check_postgres, "postgresql://{address}"),
    "redis": (check_redis, "redis://{address}"),
    "spark": (check_spark, "http://{address}/json/"),
    "mlflow": (check_mlflow, "http://{address}/health"),
    "airflow": (check_airflow, "http://{address}/api/v2/monitor/health"),
    "api": (check_api, "http://{address}/ready"),
    "prometheus": (check_prometheus, "http://{address}/-/ready"),
    "grafana": (check_grafana, "http://{address}/api/health"),
}


def endpoint_for(service: str, config: Config) -> str:
    try:
        address = config.address(service)
    except CheckFailed:  # a malformed port is reported by the check itself
        address = f"{config.host(service)}:?"
    return CHECKS[service][1].format(address=address)


def run_check(service: str, config: Config) -> Result:
    """Run one check; any exception is a failed check, never a crash of the script."""
    started = time.perf_counter()
    try:
        detail, healthy = CHECKS[service][0](config), True
    except CheckFailed as error:
        detail, healthy = str(error), False
    except Exception as error:  # connection refused, timeouts, unexpected payloads, ...
        detail, healthy = f"{type(error).__name__}: {error}", False
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return Result(service, endpoint_for(service, config), healthy, latency_ms, detail)


def run_checks(services: Sequence[str], config: Config) -> list[Result]:
    """Run the checks concurrently (each may wait for its timeout) and keep their order."""
    if not services:
        return []
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        return list(pool.map(lambda service: run_check(service, config), services))


def wait_for_checks(
    services: Sequence[str],
    config: Config,
    *,
    wait_seconds: float,
    interval_seconds: float,
    progress: Callable[[str], None] = lambda _message: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Result]:
    """Re-run the failing checks until all pass or wait_seconds have passed."""
    deadline = clock() + wait_seconds
    results = {result.service: result for result in run_checks(services, config)}
    while True:
        failing = [service for service in services if not results[service].healthy]
        if not failing or clock() >= deadline:
            return [results[service] for service in services]
        progress(f"waiting for {', '.join(failing)} ({max(0, round(deadline - clock()))} s left)")
        sleep(min(interval_seconds, max(0.0, deadline - clock())))
        results.update((result.service, result) for result in run_checks(failing, config))


# --- output ---------------------------------------------------------------------------

COLUMNS = ("service", "endpoint", "status", "latency ms", "detail")


def result_row(result: Result) -> tuple[str, ...]:
    return (
        result.service,
        result.endpoint,
        "OK" if result.healthy else "FAIL",
        f"{result.latency_ms:.1f}",
        result.detail,
    )


def render_table(results: Sequence[Result]) -> str:
    rows = [COLUMNS, *(result_row(result) for result in results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in [*widths, len(COLUMNS[-1])]))
    healthy = sum(result.healthy for result in results)
    lines.append(f"\n{healthy}/{len(results)} services healthy")
    return "\n".join(lines)


def render_json(results: Sequence[Result]) -> str:
    payload = {
        "healthy": all(result.healthy for result in results),
        "results": [asdict(result) for result in results],
    }
    return json.dumps(payload, indent=2)


# --- command line ---------------------------------------------------------------------


def service_list(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Protocol-level health checks of the filmrec platform.",
        epilog=f"services: {', '.join(CHECKS)}",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="retry failing checks until all are healthy or SECONDS have passed",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="pause between retries with --wait (default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="timeout of each network operation (default %(default)s)",
    )
    parser.add_argument("--only", type=service_list, metavar="A,B", help="check only these services")
    parser.add_argument("--skip", type=service_list, metavar="A,B", help="do not check these services")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path(".env"),
        help="dotenv file with ports and credentials (default %(default)s); "
        "environment variables override it",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.wait < 0 or args.interval <= 0 or args.timeout <= 0:
        parser.error("--wait must be >= 0, --interval and --timeout > 0")
    return args


def selected_services(only: Sequence[str] | None, skip: Sequence[str] | None) -> list[str]:
    chosen = set(only) if only else set(CHECKS)
    chosen -= set(skip or ())
    return [service for service in CHECKS if service in chosen]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parse_args(argv)
    services = selected_services(args.only, args.skip)
    if not services:
        print("no service left to check (--only/--skip)", file=sys.stderr)
        return 2
    config = Config.load(args.env_file, os.environ if environ is None else environ, args.timeout)
    results = wait_for_checks(
        services,
        config,
        wait_seconds=args.wait,
        interval_seconds=args.interval,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print(render_json(results) if args.json else render_table(results))
    return 0 if all(result.healthy for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
