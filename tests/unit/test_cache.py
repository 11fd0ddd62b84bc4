from __future__ import annotations

import time

from filmrec.serving.cache import InProcessCache, recommendation_key


def test_keys_carry_the_model_version() -> None:
    assert recommendation_key(model_version="1", user_id=5, k=10) != recommendation_key(
        model_version="2", user_id=5, k=10
    )


def test_values_expire_and_the_oldest_are_evicted() -> None:
    cache = InProcessCache(max_entries=2)
    cache.set("a", {"x": 1}, ttl_seconds=60)
    cache.set("b", {"x": 2}, ttl_seconds=60)
    assert cache.get("a") == {"x": 1}  # "a" is now the most recent
    cache.set("c", {"x": 3}, ttl_seconds=60)
    assert cache.get("b") is None
    assert len(cache) == 2
    cache.set("short", {"x": 4}, ttl_seconds=1)
    time.sleep(1.05)
    assert cache.get("short") is None


def test_callers_get_a_copy() -> None:
    cache = InProcessCache()
    cache.set("k", {"items": [1]}, ttl_seconds=60)
    cache.get("k")["items"].append(2)  # type: ignore[index]
    assert cache.get("k") == {"items": [1]}
