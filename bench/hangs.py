"""Dependencies that hang: a TCP proxy that stops forwarding without closing, under load.

    python -m bench.hangs [--seconds 40] [--rate 200]

A stopped server refuses connections at once; a hung one (a partition, a full
network buffer, a frozen process) accepts them and never answers, which only a
timeout ends. The API runs with each of Redis, PostgreSQL, MLflow and Kafka behind
its own toxiproxy proxy (bench/go_tools.py builds it); while vegeta offers a
constant rate open loop (bench/open_loop.py: GET /recommendations with one POST
/ratings in twenty), one proxy at a time gets a `timeout` toxic of 0 in both
directions: the connections stay open and no byte passes, until the toxic is
removed. Then how long until /ready answers 200 again.

Targets, per dependency:
- no read answers 5xx; a write may answer 503 only while Kafka hangs (the documented
  answer when the broker does not acknowledge: rating_intake.PUBLISH_TIMEOUT_SECONDS);
- p99 of every request within the longest a request may wait on a dependency, as
  configured (request_wait_bound_seconds), and the rate held (open_loop.rate_held).

Redis, PostgreSQL and MLflow are the native servers (scripts/services.sh up); the
bench never stops them here, it only cuts the proxies. Kafka is a private broker that
advertises the proxy's address, so every client connection goes through the proxy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench.open_loop import OpenLoopResult, Write, attack
from devstack.processes import free_port
from filmrec.config import Settings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


class Toxiproxy:
    """One toxiproxy server on loopback and its HTTP API (github.com/Shopify/toxiproxy)."""

    def __init__(self, executable: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(executable), "-host", HOST, "-port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.api = httpx.Client(base_url=f"http://{HOST}:{self.port}", timeout=10)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.api.get("/version").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("toxiproxy did not start") from None
                time.sleep(0.1)

    def proxy(self, name: str, upstream: str, *, listen_port: int | None = None) -> str:
        """A proxy to `upstream` (host:port); returns the host:port it listens on."""
        listen = f"{HOST}:{listen_port or free_port()}"
        self.api.post(
            "/proxies", json={"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        ).raise_for_status()
        return listen

    def hang(self, name: str) -> None:
        """No byte passes either way, and no connection is closed (timeout toxic of 0)."""
        for stream in ("upstream", "downstream"):
            self.api.post(
                f"/proxies/{name}/toxics",
                json={"name": f"hang-{stream}", "type": "timeout", "stream": stream,
                      "toxicity": 1.0, "attributes": {"timeout": 0}},
            ).raise_for_status()  # fmt: skip

    def release(self, name: str) -> None:
        for stream in ("upstream", "downstream"):
            self.api.delete(f"/proxies/{name}/toxics/hang-{stream}")

    def stop(self) -> None:
        self.api.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def through(url: str, listen: str) -> str:
    """`url` with its host and port replaced by the proxy's (user, password, path kept)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{listen}" if credentials else listen
    return urlunsplit(parts._replace(netloc=netloc))


def upstream_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def api_settings(env: dict[str, str]) -> Settings:
    """The Settings the API under test reads: this environment with `env` on top (as
    ServerProcess starts it)."""
    return Settings(**env)  # type: ignore[arg-type]


def request_wait_bound_seconds(settings: Any) -> float:
    """The longest a request may wait on one dependency, as the API is configured: a
    Redis call (REDIS_TIMEOUT_SECONDS), a title lookup (the MovieStore's timeout,
    DEPENDENCY_TIMEOUT_SECONDS x 4: serving/app.py), a publish to Kafka
    (rating_intake.PUBLISH_TIMEOUT_SECONDS). MLflow is polled in the background: no
    request waits on it."""
    from filmrec.serving.rating_intake import PUBLISH_TIMEOUT_SECONDS

    return max(
        settings.redis_timeout_seconds, settings.dependency_timeout_seconds * 4, PUBLISH_TIMEOUT_SECONDS
    )


@dataclass(frozen=True)
class Fault:
    """What is done to one dependency mid-run, and undone."""

    kind: str  # "stop" or "hang"
    dependency: str
    start: Callable[[], object]
    end: Callable[[], object]


def rating_write(user_id: int, movie_id: int) -> Write:
    """The POST /ratings among the reads: the demo key, a valid rating."""
    body = json.dumps({"user_id": user_id, "movie_id": movie_id, "rating": 4.0}).encode()
    return Write("/ratings", body, {"Content-Type": "application/json", "X-API-Key": "demo"}, every=20)


def _wait_ready(base_url: str, *, timeout: float) -> float | None:
    """Seconds until /ready answers 200 (every dependency back), or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return round(time.monotonic() - start, 2)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return None


def verdict(run: OpenLoopResult, *, bound_seconds: float, writes_may_503: bool) -> dict[str, Any]:
    """The targets of one faulted run: every request answered, reads never 5xx, writes
    5xx only where allowed (503, while Kafka hangs), p99 within the bound, and the
    schedule kept (open loop: the generator sent what it offered)."""
    reads_5xx = run.by_method.get("GET", {}).get("5xx", 0)
    writes_5xx = run.by_method.get("POST", {}).get("5xx", 0)
    statuses_5xx = {kind for kind in run.error_kinds if kind.startswith("status_5")}
    # A 503 on a write while Kafka hangs is the documented answer, not a failure.
    writes_ok = writes_5xx == 0 or (writes_may_503 and statuses_5xx <= {"status_503"})
    unanswered = sum(count for kind, count in run.error_kinds.items() if not kind.startswith("status_"))
    other = sum(count for kind, count in run.error_kinds.items() if kind.startswith("status_4"))
    checks = {
        "server_errors_target_met": reads_5xx == 0 and writes_ok,
        "p99_target_met": run.p99_ms <= bound_seconds * 1000,
        "every_request_answered": unanswered == 0,
        "schedule_kept": run.sent >= 0.99 * run.offered_requests_per_second * run.seconds,
    }
    return {
        "reads_5xx": reads_5xx,
        "writes_5xx": writes_5xx,
        "writes_503_allowed": writes_may_503,
        "unanswered": unanswered,
        "answered_4xx": other,
        "p99_ms": run.p99_ms,
        "p99_bound_ms": round(bound_seconds * 1000, 1),
        **checks,
        "target_met": all(checks.values()) and other == 0,
    }


def faulted_run(
    base_url: str, fault: Fault, user_ids: list[int], movie_ids: list[int], *, seconds: float, rate: float,
    bound_seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """Load for `seconds`; the fault from a quarter to half of it; then recovery."""
    paths = [f"/recommendations/{user}?k=10" for user in user_ids]
    outcome: list[OpenLoopResult] = []
    load = threading.Thread(
        target=lambda: outcome.append(
            attack(
                f"{fault.kind} {fault.dependency}", base_url, paths, rate=rate, seconds=seconds,
                timeout_seconds=max(10.0, 4 * bound_seconds), read_bodies=True,
                write=rating_write(user_ids[0], movie_ids[0]),
            )
        ),
        daemon=True,
    )  # fmt: skip
    load.start()
    time.sleep(seconds / 4)
    fault.start()
    began = time.monotonic()
    try:
        time.sleep(seconds / 4)
    finally:
        fault.end()
    ended_after = round(time.monotonic() - began, 2)
    recovery = _wait_ready(base_url, timeout=120)
    load.join()
    if not outcome:
        raise RuntimeError(f"the load run of {fault.kind} {fault.dependency} did not finish")
    run = outcome[0]
    return {
        "fault_seconds": ended_after,
        "seconds_from_end_of_fault_to_ready": recovery,
        **verdict(run, bound_seconds=bound_seconds, writes_may_503=fault.dependency == "kafka"),
        "degraded_answers": run.degraded,
        "run": run.as_dict(),
    }


@contextlib.contextmanager
def proxied_broker(proxies: Toxiproxy, scratch: Path) -> Iterator[str]:
    """A private Kafka broker that advertises the proxy; yields the proxy's address."""
    from devstack import broker

    port, proxy_port = free_port(), free_port()
    listen = proxies.proxy("kafka", f"{HOST}:{port}", listen_port=proxy_port)
    layout = broker.BrokerLayout(
        root=scratch / "kafka", libs=broker.default_layout().libs, port=port,
        controller_port=free_port(), advertised_port=proxy_port,
    )  # fmt: skip
    try:
        broker.up(layout)
        yield listen
    finally:
        broker.down(layout)


def run_hangs(
    settings_env: dict[str, str],
    services: dict[str, str],
    user_ids: list[int],
    movie_ids: list[int],
    *,
    seconds: float,
    rate: float,
    workers: int,
    scratch: Path,
) -> dict[str, Any]:
    """Each of Redis, PostgreSQL, MLflow and Kafka hung in turn behind its proxy, under load.

    `settings_env` is the API's environment against the real services (`services`: their
    URLs); the proxies are put in between here.
    """
    from bench.go_tools import tool
    from bench.http_load import SERVED_APP, ServerProcess, measure, wait_until_up
    from filmrec.ingestion.topics import ensure_topic

    proxies = Toxiproxy(tool("toxiproxy"))
    server = None
    try:
        urls = {
            "redis": services["REDIS_URL"],
            "postgresql": services["DATABASE_URL"],
            "mlflow": services["MLFLOW_TRACKING_URI"],
        }
        listen = {name: proxies.proxy(name, upstream_of(url)) for name, url in urls.items()}
        with proxied_broker(proxies, scratch) as kafka:
            topic = f"bench-hangs-{uuid.uuid4().hex[:8]}"
            env = settings_env | {
                "REDIS_URL": through(urls["redis"], listen["redis"]),
                "DATABASE_URL": through(urls["postgresql"], listen["postgresql"]),
                "MLFLOW_TRACKING_URI": through(urls["mlflow"], listen["mlflow"]),
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
                "KAFKA_RATINGS_TOPIC": topic,
                # The writes are load, not abuse: the per-key limit must not answer 429.
                "FILMREC_RATE_LIMIT": "1000000/minute",
                "API_WORKERS": str(workers),
            }
            settings = api_settings(env)
            ensure_topic(settings.model_copy(update={"kafka_bootstrap_servers": kafka, "kafka_topic": topic}))
            bound = request_wait_bound_seconds(settings)
            server = ServerProcess(SERVED_APP, port=free_port(), env=env, factory=True, workers=workers)
            wait_until_up(f"{server.base_url}/ready")
            measure("warm-up", server.base_url, "/recommendations/{id}", user_ids, seconds=2)
            results: dict[str, Any] = {
                "how": "toxiproxy timeout toxic of 0, both directions: connections open, no byte passes",
                "offered_requests_per_second": rate,
                "seconds_per_run": seconds,
                "mix": "GET /recommendations/{id}?k=10, one POST /ratings in 20",
                "request_wait_bound_seconds": bound,
            }
            for name in ("redis", "postgresql", "mlflow", "kafka"):
                fault = Fault("hang", name, partial(proxies.hang, name), partial(proxies.release, name))
                results[name] = faulted_run(
                    server.base_url,
                    fault,
                    user_ids,
                    movie_ids,
                    seconds=seconds,
                    rate=rate,
                    bound_seconds=bound,
                )
                log.info("hang %s: %s", name, {k: v for k, v in results[name].items() if k != "run"})
            return results
    finally:
        if server is not None:
            server.stop()
        proxies.stop()


def main(argv: list[str] | None = None) -> int:
    """The hangs alone, against the running native services (scripts/services.sh up)."""
    import argparse

    import pandas as pd

    from bench.api_sections import serve_bench_champion_on
    from bench.provenance import write_results
    from filmrec.data.movielens import MovieLensFiles, find_bundled_dir

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=40.0, help="load run per dependency (hung for a quarter)"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s offered")
    parser.add_argument(
        "--root", type=Path, default=Path("var/bench"), help="the bench root with its champion"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/hangs.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ratings = MovieLensFiles.in_directory(find_bundled_dir()).ratings
    frame = pd.read_csv(ratings, usecols=["userId", "movieId"])
    user_ids = sorted(frame["userId"].unique().tolist())
    movie_ids = frame["movieId"].value_counts().index[:500].tolist()
    served = serve_bench_champion_on(args.root.resolve())
    if "skipped" in served:
        print(served["skipped"])
        return 1
    report = served["summary"] | run_hangs(
        served["env"], served["services"], user_ids, movie_ids, seconds=args.seconds, rate=args.rate,
        workers=1, scratch=args.root.resolve() / "hangs",
    )  # fmt: skip
    write_results(args.out, report)
    print(
        json.dumps({k: v for k, v in report.items() if k not in ("redis", "postgresql", "mlflow", "kafka")})
    )
    for name in ("redis", "postgresql", "mlflow", "kafka"):
        print(name, {k: v for k, v in report[name].items() if k != "run"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
