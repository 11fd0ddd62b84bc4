"""The mirror of online-state versions (serving/online_versions.py): merge rules, deletions, expiry.

The Redis side (the scripts' pushes, the listener's snapshot and resync) is in
tests/integration/test_online_versions_redis.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from filmrec.serving import deps
from filmrec.serving.cache import InProcessCache
from filmrec.serving.hit_cache import HitCache
from filmrec.serving.online_state import InProcessOnlineState, UserOnlineState
from filmrec.serving.online_versions import OnlineVersionMirror, VersionPushListener
from filmrec.serving.recommendations import RecommendationService
from tests.unit.test_hit_path import tiny_client
from tests.unit.test_online_state import rating


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mirror(clock: FakeClock) -> OnlineVersionMirror:
    synced = OnlineVersionMirror(ttl_seconds=60, clock=clock)
    synced.mark_synced()
    return synced


def test_unsynced_is_unknown_not_zero(clock: FakeClock) -> None:
    mirror = OnlineVersionMirror(ttl_seconds=60, clock=clock)
    mirror.record(1, 5)
    assert mirror.version(1) is None and mirror.version(2) is None
    mirror.mark_synced()
    assert mirror.version(1) == 5 and mirror.version(2) == 0
    mirror.mark_unsynced()
    assert mirror.version(1) is None


def test_a_resync_starts_from_nothing(mirror: OnlineVersionMirror) -> None:
    mirror.record(1, 5)
    mirror.begin_sync()  # what changed while unsubscribed is unknown: the snapshot says
    assert mirror.version(1) is None
    mirror.mark_synced()
    assert mirror.version(1) == 0


def test_the_larger_version_wins_whatever_the_order(mirror: OnlineVersionMirror) -> None:
    mirror.record(1, 7)
    mirror.record(1, 4)  # an older change (a snapshot read before a push, an own record late)
    assert mirror.version(1) == 7
    mirror.record(1, 9)
    assert mirror.version(1) == 9
    mirror.record(1, 0)  # no version: nothing
    assert mirror.version(1) == 9


def test_a_deletion_drops_only_what_it_deleted(mirror: OnlineVersionMirror) -> None:
    mirror.record(1, 5)
    mirror.apply_push(b"1:0:5")
    assert mirror.version(1) == 0
    mirror.record(1, 5)  # the deleted version arriving late does not revive it
    assert mirror.version(1) == 0
    mirror.apply_push(b"1:8")  # a later apply does
    assert mirror.version(1) == 8


def test_a_deletion_after_a_later_apply_changes_nothing(mirror: OnlineVersionMirror) -> None:
    # Deleted at 5, then applied at 8; this process heard the apply first.
    mirror.record(1, 8)
    mirror.apply_push("1:0:5")
    assert mirror.version(1) == 8


def test_an_entry_expires_locally_as_the_hash_does(mirror: OnlineVersionMirror, clock: FakeClock) -> None:
    mirror.record(1, 5)  # an apply: the full TTL
    mirror.record(2, 6, expires_in=10)  # a snapshot: the hash's PTTL
    clock.now += 30
    assert mirror.version(1) == 5 and mirror.version(2) == 0
    clock.now += 31
    assert mirror.version(1) == 0
    assert mirror.drop_expired() == 2 and len(mirror) == 0


def test_the_same_version_again_keeps_the_later_expiry(mirror: OnlineVersionMirror, clock: FakeClock) -> None:
    mirror.record(1, 5)  # the push: 60 s
    mirror.record(1, 5, expires_in=20)  # the snapshot of the same change, measured earlier
    clock.now += 40
    assert mirror.version(1) == 5


def test_an_expired_entry_is_superseded_by_a_new_apply(mirror: OnlineVersionMirror, clock: FakeClock) -> None:
    mirror.record(1, 5)
    clock.now += 61
    assert mirror.version(1) == 0
    mirror.record(1, 9)
    assert mirror.version(1) == 9


class SilentPubSub:
    """A subscription whose connection died without a word: nothing ever comes back."""

    def __init__(self) -> None:
        self.pings = 0

    def get_message(self, timeout: float) -> None:
        time.sleep(timeout)

    def ping(self) -> None:
        self.pings += 1


def test_a_connection_that_answers_no_ping_is_treated_as_lost(mirror: OnlineVersionMirror) -> None:
    listener = VersionPushListener(
        cast(Any, None), mirror, channel="c", users_key="u", user_key=str, health_seconds=0.02,
        poll_seconds=0.005,
    )  # fmt: skip
    pubsub = SilentPubSub()
    with pytest.raises(TimeoutError):  # _run then marks the mirror unsynced and resubscribes
        listener._pump(pubsub)
    assert pubsub.pings == 1


@pytest.mark.parametrize("message", [b"", b"x:1", b"1", b"1:0", "1:a"])
def test_a_malformed_message_is_ignored(mirror: OnlineVersionMirror, message: bytes | str) -> None:
    mirror.record(1, 5)
    mirror.apply_push(message)
    assert mirror.version(1) == 5


def test_the_in_process_store_knows_every_version_locally() -> None:
    store = InProcessOnlineState(ttl_seconds=3600)
    assert store.local_version(1) == 0
    version = store.apply(rating(1, 10, 4.0))
    assert store.local_version(1) == version == store.get(1).version
    old = rating(2, 10, 4.0, published_ms=1)  # published long ago: expired
    store.apply(old)
    assert store.local_version(2) == 0


def test_a_prune_that_leaves_ratings_gives_a_new_version() -> None:
    store = InProcessOnlineState(ttl_seconds=3600)
    store.apply(rating(1, 10, 4.0))
    version = store.apply(rating(1, 11, 3.0))
    assert store.prune(lambda one: one.movie_id == 10) == 1
    # Fewer ratings folded in: another list, so the cache key must change too.
    assert store.get(1).version > version and store.get(1).as_online() == {11: 3.0}
    assert store.prune(lambda one: one.movie_id == 11) == 1
    assert store.local_version(1) == 0


class RemoteLikeState(InProcessOnlineState):
    """A store the service must treat as remote (its name is not the in-process one):
    `get` counts as a round trip, the versions come from a mirror the test drives."""

    name = "remote"

    def __init__(self) -> None:
        super().__init__(ttl_seconds=3600)
        self.mirror = OnlineVersionMirror(ttl_seconds=3600)
        self.gets = 0

    def get(self, user_id: int) -> UserOnlineState:
        self.gets += 1
        return super().get(user_id)

    def local_version(self, user_id: int) -> int | None:
        return self.mirror.version(user_id)


def remote_client(tmp_path: Path) -> tuple[TestClient, RemoteLikeState, RecommendationService]:
    online = RemoteLikeState()
    client = tiny_client(
        tmp_path, InProcessCache(), hit_cache=HitCache(max_entries=10, ttl_seconds=60), online=online
    )
    service = client.app.dependency_overrides[deps.get_recommendations]()  # type: ignore[attr-defined]
    return client, online, service


def top(client: TestClient, user_id: int = 1) -> dict[str, Any]:
    answer = client.get(f"/recommendations/{user_id}", params={"k": 3})
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


def test_unsynced_every_request_reads_the_remote_state(tmp_path: Path) -> None:
    client, online, service = remote_client(tmp_path)
    assert service.loop_version(1) is None
    assert [top(client)["source"] for _ in range(2)] == ["model", "cache"]
    assert online.gets == 2  # the hit too: its key needed the version


def test_synced_a_user_without_state_needs_no_read_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, online, service = remote_client(tmp_path)
    online.mirror.mark_synced()
    look = service._loop_look(1)
    assert service.loop_version(1) == 0 and look is not None and look.state is not None
    assert top(client)["source"] == "model"  # computed on the loop: the state is known empty
    no_thread_step(monkeypatch)
    assert top(client)["source"] == "cache"
    assert online.gets == 0


def test_with_ratings_the_miss_reads_them_and_the_hit_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, online, service = remote_client(tmp_path)
    online.mirror.mark_synced()
    first = top(client)
    version = online.apply(rating(1, first["items"][0]["movie_id"], 5.0))
    online.mirror.record(1, version)
    look = service._loop_look(1)  # the fold-in needs the ratings: only their version is known
    assert look is not None and look.version == version and look.state is None
    after = top(client)
    assert after["strategy"] == "fold-in" and online.gets == 1
    assert first["items"][0]["movie_id"] not in [item["movie_id"] for item in after["items"]]
    no_thread_step(monkeypatch)
    assert top(client) == after | {"source": "cache"}
    assert online.gets == 1


def test_a_lagging_mirror_never_keys_a_list_by_a_version_it_was_not_scored_from(tmp_path: Path) -> None:
    client, online, _service = remote_client(tmp_path)
    online.mirror.mark_synced()
    older = online.apply(rating(1, 10, 5.0))
    online.mirror.record(1, older)
    newer = online.apply(rating(1, 11, 1.0))  # this process has not heard of it yet
    scored = top(client)  # the miss under `older` reads the state: `newer`, and keys by it
    assert scored["source"] == "model" and online.gets == 1
    online.mirror.record(1, newer)
    assert top(client) == scored | {"source": "cache"} and online.gets == 1  # on the loop
    online.mirror.record(1, older)  # an older version never replaces a newer one
    assert online.local_version(1) == newer


def no_thread_step(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a hit with the version known on the loop must be answered there")

    monkeypatch.setattr(RecommendationService, "_cached_or_scored", fail)
    monkeypatch.setattr(RecommendationService, "_titled", fail)
