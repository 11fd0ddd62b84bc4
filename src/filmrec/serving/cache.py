"""Recommendation caches: in-process by default, Redis when REDIS_URL is set.

Keys carry the model version, so a new champion never serves an old list, and the
user's online state version, so a new rating never meets a list cached before it. Every
cache raises on failure; callers (serving/recommendations.py) count the error and
answer from the model instead.

Values are the response body itself, JSON bytes serialised once when the list is
computed: a hit is returned as stored, with no decoding, validation or re-encoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from filmrec.serving.expiring_lru import ExpiringLRU
from filmrec.serving.redis_client import GuardedRedis

if TYPE_CHECKING:
    from filmrec.config import Settings

# "json1": the value format (a whole response body). Entries of another format, from a
# replica still running older code, then never meet this code's keys.
KEY_PREFIX = "filmrec:recs:json1"


def model_key_prefix(*, model_version: str, model_name: str | None = None) -> str:
    """Keys of one model version. The name is part of it: versions restart at 1 per
    registered model, and several models (or deployments) may share one Redis."""
    name = f"{model_name}:" if model_name else ""
    return f"{KEY_PREFIX}:{name}v{model_version}"


def recommendation_key(
    *,
    model_version: str,
    user_id: int,
    k: int,
    model_name: str | None = None,
    state_version: int = 0,
    variant: str = "",
) -> str:
    """The key of one list. `state_version` is the user's online state version: a new
    rating gives a new key on every replica, so no list cached before it is served.
    `variant` names what else shapes the list (filters, explanations); empty for the
    plain list, whose key is the one the warm-up writes."""
    state = f":s{state_version}" if state_version else ""
    suffix = f":{variant}" if variant else ""
    prefix = model_key_prefix(model_version=model_version, model_name=model_name)
    return f"{prefix}:u{user_id}{state}:k{k}{suffix}"


class RecommendationCache(Protocol):
    name: str

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, *, ttl_seconds: int) -> None: ...

    def set_many(self, values: Mapping[str, bytes], *, ttl_seconds: int) -> None: ...

    def ping(self) -> None: ...


class InProcessCache:
    """The cache in this process: a bounded LRU with expiry (serving/expiring_lru.py)."""

    name = "in-process"

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._lru = ExpiringLRU(max_entries=max_entries)

    def get(self, key: str) -> bytes | None:
        return self._lru.get(key)

    def set(self, key: str, value: bytes, *, ttl_seconds: int) -> None:
        self._lru.put_many({key: value}, ttl_seconds=ttl_seconds)

    def set_many(self, values: Mapping[str, bytes], *, ttl_seconds: int) -> None:
        self._lru.put_many(values, ttl_seconds=ttl_seconds)

    def ping(self) -> None:
        return None

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)


class NullCache:
    """No caching at all (CACHE_ENABLED=false): every request runs the model."""

    name = "disabled"

    def get(self, key: str) -> bytes | None:
        return None

    def set(self, key: str, value: bytes, *, ttl_seconds: int) -> None:
        return None

    def set_many(self, values: Mapping[str, bytes], *, ttl_seconds: int) -> None:
        return None

    def ping(self) -> None:
        return None


class RedisCache(GuardedRedis):
    """The cache in Redis, shared by every replica (see serving/redis_client.py)."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 0.2,
        retry_after_seconds: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        super().__init__(
            url,
            breaker_name="redis",
            timeout_seconds=timeout_seconds,
            retry_after_seconds=retry_after_seconds,
            max_connections=max_connections,
        )

    def get(self, key: str) -> bytes | None:
        # The client does not decode responses: the stored body comes back as bytes.
        payload = self.breaker.call(lambda: self.client.get(key))
        return payload if payload is None or isinstance(payload, bytes) else payload.encode()

    def set(self, key: str, value: bytes, *, ttl_seconds: int) -> None:
        self.breaker.call(lambda: self.client.set(key, value, ex=ttl_seconds))

    def set_many(self, values: Mapping[str, bytes], *, ttl_seconds: int, chunk_size: int = 1000) -> None:
        """Write many entries in pipelined round trips of `chunk_size` commands."""
        items = list(values.items())
        for start in range(0, len(items), chunk_size):
            pipe = self.client.pipeline(transaction=False)
            for key, value in items[start : start + chunk_size]:
                pipe.set(key, value, ex=ttl_seconds)
            self.breaker.call(pipe.execute)


def build_cache(settings: Settings) -> RecommendationCache:
    """Redis when REDIS_URL is set, the in-process LRU otherwise, nothing when disabled."""
    if not settings.cache_enabled:
        return NullCache()
    if settings.redis_url:
        return RedisCache(
            settings.redis_url,
            timeout_seconds=settings.redis_timeout_seconds,
            retry_after_seconds=settings.cache_retry_seconds,
        )
    return InProcessCache()
