"""Online user state: ratings that reached Kafka but not yet the served model.

The API's own consumer (serving/rating_stream.py) applies every event of the
ratings topic here, and POST /ratings applies its own events once Kafka has
acknowledged them (read-your-writes). Scoring folds these ratings in.

The rules, the same in both stores:
* an event_id already applied changes nothing (re-deliveries, replays, retries);
* per (user, movie) the rating with the latest rated_at wins, ties broken by
  event_id: the rule the lakehouse's clean table uses, so the API and the next
  model agree on which rating counts. Events are RatingEvents, whose rated_at keeps
  the contract's RatedAtRule: an aware instant (epoch milliseconds here mean the same
  to every reader), never in the future;
* a user's ratings are kept until ONLINE_STATE_TTL_SECONDS after the latest of
  them was published (Redis: the key's expiry), and each is dropped earlier once
  the served model contains it (`prune` on a model swap);
* every change gives the user a new state version from one clock that never goes
  back, so a cache key carrying it can never name a list computed before the change
  (a rating pruned while others remain is a change: the fold-in differs).

`local_version` answers the version without I/O when it can: the in-process store
always; the Redis one from the versions its scripts publish (serving/online_versions.py).

In-process when REDIS_URL is unset; in Redis (shared by every replica) when set.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from filmrec.serving.online_versions import OnlineVersionMirror, VersionPushListener
from filmrec.serving.redis_client import GuardedRedis

if TYPE_CHECKING:
    from filmrec.config import Settings
    from filmrec.ingestion.contract import RatingEvent
    from filmrec.model.recommender import Recommender

KEY_PREFIX = "filmrec:online"


@dataclass(frozen=True)
class OnlineRating:
    """One rating as the online state keeps it (times in epoch milliseconds)."""

    user_id: int
    movie_id: int
    rating: float
    rated_at_ms: int
    event_id: str
    published_ms: int

    @classmethod
    def from_event(cls, event: RatingEvent, *, published_ms: int) -> OnlineRating:
        return cls(
            user_id=int(event.user_id),
            movie_id=int(event.movie_id),
            rating=float(event.rating),
            rated_at_ms=int(event.rated_at.timestamp() * 1000),
            event_id=str(event.event_id),
            published_ms=int(published_ms),
        )

    def supersedes(self, other: OnlineRating) -> bool:
        """The lakehouse's rule: later rated_at wins; on a tie, the larger event_id."""
        return (self.rated_at_ms, self.event_id) > (other.rated_at_ms, other.event_id)

    def to_json(self) -> str:
        return json.dumps(
            {"r": self.rating, "t": self.rated_at_ms, "e": self.event_id, "p": self.published_ms},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, user_id: int, movie_id: int, payload: str | bytes) -> OnlineRating:
        value = json.loads(payload)
        return cls(user_id, movie_id, float(value["r"]), int(value["t"]), str(value["e"]), int(value["p"]))


@dataclass(frozen=True)
class UserOnlineState:
    """A user's ratings not in the served model; version 0 means there are none."""

    version: int = 0
    ratings: Mapping[int, OnlineRating] = field(default_factory=dict)

    def as_online(self) -> dict[int, float]:
        """movie_id -> rating, the form the recommender folds in."""
        return {movie_id: rating.rating for movie_id, rating in self.ratings.items()}


EMPTY_STATE = UserOnlineState()

# Answers "does the served model already contain this rating?" (on a model swap).
ContainsRating = Callable[[OnlineRating], bool]


class OnlineStateStore(Protocol):
    name: str
    ttl_seconds: int

    def apply(self, rating: OnlineRating) -> int:
        """Apply one rating; the user's new state version, or 0 if nothing changed."""
        ...

    def get(self, user_id: int) -> UserOnlineState: ...

    def local_version(self, user_id: int) -> int | None:
        """The user's state version known without I/O (0: no state); None: only `get` knows."""
        ...

    def prune(self, contains: ContainsRating) -> int:
        """Drop every rating `contains` says the model has; return how many."""
        ...

    def size(self) -> tuple[int, int]:
        """(users, ratings) held."""
        ...

    def ping(self) -> None: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


class InProcessOnlineState:
    """Dicts behind one lock: the state of a single API process."""

    name = "in-process"

    def __init__(self, *, ttl_seconds: int, max_event_ids: int = 2_000_000) -> None:
        self.ttl_seconds = ttl_seconds
        self._users: dict[int, dict[int, OnlineRating]] = {}
        self._versions: dict[int, int] = {}
        # event_id -> published_ms, oldest first (roughly: arrival order), for dedup.
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._max_event_ids = max_event_ids
        self._clock = itertools.count(1)
        self._lock = threading.Lock()

    def _expired_before(self) -> int:
        return _now_ms() - self.ttl_seconds * 1000

    def apply(self, rating: OnlineRating) -> int:
        with self._lock:
            if rating.event_id in self._seen:
                return 0
            self._seen[rating.event_id] = rating.published_ms
            self._forget_old_event_ids()
            ratings = self._users.setdefault(rating.user_id, {})
            current = ratings.get(rating.movie_id)
            if current is not None and not rating.supersedes(current):
                return 0
            ratings[rating.movie_id] = rating
            version = next(self._clock)
            self._versions[rating.user_id] = version
            return version

    def _forget_old_event_ids(self) -> None:
        cutoff = self._expired_before()
        while self._seen and (
            len(self._seen) > self._max_event_ids or next(iter(self._seen.values())) < cutoff
        ):
            self._seen.popitem(last=False)

    def _live_ratings(self, user_id: int) -> dict[int, OnlineRating] | None:
        """The user's ratings unless none or expired (then dropped); under the lock."""
        ratings = self._users.get(user_id)
        if not ratings:
            return None
        if max(rating.published_ms for rating in ratings.values()) < self._expired_before():
            del self._users[user_id]  # as a Redis key expires: the whole user at once
            self._versions.pop(user_id, None)
            return None
        return ratings

    def get(self, user_id: int) -> UserOnlineState:
        with self._lock:
            ratings = self._live_ratings(user_id)
            if ratings is None:
                return EMPTY_STATE
            return UserOnlineState(self._versions[user_id], dict(ratings))

    def local_version(self, user_id: int) -> int:
        with self._lock:
            return 0 if self._live_ratings(user_id) is None else self._versions[user_id]

    def prune(self, contains: ContainsRating) -> int:
        with self._lock:
            snapshot = [rating for ratings in self._users.values() for rating in ratings.values()]
        dropped = 0
        for rating in snapshot:
            if not contains(rating):
                continue
            with self._lock:
                ratings = self._users.get(rating.user_id, {})
                if ratings.get(rating.movie_id) == rating:  # not replaced meanwhile
                    del ratings[rating.movie_id]
                    dropped += 1
                    if not ratings:
                        self._users.pop(rating.user_id, None)
                        self._versions.pop(rating.user_id, None)
                    else:  # fewer ratings folded in: another list, so another key
                        self._versions[rating.user_id] = next(self._clock)
        return dropped

    def size(self) -> tuple[int, int]:
        with self._lock:
            return len(self._users), sum(len(ratings) for ratings in self._users.values())

    def ping(self) -> None:
        return None


# Applies one rating atomically, so replicas sharing Redis never interleave halfway,
# and publishes the new version (serving/online_versions.py: `<user>:<version>`).
# KEYS: user hash, event-id marker, users set, version clock.
# ARGV: movie field, payload, rated_at_ms, event_id, ttl seconds, user id, versions channel.
_APPLY_SCRIPT = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[5]) then return 0 end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local o = cjson.decode(old)
  local t = tonumber(ARGV[3])
  if o.t > t or (o.t == t and o.e >= ARGV[4]) then return 0 end
end
local v = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 'v', v)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[6] .. ':' .. v)
return v
"""

# Drops one rating only if it is still the one the caller saw (another replica may
# have replaced it). With no rating left it deletes the user's hash and publishes
# `<user>:0:<version deleted>`; with some left the state still changed (the fold-in
# differs), so the user gets a new version, published like an apply's. The expiry is
# left as it was: ratings are kept for the TTL after the latest one's apply.
# KEYS: user hash, users set, version clock. ARGV: movie field, payload, user id, versions channel.
_PRUNE_SCRIPT = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) <= 1 then
  local deleted = redis.call('HGET', KEYS[1], 'v') or '0'
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[3] .. ':0:' .. deleted)
else
  local v = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[1], 'v', v)
  redis.call('PUBLISH', ARGV[4], ARGV[3] .. ':' .. v)
end
return 1
"""


class RedisOnlineState(GuardedRedis):
    """The online state in Redis: one hash per user (field m<movie> -> rating, v -> version).

    Each instance keeps a mirror of every user's version (serving/online_versions.py),
    filled by a listener thread started at the first `local_version` call: lazily, so
    each worker process starts its own after the fork, and a store only written to (the
    consumer's tests, a CLI) starts none. `listen_for_versions=False`: never started,
    `local_version` is always None.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: int,
        namespace: str,
        timeout_seconds: float = 0.2,
        retry_after_seconds: float = 2.0,
        listen_for_versions: bool = True,
    ) -> None:
        super().__init__(
            url,
            breaker_name="online-state",
            timeout_seconds=timeout_seconds,
            retry_after_seconds=retry_after_seconds,
        )
        self.ttl_seconds = ttl_seconds
        self.prefix = f"{KEY_PREFIX}:{namespace}"
        self._apply = self.client.register_script(_APPLY_SCRIPT)
        self._prune = self.client.register_script(_PRUNE_SCRIPT)
        self.versions_channel = f"{self.prefix}:versions"
        self.versions = OnlineVersionMirror(ttl_seconds=ttl_seconds)
        self.listener = VersionPushListener(
            self.client,
            self.versions,
            channel=self.versions_channel,
            users_key=self._users_key,
            user_key=self._user_key,
        )
        # Checked on every request without the lock; set once the listener was started.
        self._listening = not listen_for_versions
        self._listening_lock = threading.Lock()

    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}:u{user_id}"

    @property
    def _users_key(self) -> str:
        return f"{self.prefix}:users"

    @property
    def _clock_key(self) -> str:
        return f"{self.prefix}:clock"

    def listen(self) -> None:
        """Start the versions listener, once (see the class docstring)."""
        with self._listening_lock:
            if not self._listening:
                self.listener.start()
                self._listening = True

    def local_version(self, user_id: int) -> int | None:
        if not self._listening:
            self.listen()
        return self.versions.version(user_id)

    def apply(self, rating: OnlineRating) -> int:
        keys = [
            self._user_key(rating.user_id),
            f"{self.prefix}:e:{rating.event_id}",
            self._users_key,
            self._clock_key,
        ]
        args: list[str | int] = [
            f"m{rating.movie_id}",
            rating.to_json(),
            rating.rated_at_ms,
            rating.event_id,
            self.ttl_seconds,
            rating.user_id,
            self.versions_channel,
        ]
        version = int(self.breaker.call(lambda: self._apply(keys=keys, args=args)))
        # Read-your-writes in this process at once; the others hear the script's push.
        self.versions.record(rating.user_id, version)
        return version

    def _parse(self, user_id: int, fields: Mapping[Any, Any]) -> Iterator[OnlineRating]:
        # Fields come back as bytes (the client does not decode responses).
        for name, payload in fields.items():
            if name.startswith(b"m"):
                yield OnlineRating.from_json(user_id, int(name[1:]), payload)

    def get(self, user_id: int) -> UserOnlineState:
        fields = self.breaker.call(lambda: self.client.hgetall(self._user_key(user_id)))
        ratings = {rating.movie_id: rating for rating in self._parse(user_id, fields or {})}
        if not ratings:
            return EMPTY_STATE
        return UserOnlineState(int(fields.get(b"v", b"0")), ratings)

    def prune(self, contains: ContainsRating) -> int:
        dropped = 0
        for raw_user in self.client.sscan_iter(self._users_key, count=500):
            user_id = int(raw_user)
            key = self._user_key(user_id)
            fields = self.client.hgetall(key)
            if not fields:
                self.client.srem(self._users_key, raw_user)
                continue
            for rating in self._parse(user_id, fields):
                if contains(rating):
                    args: list[str | int] = [
                        f"m{rating.movie_id}",
                        rating.to_json(),
                        user_id,
                        self.versions_channel,
                    ]
                    dropped += int(self._prune(keys=[key, self._users_key, self._clock_key], args=args))
        return dropped

    def size(self) -> tuple[int, int]:
        users = list(self.client.sscan_iter(self._users_key, count=500))
        pipe = self.client.pipeline(transaction=False)
        for raw_user in users:
            pipe.hlen(self._user_key(int(raw_user)))
        lengths = pipe.execute() if users else []
        return sum(1 for n in lengths if n > 1), sum(max(0, n - 1) for n in lengths)

    def close(self) -> None:
        with self._listening_lock:
            self._listening = True  # not started again by a late request
        self.listener.stop()
        super().close()


def rating_in_model(recommender: Recommender, rating: OnlineRating) -> bool:
    """Whether `recommender` was trained on this rating or a later one of the same movie."""
    return recommender.contains_rating(rating.user_id, rating.movie_id, rated_at_ms=rating.rated_at_ms)


def prune_contained(store: OnlineStateStore, recommender: Recommender) -> int:
    """Drop every online rating `recommender` was trained on (or on a later one)."""
    return store.prune(lambda rating: rating_in_model(recommender, rating))


def build_online_state(settings: Settings) -> OnlineStateStore:
    """Redis (shared by replicas) when REDIS_STATE_URL or REDIS_URL is set, this
    process's memory otherwise."""
    ttl = settings.online_state_ttl_seconds
    url = settings.effective_redis_state_url
    if url:
        return RedisOnlineState(
            url,
            ttl_seconds=ttl,
            namespace=settings.kafka_topic,
            timeout_seconds=settings.redis_timeout_seconds,
            retry_after_seconds=settings.cache_retry_seconds,
        )
    return InProcessOnlineState(ttl_seconds=ttl)


class VisibilityTracker:
    """When an event this process applied is first shown to its user, observe the delay.

    The delay runs from the event's publication (its Kafka timestamp) to the first
    /recommendations answer computed with it. Pending entries older than
    `give_up_seconds` are dropped unobserved: the user asked another replica, or
    did not ask again.
    """

    def __init__(self, observe: Callable[[float], None], *, give_up_seconds: float = 300.0) -> None:
        self._observe = observe
        self._pending: dict[int, list[int]] = {}
        self._give_up_ms = int(give_up_seconds * 1000)
        self._lock = threading.Lock()

    def applied(self, user_id: int, published_ms: int) -> None:
        with self._lock:
            self._pending.setdefault(user_id, []).append(published_ms)
            if len(self._pending) > 100_000:
                self._drop_stale()

    def served(self, user_id: int) -> None:
        if user_id not in self._pending:  # the common case, without the lock
            return
        with self._lock:
            published = self._pending.pop(user_id, [])
        now = _now_ms()
        for stamp in published:
            if now - stamp <= self._give_up_ms:
                self._observe(max(0.0, (now - stamp) / 1000))

    def _drop_stale(self) -> None:
        cutoff = _now_ms() - self._give_up_ms
        for user_id in [u for u, stamps in self._pending.items() if max(stamps) < cutoff]:
            del self._pending[user_id]
