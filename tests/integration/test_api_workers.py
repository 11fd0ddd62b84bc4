"""API_WORKERS=2: two real worker processes behind one port, sharing Redis.

Started as the image starts it (`python api/main.py`), against a trained model and
a Redis of the test's own. Every answer is checked, and so is that both workers
answered: each held-open connection is matched to the worker process that owns it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from devstack.processes import free_port
from filmrec.ingestion.topics import ensure_topic
from tests.integration.service_helpers import DEMO_KEY, REPO, TEST_READ_RATE_LIMIT, make_settings, wait_for

# Settings this test gives the server; anything else in the environment could point
# it at another test's services, so these names are removed first.
_SERVICE_NAMES = (
    "MLFLOW_TRACKING_URI",
    "DATABASE_URL",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_RATINGS_TOPIC",
    "API_WORKERS",
)


@pytest.fixture
def two_workers(
    trained_root: Path, throwaway_redis: Any, kafka_bootstrap: str
) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    # With REDIS_URL a rating is taken through Kafka (POST /ratings answers 503 without
    # a broker), so the workers get a real one, on a topic of this test's own.
    topic = f"ratings-workers-{uuid.uuid4().hex[:10]}"
    ensure_topic(
        make_settings(trained_root, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_RATINGS_TOPIC=topic)
    )
    env = {name: value for name, value in os.environ.items() if name not in _SERVICE_NAMES}
    env |= {
        "FILMREC_VAR_DIR": str(trained_root / "var"),
        "LAKEHOUSE_PATH": str(trained_root / "lakehouse"),
        "REDIS_URL": throwaway_redis.url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_RATINGS_TOPIC": topic,
        "API_WORKERS": "2",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "MODEL_POLL_SECONDS": "1",
        "FILMREC_READ_RATE_LIMIT": TEST_READ_RATE_LIMIT,
    }
    # Outside the checkout: Settings reads ./.env, and init.sh writes one there (Compose's keys).
    process = subprocess.Popen([sys.executable, str(REPO / "api" / "main.py")], env=env, cwd=trained_root)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, "the API exited at start-up"
            try:
                if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("the API with 2 workers was not ready within 120 s")
        yield base_url, psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _workers(parent: psutil.Process, port: int) -> list[psutil.Process]:
    """The children listening on the API's port: the worker processes."""
    return [
        child
        for child in parent.children(recursive=True)
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections("tcp"))
    ]


def _my_ports(port: int) -> set[int]:
    """The local ports of this process's open connections to the API."""
    return {
        c.laddr.port
        for c in psutil.Process().net_connections("tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port
    }


def _owner(workers: list[psutil.Process], port: int, client_port: int) -> int:
    owners = [
        worker.pid
        for worker in workers
        for c in worker.net_connections("tcp")
        if c.laddr.port == port and c.raddr and c.raddr.port == client_port
    ]
    assert len(owners) == 1, owners
    return owners[0]


def _client_per_worker(base_url: str, workers: list[psutil.Process], port: int) -> dict[int, httpx.Client]:
    """One held-open connection answered by each worker, by worker pid: new connections
    one at a time until each worker has accepted one (the kernel, not the test, picks
    which worker accepts a connection). Each has answered /ready and a list."""
    by_worker: dict[int, httpx.Client] = {}
    spare: list[httpx.Client] = []
    for _attempt in range(100):
        before = _my_ports(port)
        client = httpx.Client(base_url=base_url, timeout=10)
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        recs = client.get("/recommendations/1", params={"k": 5})
        assert recs.status_code == 200, recs.text
        body = recs.json()
        assert len(body["items"]) == 5 and body["strategy"] == "model"
        (client_port,) = _my_ports(port) - before  # both requests used the one connection
        pid = _owner(workers, port, client_port)
        if pid in by_worker:
            spare.append(client)
        else:
            by_worker[pid] = client
        if len(by_worker) == len(workers):
            break
    for client in spare:
        client.close()
    return by_worker


@pytest.fixture
def client_per_worker(two_workers: tuple[str, psutil.Process]) -> Iterator[dict[int, httpx.Client]]:
    base_url, parent = two_workers
    port = int(base_url.rsplit(":", 1)[1])
    workers = _workers(parent, port)
    assert len(workers) == 2
    clients = _client_per_worker(base_url, workers, port)
    try:
        assert set(clients) == {worker.pid for worker in workers}, "a worker never accepted a connection"
        yield clients
    finally:
        for client in clients.values():
            client.close()


def test_both_workers_answer_ready_and_recommendations(client_per_worker: dict[int, httpx.Client]) -> None:
    # The fixture has had /ready and a list answered by each of the two workers.
    assert len(client_per_worker) == 2


def test_a_rating_posted_to_one_worker_leaves_the_other_workers_list(
    client_per_worker: dict[int, httpx.Client],
) -> None:
    # The online state is in Redis and each worker mirrors its versions: a rating taken
    # by one worker must reach what the other serves (the list it holds in its LRU is
    # retired by the new version), and the rated movie must not come back there.
    taking, serving = client_per_worker.values()
    user_id = 7
    first = serving.get(f"/recommendations/{user_id}", params={"k": 10})
    assert first.status_code == 200, first.text
    assert serving.get(f"/recommendations/{user_id}", params={"k": 10}).json()["source"] == "cache"
    rated = first.json()["items"][0]["movie_id"]
    rating = {"user_id": user_id, "movie_id": rated, "rating": 4.5}
    posted = taking.post("/ratings", headers=DEMO_KEY, json=rating)
    assert posted.status_code == 202, posted.text

    def list_without_rated() -> dict[str, Any] | None:
        answer = serving.get(f"/recommendations/{user_id}", params={"k": 10})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body if rated not in [item["movie_id"] for item in body["items"]] else None

    # A bound, not a timing: the loop's promise is seconds.
    body = wait_for(list_without_rated, timeout=30, what="the other worker to drop the rated movie")
    assert body["strategy"] == "fold-in"


def test_two_workers_without_redis_are_refused_with_the_reason(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in _SERVICE_NAMES}
    env |= {"FILMREC_VAR_DIR": str(tmp_path / "var"), "API_WORKERS": "2", "API_PORT": str(free_port())}
    result = subprocess.run(
        [sys.executable, str(REPO / "api" / "main.py")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "API_WORKERS=2 needs REDIS_URL" in result.stderr
