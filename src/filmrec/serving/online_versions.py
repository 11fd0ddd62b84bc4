"""Each API process's copy of every user's online-state version, pushed by Redis.

The cache key of a /recommendations list carries the user's online-state version
(serving/online_state.py). With the state in Redis, reading that version is a round
trip, which put every cache hit on a thread. Instead, the scripts that change a
user's state publish the new version on the channel `{prefix}:versions`, and each
process keeps what they say here: a hit is then a dict lookup on the event loop,
at any number of worker processes.

The messages, one per change, in the order Redis ran the scripts:
* `<user_id>:<version>`: the user's state now has this version (a rating applied,
  or a rating pruned while others remain);
* `<user_id>:0:<version>`: the user's hash was deleted when it was at this version
  (its last rating pruned). Dropped only if nothing newer was seen: a later apply
  has a larger version from the same clock, whatever order the two reach a process.

Redis publishes nothing when a hash expires, so each entry expires here on its own,
never before the hash does (it is given the hash's PTTL at the snapshot and the full
TTL at each change, measured after Redis set it): a version still shown after the
hash expired names lists computed with those ratings folded in, never a list of a
state without them.

Until the listener has subscribed and then read every user's version (subscribe
first, so no change falls between the two), and whenever its connection fails, the
mirror answers None: "unknown, read Redis", which is today's thread path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from filmrec.serving import metrics

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

# How long a deletion is remembered: long enough that a record of the deleted version
# arriving late (the applying process's own, from another thread) cannot revive it.
_DELETION_SECONDS = 60.0


class OnlineVersionMirror:
    """user_id -> (version, expires_at, live), merged by version: the larger one wins.

    Reads take no lock (one dict lookup, on the event loop); writes merge under one.
    """

    def __init__(self, *, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: dict[int, tuple[int, float, bool]] = {}
        self._synced = False
        self._lock = threading.Lock()

    @property
    def synced(self) -> bool:
        return self._synced

    def version(self, user_id: int) -> int | None:
        """The user's version; 0 with no state (or one expired); None when not synced."""
        if not self._synced:
            return None
        entry = self._entries.get(user_id)
        if entry is None:
            return 0
        version, expires_at, live = entry
        return version if live and expires_at > self._clock() else 0

    def record(self, user_id: int, version: int, *, expires_in: float | None = None) -> None:
        """The user's state has reached `version`, its hash expiring within `expires_in`
        seconds (default: the full TTL, which every apply sets). A lower version than
        the one held is an older change: ignored."""
        if version <= 0:
            return
        expires_at = self._clock() + (self.ttl_seconds if expires_in is None else expires_in)
        with self._lock:
            current = self._entries.get(user_id)
            if current is not None:
                held, held_expiry, live = current
                if held > version or (held == version and not live):
                    return
                if held == version:
                    expires_at = max(expires_at, held_expiry)
            self._entries[user_id] = (version, expires_at, True)

    def forget(self, user_id: int, deleted_version: int) -> None:
        """The user's hash was deleted at `deleted_version`: no state, unless a later
        version was seen already."""
        with self._lock:
            current = self._entries.get(user_id)
            if current is not None and current[0] > deleted_version:
                return
            self._entries[user_id] = (deleted_version, self._clock() + _DELETION_SECONDS, False)

    def apply_push(self, data: bytes | str) -> None:
        """One message of the versions channel (the module docstring's two forms)."""
        text = data.decode() if isinstance(data, bytes) else data
        try:
            parts = [int(part) for part in text.split(":")]
            user_id, version = parts[0], parts[1]
            if version == 0:
                self.forget(user_id, parts[2])
            else:
                self.record(user_id, version)
        except (ValueError, IndexError):
            log.warning("ignored a malformed online-version message: %r", text)

    def drop_expired(self) -> int:
        """Remove the entries past their expiry (they read as 0 already); how many."""
        now = self._clock()
        with self._lock:
            gone = [user_id for user_id, entry in self._entries.items() if entry[1] <= now]
            for user_id in gone:
                del self._entries[user_id]
        return len(gone)

    def begin_sync(self) -> None:
        """Forget everything: what changed while unsubscribed is unknown."""
        with self._lock:
            self._synced = False
            self._entries.clear()

    def mark_synced(self) -> None:
        self._synced = True

    def mark_unsynced(self) -> None:
        self._synced = False

    def __len__(self) -> int:
        return len(self._entries)


class VersionPushListener:
    """A daemon thread keeping a mirror in sync: subscribe, snapshot, then every push.

    On any error (the connection dropped or Redis down, no pong to a ping on a quiet
    connection) the mirror is marked unsynced, and after a pause growing to
    `max_retry_seconds` the listener subscribes and snapshots again from scratch.
    """

    def __init__(
        self,
        client: redis.Redis,
        mirror: OnlineVersionMirror,
        *,
        channel: str,
        users_key: str,
        user_key: Callable[[int], str],
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 10.0,
        health_seconds: float = 5.0,
        poll_seconds: float = 0.5,
    ) -> None:
        self.client = client
        self.mirror = mirror
        self.channel = channel
        self.users_key = users_key
        self.user_key = user_key
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.health_seconds = health_seconds
        self.poll_seconds = poll_seconds
        self.syncs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="online-versions", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.mirror.mark_unsynced()

    def _run(self) -> None:
        delay = self.retry_seconds
        while not self._stop.is_set():
            synced_before = self.syncs
            try:
                self._listen()
            except Exception as error:  # any failure means: unknown until synced again
                log.warning("online versions: %s; reading versions from Redis until resynced", error)
            self.mirror.mark_unsynced()
            metrics.ONLINE_VERSIONS_SYNCED.set(0)
            # A session that synced earns a quick retry; repeated failures back off.
            synced = self.syncs > synced_before
            delay = self.retry_seconds if synced else min(delay * 2, self.max_retry_seconds)
            self._stop.wait(delay)

    def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            if not self._await_subscribed(pubsub):
                return  # stopped meanwhile
            self.mirror.begin_sync()
            self._snapshot()
            self.mirror.mark_synced()
            self.syncs += 1
            metrics.ONLINE_VERSIONS_SYNCED.set(1)
            metrics.ONLINE_VERSIONS_SYNCS.inc()
            self._pump(pubsub)
        finally:
            pubsub.close()

    def _await_subscribed(self, pubsub: Any) -> bool:
        """Wait for Redis to confirm the subscription: pushes from then on reach us. False if stopped."""
        deadline = time.monotonic() + self.health_seconds
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=self.poll_seconds)
            if message is not None and message["type"] == "subscribe":
                return True
            if time.monotonic() > deadline:
                raise TimeoutError(f"no confirmation of the subscription to {self.channel}")
        return False

    def _snapshot(self, batch: int = 1000) -> None:
        """Every user's version and remaining lifetime, merged into what was pushed meanwhile."""
        users: list[int] = []
        for raw_user in self.client.sscan_iter(self.users_key, count=batch):
            users.append(int(raw_user))
            if len(users) >= batch:
                self._snapshot_users(users)
                users = []
        if users:
            self._snapshot_users(users)

    def _snapshot_users(self, users: list[int]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for user_id in users:
            pipe.hget(self.user_key(user_id), "v")
            pipe.pttl(self.user_key(user_id))
        replies = pipe.execute()
        for user_id, version, pttl in zip(users, replies[0::2], replies[1::2], strict=True):
            if version is None or pttl == -2:  # expired (the users set is cleaned lazily)
                continue
            self.mirror.record(user_id, int(version), expires_in=pttl / 1000 if pttl >= 0 else None)

    def _pump(self, pubsub: Any) -> None:
        """Apply pushes until stopped; a quiet connection is pinged, and one that does not
        answer within health_seconds is treated as lost (a silent drop raises nothing)."""
        heard = time.monotonic()
        pinged: float | None = None
        next_sweep = heard + self.health_seconds
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=self.poll_seconds)
            now = time.monotonic()
            if message is not None:
                heard, pinged = now, None
                if message["type"] == "message":
                    self.mirror.apply_push(message["data"])
            elif pinged is not None and now - pinged > self.health_seconds:
                raise TimeoutError("the versions channel's connection answers no ping")
            elif pinged is None and now - heard > self.health_seconds:
                pubsub.ping()
                pinged = now
            if now >= next_sweep:
                self.mirror.drop_expired()
                next_sweep = now + max(self.health_seconds, 60.0)
