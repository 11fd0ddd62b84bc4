"""The online-state versions Redis pushes (serving/online_versions.py), on a real Redis.

Two RedisOnlineState instances stand for two API processes: what one applies or
prunes, the other's mirror hears. Every wait polls with a deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY

from filmrec.serving.online_state import OnlineRating, RedisOnlineState
from tests.integration.service_helpers import wait_for


def rating(user: int, movie: int, stars: float = 4.0) -> OnlineRating:
    now = int(time.time() * 1000)
    return OnlineRating(user, movie, stars, rated_at_ms=now, event_id=str(uuid.uuid4()), published_ms=now)


class Stores:
    """Instances of one namespace, closed and their keys deleted at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.namespace = f"versions-{uuid.uuid4().hex[:8]}"
        self.opened: list[RedisOnlineState] = []

    def open(self, *, listen: bool = True, ttl_seconds: int = 600) -> RedisOnlineState:
        store = RedisOnlineState(
            self.url, ttl_seconds=ttl_seconds, namespace=self.namespace, listen_for_versions=listen
        )
        store.listener.retry_seconds = 0.05  # resync at once in these tests
        store.listener.poll_seconds = 0.05
        self.opened.append(store)
        return store

    def synced(self, store: RedisOnlineState) -> RedisOnlineState:
        store.listen()
        wait_for(lambda: store.versions.synced, timeout=10, what="the versions mirror to sync")
        return store

    def close(self) -> None:
        for store in self.opened:
            try:
                keys = store.client.keys(f"{store.prefix}:*")
                if keys:
                    store.client.delete(*keys)
            except redis.RedisError:
                pass  # a throwaway server already stopped
            store.close()


@pytest.fixture
def stores(redis_url: str) -> Iterator[Stores]:
    opened = Stores(redis_url)
    yield opened
    opened.close()


def test_the_listener_starts_from_a_snapshot_of_every_user(stores: Stores) -> None:
    writer = stores.open(listen=False)
    first, second = writer.apply(rating(1, 10)), writer.apply(rating(2, 20))
    assert writer.local_version(1) is None  # no listener: unknown, never a guess
    writer.client.expire(writer._user_key(2), 100)  # as if applied 500 s ago
    reader = stores.open()
    assert reader.local_version(1) is None  # starts the listener; not synced yet
    syncs = REGISTRY.get_sample_value("filmrec_online_versions_syncs_total") or 0.0
    stores.synced(reader)
    assert REGISTRY.get_sample_value("filmrec_online_versions_syncs_total") == syncs + 1
    assert REGISTRY.get_sample_value("filmrec_online_versions_synced") == 1
    assert (reader.local_version(1), reader.local_version(2), reader.local_version(3)) == (first, second, 0)
    # The snapshot gave each entry the hash's remaining lifetime (at most the 100 s set
    # above, whatever time has passed since), not a fresh TTL (ONLINE_STATE_TTL_SECONDS).
    _version, expires_at, _live = reader.versions._entries[2]
    assert expires_at - time.monotonic() <= 100 < reader.versions.ttl_seconds


def test_a_rating_applied_by_one_process_reaches_the_others_mirror(stores: Stores) -> None:
    writer, reader = stores.synced(stores.open()), stores.synced(stores.open())
    version = writer.apply(rating(5, 50))
    assert writer.local_version(5) == version  # read-your-writes in the applying process
    wait_for(lambda: reader.local_version(5) == version, timeout=10, what="the push to reach the reader")
    newer = writer.apply(rating(5, 51))
    assert newer > version
    wait_for(lambda: reader.local_version(5) == newer, timeout=10, what="the second push")
    assert reader.get(5).version == newer  # the same version Redis holds: the same cache key


def test_a_duplicate_event_publishes_nothing_new(stores: Stores) -> None:
    writer, reader = stores.synced(stores.open()), stores.synced(stores.open())
    event = rating(6, 60)
    version = writer.apply(event)
    assert writer.apply(event) == 0
    wait_for(lambda: reader.local_version(6) == version, timeout=10, what="the push")
    assert writer.local_version(6) == version


def test_prune_publishes_a_new_version_then_the_deletion(stores: Stores) -> None:
    writer, reader = stores.synced(stores.open()), stores.synced(stores.open())
    writer.apply(rating(7, 70))
    version = writer.apply(rating(7, 71))
    wait_for(lambda: reader.local_version(7) == version, timeout=10, what="the applies")
    # One rating of two now in the model: the state changed, so the version does.
    assert writer.prune(lambda one: one.movie_id == 70) == 1
    pruned = writer.get(7).version
    assert pruned > version and writer.get(7).as_online() == {71: 4.0}
    wait_for(lambda: reader.local_version(7) == pruned, timeout=10, what="the partial prune's version")
    assert writer.prune(lambda one: one.movie_id == 71) == 1
    assert not writer.client.exists(writer._user_key(7))
    wait_for(lambda: reader.local_version(7) == 0, timeout=10, what="the deletion")
    wait_for(lambda: writer.local_version(7) == 0, timeout=10, what="the deletion in the writer too")
    # A later apply is a larger version from the same clock: it shows again.
    again = writer.apply(rating(7, 72))
    wait_for(lambda: reader.local_version(7) == again, timeout=10, what="the apply after the deletion")


def test_an_expired_hash_reads_as_no_state(stores: Stores) -> None:
    writer = stores.open(listen=False, ttl_seconds=1)
    reader = stores.synced(stores.open(ttl_seconds=1))
    version = writer.apply(rating(8, 80))
    wait_for(lambda: reader.local_version(8) == version, timeout=10, what="the push")
    # Redis publishes nothing on expiry: the mirror's own expiry must follow the key's.
    wait_for(lambda: not writer.client.exists(writer._user_key(8)), timeout=10, what="the key to expire")
    wait_for(lambda: reader.local_version(8) == 0, timeout=10, what="the mirror's entry to expire")


def _kill_pubsub_clients(client: redis.Redis) -> Any:
    return client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")


def test_a_killed_connection_is_unsynced_then_resynced(stores: Stores) -> None:
    writer, reader = stores.open(listen=False), stores.synced(stores.open())
    syncs = reader.listener.syncs
    _kill_pubsub_clients(writer.client)
    wait_for(lambda: reader.listener.syncs > syncs, timeout=10, what="the listener to resubscribe")
    wait_for(lambda: reader.versions.synced, timeout=10, what="the mirror to sync again")
    version = writer.apply(rating(9, 90))
    wait_for(lambda: reader.local_version(9) == version, timeout=10, what="pushes after the resync")


def test_a_restarted_redis_is_resynced_from_scratch(throwaway_redis: Any) -> None:
    stores = Stores(throwaway_redis.url)
    try:
        writer, reader = stores.open(listen=False), stores.synced(stores.open())
        version = writer.apply(rating(11, 110))
        wait_for(lambda: reader.local_version(11) == version, timeout=10, what="the push")
        throwaway_redis.stop()
        # Down: unknown, so every request reads (and degrades) as before the mirror.
        wait_for(lambda: reader.local_version(11) is None, timeout=20, what="the mirror to unsync")
        throwaway_redis.start()
        # Restarted empty (no persistence): the stale entry must not survive the resync.
        wait_for(lambda: reader.versions.synced, timeout=30, what="the mirror to resync")
        assert reader.local_version(11) == 0
        again = writer.apply(rating(11, 111))
        wait_for(lambda: reader.local_version(11) == again, timeout=10, what="pushes after the restart")
    finally:
        stores.close()
