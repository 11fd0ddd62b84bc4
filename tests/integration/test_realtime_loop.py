"""The real-time loop against a real broker (and Redis): ratings change recommendations in seconds.

The model is the one the real training job registered (trained_root); events go
through a real Kafka topic of each test's own; the shared state is a real Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from devstack.processes import free_port
from filmrec.config import Settings
from filmrec.ingestion.contract import RatingEvent
from filmrec.ingestion.producer import RatingPublisher
from filmrec.ingestion.topics import ensure_topic
from filmrec.serving.app import create_app
from filmrec.serving.model_holder import ModelHolder
from filmrec.serving.online_state import InProcessOnlineState, RedisOnlineState
from filmrec.serving.rating_stream import RatingStreamConsumer
from tests.integration.service_helpers import DEMO_KEY, TEST_READ_RATE_LIMIT, make_settings, wait_for

NEW_USER = 900_001
# Bounded waits: the loop's promise is seconds; the bound leaves room for a busy CI box.
VISIBLE_WITHIN = 30.0


def loop_settings(trained_root: Path, bootstrap: str, **more: object) -> Settings:
    settings = make_settings(
        trained_root,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_RATINGS_TOPIC=f"ratings-loop-{uuid.uuid4().hex[:10]}",
        **more,
    )
    ensure_topic(settings)
    return settings


def top_ids(client: Any, user_id: int, k: int = 10) -> tuple[list[int], dict[str, Any]]:
    body = client.get(f"/recommendations/{user_id}", params={"k": k}).json()
    return [item["movie_id"] for item in body["items"]], body


def list_without(client: Any, user_id: int, movie_id: int, what: str) -> tuple[list[int], dict[str, Any]]:
    """Poll /recommendations until `movie_id` has left the user's list (bounded)."""

    def check() -> tuple[list[int], dict[str, Any]] | None:
        ids, body = top_ids(client, user_id)
        return (ids, body) if movie_id not in ids else None

    return wait_for(check, timeout=VISIBLE_WITHIN, what=what)


def event(user_id: int, movie_id: int, rating: float = 4.5) -> RatingEvent:
    return RatingEvent(
        user_id=user_id, movie_id=movie_id, rating=rating, rated_at=datetime.now(UTC), source="test"
    )


@pytest.fixture
def api(trained_root: Path, kafka_bootstrap: str) -> Iterator[TestClient]:
    with TestClient(create_app(loop_settings(trained_root, kafka_bootstrap))) as client:
        yield client


def test_a_posted_rating_leaves_the_next_list_and_moves_it(api: TestClient) -> None:
    before, body = top_ids(api, 1)
    assert body["strategy"] == "model"
    rated = before[0]
    response = api.post("/ratings", headers=DEMO_KEY, json={"user_id": 1, "movie_id": rated, "rating": 5.0})
    assert response.status_code == 202
    after, body = list_without(api, 1, rated, "the rated movie to leave the list")
    assert body["strategy"] == "fold-in"
    assert after != before and len(after) == 10


def test_a_new_user_with_five_ratings_is_folded_in(api: TestClient) -> None:
    popular, body = top_ids(api, NEW_USER)
    assert body["strategy"] == "popular"
    rated = popular[:5]
    for movie_id in rated:
        assert (
            api.post(
                "/ratings", headers=DEMO_KEY, json={"user_id": NEW_USER, "movie_id": movie_id, "rating": 4.0}
            ).status_code
            == 202
        )
    after, body = top_ids(api, NEW_USER)
    assert body["strategy"] == "fold-in"
    assert not set(after) & set(rated) and len(after) == 10


def test_an_event_from_any_producer_reaches_scoring_through_the_consumer(
    trained_root: Path, kafka_bootstrap: str
) -> None:
    settings = loop_settings(trained_root, kafka_bootstrap)
    with TestClient(create_app(settings)) as client:
        before, _ = top_ids(client, 2)
        publisher = RatingPublisher(settings)
        publisher.publish(event(2, before[0]))
        publisher.close()
        _ids, body = list_without(client, 2, before[0], "the consumer to apply a replayed event")
        assert body["strategy"] == "fold-in"
        from tests.integration.service_helpers import metric_value

        assert metric_value(client, "filmrec_online_events_total", outcome="applied") >= 1
        assert metric_value(client, "filmrec_event_visibility_seconds_count") >= 1


def _api_process_env(settings: Settings, port: int) -> dict[str, str]:
    # The child reads its settings from the environment, like the real service.
    names = {field.alias for field in Settings.model_fields.values() if field.alias}
    env = {key: value for key, value in os.environ.items() if key not in names}
    env.update(
        FILMREC_VAR_DIR=str(settings.var_dir),
        LAKEHOUSE_PATH=str(settings.lakehouse_path),
        FILMREC_JARS_DIR=str(settings.jars_dir),
        KAFKA_BOOTSTRAP_SERVERS=str(settings.kafka_bootstrap_servers),
        KAFKA_RATINGS_TOPIC=settings.kafka_topic,
        REDIS_URL=str(settings.redis_url),
        API_PORT=str(port),
        MODEL_POLL_SECONDS="1",
        FILMREC_READ_RATE_LIMIT=TEST_READ_RATE_LIMIT,
    )
    return env


def test_two_api_processes_share_the_online_state_in_redis(
    trained_root: Path,
    kafka_bootstrap: str,
    redis_url: str,
) -> None:
    settings = loop_settings(trained_root, kafka_bootstrap, REDIS_URL=redis_url)
    port = free_port()
    other = subprocess.Popen(
        [sys.executable, "-m", "filmrec", "serve", "--port", str(port)],
        env=_api_process_env(settings, port),
        cwd=trained_root,  # outside the checkout: Settings reads ./.env (init.sh writes one there)
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        remote = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        def ready() -> bool:
            try:
                return remote.get("/ready").json().get("model_loaded", False)
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=90, what="the second API process to load the model")
        with TestClient(create_app(settings)) as local:
            before, _ = top_ids(remote, 3)
            assert (
                local.post(
                    "/ratings", headers=DEMO_KEY, json={"user_id": 3, "movie_id": before[0], "rating": 5.0}
                ).status_code
                == 202
            )
            _ids, body = list_without(remote, 3, before[0], "the other process to see the rating")
            assert body["strategy"] == "fold-in"
            # And the other way round, for a user neither process has cached.
            assert (
                remote.post(
                    "/ratings", headers=DEMO_KEY, json={"user_id": NEW_USER + 3, "movie_id": 1, "rating": 4.0}
                ).status_code
                == 202
            )
            ids, body = top_ids(local, NEW_USER + 3)
            assert body["strategy"] == "fold-in" and 1 not in ids
        remote.close()
    finally:
        other.terminate()
        try:
            other.wait(timeout=20)
        except subprocess.TimeoutExpired:
            other.kill()


def _publish_many(settings: Settings, n: int) -> set[tuple[int, int]]:
    from filmrec.ingestion.events import encode_event
    from filmrec.ingestion.producer import make_producer

    producer = make_producer(settings)
    pairs = set()
    for i in range(n):
        user, movie = 800_000 + i % 97, 1 + i
        key, value = encode_event(event(user, movie, 3.0))
        producer.produce(settings.kafka_topic, key=key, value=value)
        pairs.add((user, movie))
    assert producer.flush(30) == 0
    return pairs


def _held(store: Any) -> int:
    return store.size()[1]


def test_a_consumer_stopped_mid_stream_loses_nothing_and_applies_nothing_twice(
    trained_root: Path,
    kafka_bootstrap: str,
    redis_url: str,
) -> None:
    settings = loop_settings(trained_root, kafka_bootstrap, REDIS_URL=redis_url)
    n = 1500
    _publish_many(settings, n)
    store = RedisOnlineState(redis_url, ttl_seconds=3600, namespace=settings.kafka_topic)
    holder = ModelHolder()  # no model: every event is new to it

    first = RatingStreamConsumer(settings, store, holder)

    def stop_mid_stream(_user: int, _published: int) -> None:
        if first.applied >= 200:
            first._stop.set()  # like a kill between two messages of a batch: nothing committed after

    first.on_applied = stop_mid_stream
    first.start()
    wait_for(lambda: not first.running, timeout=60, what="the first consumer to stop mid-stream")
    assert 200 <= first.applied < n

    second = RatingStreamConsumer(settings, store, holder)
    second.start()
    try:
        wait_for(lambda: _held(store) == n, timeout=60, what="the second consumer to catch up")
    finally:
        second.stop()
    assert first.applied + second.applied == n  # re-delivered events were no-ops
    assert _held(store) == n


def test_a_restarted_process_rebuilds_its_state_from_the_topic(
    trained_root: Path, kafka_bootstrap: str
) -> None:
    settings = loop_settings(trained_root, kafka_bootstrap)
    pairs = _publish_many(settings, 300)
    states = []
    for _restart in range(2):
        store = InProcessOnlineState(ttl_seconds=3600)
        consumer = RatingStreamConsumer(settings, store, ModelHolder())
        consumer.start()
        try:
            wait_for(lambda s=store: _held(s) == len(pairs), timeout=60, what="the state to be rebuilt")
        finally:
            consumer.stop()
        states.append({(u, m) for u in range(800_000, 800_097) for m in store.get(u).ratings})
    assert states[0] == states[1] == pairs
