"""Rate limits (the `limits` library): one implementation, two limits.

* writes (FILMREC_RATE_LIMIT): per API key name;
* reads (FILMREC_READ_RATE_LIMIT): per client, the key's name when the request sends a
  valid key, else its address (`read_client`).

In this process's memory by default; in Redis when REDIS_STATE_URL or REDIS_URL is set
(the state's Redis: the cache's eviction must not reset a window), so every replica
counts against one limit per client. A limiter that cannot reach Redis lets the request
through (counted, logged once per outage): a rate limit protects the service, and
refusing every write while Redis is down would be the outage it is meant to prevent.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio.to_thread

from filmrec.config import Settings
from filmrec.serving import metrics
from filmrec.serving.api_keys import HEADER, ApiKeyring
from filmrec.serving.breaker import CircuitBreaker, CircuitOpenError

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.storage import Storage
    from limits.strategies import RateLimiter
    from starlette.types import Scope

log = logging.getLogger(__name__)

# Keys in Redis: filmrec-limits/<strategy>/<scope>/<client>/...
KEY_PREFIX = "filmrec-limits"
LimitScope = Literal["write", "read"]
# Set in the ASGI scope once a read was counted (by the hit fast path), so the route's
# dependency does not count it a second time when the fast path hands the request on.
READ_COUNTED = "filmrec.read_counted"
_HEADER = HEADER.lower().encode("latin-1")


def read_client(presented_key: str | None, address: str | None, keyring: ApiKeyring) -> str:
    """Whom a read is counted against: the key's name when a valid key is sent, else the
    address. An invalid key counts against the address, so made-up keys buy no budget;
    the prefixes keep a key named like an address apart from that address."""
    if presented_key:
        name = keyring.identify(presented_key)
        if name is not None:
            return f"key:{name}"
    return f"address:{address or 'unknown'}"


def scope_read_client(scope: Scope, keyring: ApiKeyring) -> str:
    """`read_client` of a raw ASGI request: uvicorn already replaced the address by the
    forwarded one when the peer is a trusted proxy (FILMREC_FORWARDED_ALLOW_IPS)."""
    presented = None
    for name, value in scope["headers"]:
        if name == _HEADER:
            presented = value.decode("latin-1")
            break
    client = scope.get("client")
    return read_client(presented, client[0] if client else None, keyring)


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    limit: str
    # Whole seconds until one more request fits (0 when allowed): the Retry-After header.
    retry_after_seconds: int = 0


class KeyRateLimiter:
    """One limit (e.g. 60/minute) per client (a key name, or an address), for one scope."""

    def __init__(
        self,
        limit: str,
        *,
        storage: Storage | None = None,
        strategy: str = "moving-window",
        scope: str = "write",
        retry_after_seconds: float = 2.0,
    ) -> None:
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

        try:
            self.item: RateLimitItem = parse(limit)
        except ValueError as error:  # a bad FILMREC_(READ_)RATE_LIMIT: the start fails
            raise ValueError(f"{scope} rate limit {limit!r}: {error}") from error
        self.limit = limit
        self.scope = scope
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.shared = storage is not None and not isinstance(storage, MemoryStorage)
        strategies: dict[str, type[RateLimiter]] = {
            "moving-window": MovingWindowRateLimiter,
            "fixed-window": FixedWindowRateLimiter,
        }
        self.strategy = strategies[strategy](self.storage)
        self.breaker = CircuitBreaker("rate limit storage", retry_after_seconds=retry_after_seconds)

    @classmethod
    def from_settings(cls, settings: Settings, *, scope: LimitScope = "write") -> KeyRateLimiter:
        """The write limiter, or the read one (FILMREC_READ_RATE_LIMIT, which must be on)."""
        if scope == "read" and not settings.read_rate_limit:
            raise ValueError("FILMREC_READ_RATE_LIMIT is off: there is no read limiter")
        storage: Storage | None = None
        url = settings.effective_redis_state_url  # with the online state: never evicted by the cache
        if url:
            from limits.storage import RedisStorage
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # The same bounded, no-retry client as the cache (serving/redis_client.py):
            # the breaker is the retry policy.
            storage = RedisStorage(
                url,
                key_prefix=KEY_PREFIX,
                socket_timeout=settings.redis_timeout_seconds,
                socket_connect_timeout=settings.redis_timeout_seconds,
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
                retry_on_timeout=False,
                health_check_interval=0,
            )
        if scope == "read":
            # A fixed window for reads, whatever FILMREC_RATE_LIMIT_STRATEGY says: one
            # counter per client (one INCR in Redis), where a moving window keeps one entry
            # per request in the window, in memory or in the noeviction state Redis, for
            # every anonymous address. Its cost: a burst of up to twice the limit across a
            # window's edge, which a limit meant against floods can afford.
            return cls(
                settings.read_rate_limit,
                storage=storage,
                strategy="fixed-window",
                scope="read",
                retry_after_seconds=settings.cache_retry_seconds,
            )
        return cls(
            settings.rate_limit,
            storage=storage,
            strategy=settings.rate_limit_strategy,
            retry_after_seconds=settings.cache_retry_seconds,
        )

    def check(self, key_name: str) -> LimitDecision:
        """Count one request of `key_name` (the client); blocking when the storage is Redis."""
        try:
            allowed = self.breaker.call(lambda: self.strategy.hit(self.item, self.scope, key_name))
        except Exception as error:
            self._degraded(error)
            return LimitDecision(allowed=True, limit=self.limit)
        if self.shared:
            metrics.DEPENDENCY_UP.labels(dependency="rate_limit").set(1)
        if allowed:
            return LimitDecision(allowed=True, limit=self.limit)
        metrics.RATE_LIMITED.labels(scope=self.scope).inc()
        try:
            reset_at = self.strategy.get_window_stats(self.item, self.scope, key_name).reset_time
            wait = reset_at - time.time()
        except Exception:  # refused anyway; the whole window is a safe upper bound
            wait = float(self.item.get_expiry())
        return LimitDecision(allowed=False, limit=self.limit, retry_after_seconds=max(1, math.ceil(wait)))

    async def acheck(self, key_name: str) -> LimitDecision:
        """`check` from the event loop: Redis round trips go to a worker thread."""
        if self.shared:
            return await anyio.to_thread.run_sync(self.check, key_name)
        return self.check(key_name)  # in memory: a dict update, cheaper than a thread hop

    def _degraded(self, error: Exception) -> None:
        metrics.RATE_LIMIT_ERRORS.inc()
        metrics.DEPENDENCY_UP.labels(dependency="rate_limit").set(0)
        # While the breaker is open calls fail at once: log the failures that reached
        # Redis (one per retry window), not every request in between.
        if not isinstance(error, CircuitOpenError):
            log.warning("rate limit storage unavailable, requests are let through: %s", error)

    def reset(self) -> None:
        self.storage.reset()
