"""The hit path with the real Redis: stored bodies come back byte for byte, LRU or not."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from filmrec.serving.cache import RedisCache, model_key_prefix
from filmrec.serving.hit_cache import HitCache
from filmrec.serving.online_state import RedisOnlineState
from tests.unit.test_hit_path import tiny_client


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
        keys = cache.client.keys(f"*{name}*")
        if keys:
            cache.client.delete(*keys)
        cache.close()
        online.close()
