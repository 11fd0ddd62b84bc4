"""The per-key rate limit in a real Redis: replicas share one budget; Redis down lets writes through."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from filmrec.serving import deps
from filmrec.serving.api_keys import hash_key
from filmrec.serving.app import create_app
from tests.fake_intake import AcceptAll
from tests.integration.service_helpers import make_settings

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
