"""The rate limits in a real Redis: replicas share one budget per key (writes) and per client
(reads, in the state Redis); Redis down lets writes through."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from filmrec.serving import deps
from filmrec.serving.api_keys import hash_key
from filmrec.serving.app import create_app
from tests.fake_intake import AcceptAll
from tests.integration.service_helpers import make_settings
from tests.integration.test_redis_state_apart import keys as matching_keys
from tests.integration.test_redis_state_apart import other_database, with_database

RATING = {"user_id": 1, "movie_id": 2, "rating": 4.0}


def replica(root: Path, redis_url: str, keys: str, **overrides: Any) -> FastAPI:
    app = create_app(
        make_settings(
            root, REDIS_URL=redis_url, FILMREC_API_KEYS=keys, FILMREC_RATE_LIMIT="3/minute", **overrides
        )
    )
    app.dependency_overrides[deps.get_rating_intake] = lambda: AcceptAll()
    return app


def test_two_replicas_share_one_limit_per_key_in_redis(redis_url: str, tmp_path: Path) -> None:
    # A key name of this run only: the shared Redis may hold other runs' windows.
    name, key = f"it-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    keys = f"{name}:{hash_key(key)}"
    first, second = (TestClient(replica(tmp_path, redis_url, keys)) for _ in range(2))
    headers = {"X-API-Key": key}
    answers = [
        client.post("/ratings", json=RATING, headers=headers).status_code for client in (first, second, first)
    ]
    assert answers == [202, 202, 202]
    refused = second.post("/ratings", json=RATING, headers=headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert first.post("/ratings", json=RATING, headers=headers).status_code == 429


def test_with_redis_down_writes_are_let_through_not_failed(throwaway_redis: Any, tmp_path: Path) -> None:
    name, key = f"it-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    app = replica(tmp_path, throwaway_redis.url, f"{name}:{hash_key(key)}")
    client = TestClient(app)
    headers = {"X-API-Key": key}
    assert client.post("/ratings", json=RATING, headers=headers).status_code == 202
    throwaway_redis.stop()
    # Over the 3/minute budget, yet every write passes: the limiter degrades open.
    answers = {client.post("/ratings", json=RATING, headers=headers).status_code for _ in range(6)}
    assert answers == {202}
    metrics = client.get("/metrics").text
    assert "filmrec_rate_limit_errors_total" in metrics
    assert 'filmrec_dependency_up{dependency="rate_limit"} 0.0' in metrics


def test_read_windows_live_in_the_state_redis_shared_by_replicas(redis_url: str, tmp_path: Path) -> None:
    # One address of this run only (the forwarded one, from the loopback proxy): the
    # shared Redis may hold other runs' windows.
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    state_url = with_database(redis_url, other_database(redis_url))
    settings = make_settings(
        tmp_path, REDIS_URL=redis_url, REDIS_STATE_URL=state_url, FILMREC_READ_RATE_LIMIT="2/minute"
    )
    replicas = []
    for _ in range(2):
        app = create_app(settings)
        app.state.filmrec = SimpleNamespace(holder=SimpleNamespace(current=None))  # no model: 503
        replicas.append(TestClient(app, client=(address, 40000)))
    first, second = replicas
    cache_side, state_side = redis.Redis.from_url(redis_url), redis.Redis.from_url(state_url)
    try:
        assert first.get("/model").status_code == 503
        assert second.get("/model").status_code == 503
        refused = first.get("/model")  # the third read of this client, across replicas
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert matching_keys(state_side, f"filmrec-limits*read*address:{address}*")
        assert not matching_keys(cache_side, f"*{address}*")
    finally:
        found = matching_keys(state_side, f"*{address}*")
        if found:
            state_side.delete(*found)
        cache_side.close()
        state_side.close()
