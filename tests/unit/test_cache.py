from __future__ import annotations

import time

import pytest

from filmrec.serving.cache import InProcessCache, recommendation_key
from filmrec.serving.expiring_lru import ExpiringLRU
from filmrec.serving.hit_cache import HitCache


def test_keys_carry_the_model_version() -> None:
    assert recommendation_key(model_version="1", user_id=5, k=10) != recommendation_key(
        model_version="2", user_id=5, k=10
    )


def test_values_expire_and_the_oldest_are_evicted() -> None:
    cache = InProcessCache(max_entries=2)
    cache.set("a", b'{"x":1}', ttl_seconds=60)
    cache.set("b", b'{"x":2}', ttl_seconds=60)
    assert cache.get("a") == b'{"x":1}'  # "a" is now the most recent
    cache.set("c", b'{"x":3}', ttl_seconds=60)
    assert cache.get("b") is None
    assert len(cache) == 2
    cache.set("short", b'{"x":4}', ttl_seconds=1)
    time.sleep(1.05)
    assert cache.get("short") is None


def test_values_are_the_stored_bytes() -> None:
    cache = InProcessCache()
    cache.set("k", b'{"items":[1]}', ttl_seconds=60)
    assert cache.get("k") == b'{"items":[1]}'


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_lru_is_bounded_and_keeps_the_most_recently_used() -> None:
    lru = HitCache(max_entries=2, ttl_seconds=60, clock=FakeClock())
    lru.put("a", b"1")
    lru.put("b", b"2")
    assert lru.get("a") == b"1"  # "a" is now the most recent
    lru.put("c", b"3")
    assert lru.get("b") is None and lru.get("a") == b"1" and lru.get("c") == b"3"
    assert len(lru) == 2


def test_lru_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    lru = HitCache(max_entries=10, ttl_seconds=5, clock=clock)
    lru.put("k", b"body")
    clock.now += 4.9
    assert lru.get("k") == b"body"
    clock.now += 0.2  # a read does not extend the entry's life
    assert lru.get("k") is None and len(lru) == 0
    lru.put("k", b"new")
    assert lru.get("k") == b"new"


def test_a_write_drops_the_expired_entries_nobody_reads_again() -> None:
    # A posted rating retires its user's keys: their entries must not wait for the size
    # bound (memory would then grow to the bound under a stream of ratings).
    clock = FakeClock()
    lru = ExpiringLRU(max_entries=1_000, clock=clock)
    lru.put_many({f"u{user}:s1": b"old" for user in range(100)}, ttl_seconds=5)
    clock.now += 6
    lru.put_many({"u0:s2": b"new"}, ttl_seconds=5)
    assert len(lru) == 1 and lru.get("u0:s2") == b"new"


def test_pruning_stops_at_the_first_live_entry_and_resumes_on_a_later_write() -> None:
    clock = FakeClock()
    lru = ExpiringLRU(max_entries=1_000, clock=clock)
    lru.put_many({"a": b"1"}, ttl_seconds=10)
    lru.put_many({"b": b"2"}, ttl_seconds=1)
    assert lru.get("a") == b"1"  # "a" moves behind "b"; "b" is now the oldest
    clock.now += 2
    lru.put_many({"c": b"3"}, ttl_seconds=10)
    assert len(lru) == 2 and lru.get("b") is None  # "b" expired at the front: dropped
    clock.now += 9  # "a" (read, not rewritten) has expired; "c" has not
    lru.put_many({"d": b"4"}, ttl_seconds=10)
    assert len(lru) == 2 and lru.get("a") is None and lru.get("c") == b"3" and lru.get("d") == b"4"


@pytest.mark.parametrize(("entries", "ttl"), [(0, 5.0), (10, 0.0)])
def test_a_zero_sized_or_zero_ttl_lru_holds_nothing(entries: int, ttl: float) -> None:
    lru = HitCache(max_entries=entries, ttl_seconds=ttl)
    lru.put("k", b"body")
    assert lru.get("k") is None and len(lru) == 0


def test_lru_keys_are_the_shared_caches_keys() -> None:
    # Same key function: model name/version, user, online-state version, k.
    keys = {
        recommendation_key(model_name="m", model_version="1", user_id=5, k=10, state_version=s)
        for s in (0, 1, 2)
    }
    assert len(keys) == 3
