"""The hit path with the real Redis: stored bodies come back byte for byte, LRU or not, and
with the online state in Redis a hit is still the fast path's (serving/online_versions.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from filmrec.serving.cache import RedisCache, model_key_prefix
from filmrec.serving.hit_cache import HitCache
from filmrec.serving.online_state import RedisOnlineState, VisibilityTracker
from tests.integration.service_helpers import wait_for
from tests.unit.test_api_routes import DEMO_KEY, FakeIntake, FakeMovies
from tests.unit.test_hit_fast_path import CountingService, serve
from tests.unit.test_hit_path import tiny_client


def _close_and_forget(cache: RedisCache, online: RedisOnlineState, name: str) -> None:
    """Drop this test's keys (they hold its name) and close both clients."""
    keys = cache.client.keys(f"*{name}*")
    if keys:
        cache.client.delete(*keys)
    cache.close()
    online.close()


@pytest.mark.parametrize("lru", [True, False], ids=["lru", "redis-only"])
def test_a_redis_hit_is_the_computed_body_but_for_source(redis_url: str, tmp_path: Path, lru: bool) -> None:
    name = f"hit-path-{uuid.uuid4().hex[:8]}"  # keys of this test only
    cache = RedisCache(redis_url)
    online = RedisOnlineState(redis_url, ttl_seconds=600, namespace=name)
    hit_cache = HitCache(max_entries=10, ttl_seconds=60) if lru else None
    client = tiny_client(
        tmp_path, cache, hit_cache=hit_cache, online=online, model_name=name, model_version="1"
    )
    try:
        computed = client.get("/recommendations/1", params={"k": 3})
        hits = [client.get("/recommendations/1", params={"k": 3}) for _ in range(2)]
        expected = computed.content.replace(b'"source":"model"', b'"source":"cache"')
        assert computed.json()["source"] == "model"
        assert all(hit.content == expected for hit in hits)
        # What Redis holds is that body itself, under a key of the value format.
        (key,) = cache.client.keys(f"{model_key_prefix(model_name=name, model_version='1')}:*")
        assert cache.client.get(key) == expected and b":recs:json1:" in key
    finally:
        _close_and_forget(cache, online, name)


def test_with_the_state_in_redis_a_hit_is_the_fast_paths_and_a_rating_retires_it(
    redis_url: str, tmp_path: Path
) -> None:
    name = f"hit-fast-{uuid.uuid4().hex[:8]}"  # keys of this test only
    served = serve(tmp_path)
    model = replace(served.model, name=name, version="1")
    state = served.app.state.filmrec
    state.holder.swap(model)
    cache = RedisCache(redis_url)
    online = RedisOnlineState(redis_url, ttl_seconds=600, namespace=name)
    service = CountingService(
        cache=cache, movies=FakeMovies(), online=online, visibility=VisibilityTracker(lambda _seconds: None),
        cache_ttl_seconds=60, hit_cache=HitCache(max_entries=100, ttl_seconds=60),
    )  # fmt: skip
    state.recommendations = service
    state.intake = FakeIntake(online, service.visibility)
    try:
        online.listen()
        wait_for(lambda: online.versions.synced, timeout=10, what="the versions mirror to sync")
        first = served.get("/recommendations/1?k=3").json()
        assert first["source"] == "model" and service.routed == 1  # the shared cache is Redis: routed
        hit = served.get("/recommendations/1?k=3").json()
        assert hit == first | {"source": "cache"} and service.routed == 1  # the fast path's hit
        top = first["items"][0]["movie_id"]
        assert (
            served.client.post(
                "/ratings", headers=DEMO_KEY, json={"user_id": 1, "movie_id": top, "rating": 5}
            ).status_code
            == 202
        )
        after = served.get("/recommendations/1?k=3").json()
        assert after["source"] == "model" and after["strategy"] == "fold-in"  # a new key: computed
        assert top not in [item["movie_id"] for item in after["items"]]
        assert service.routed == 2  # the fold-in needs the ratings: read from Redis on a thread
        assert served.get("/recommendations/1?k=3").json() == after | {"source": "cache"}
        assert service.routed == 2  # and its hit is the fast path's again
    finally:
        _close_and_forget(cache, online, name)
