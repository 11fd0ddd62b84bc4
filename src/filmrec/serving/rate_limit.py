"""Per-key rate limits for writes (the `limits` library).

In this process's memory by default; in Redis when REDIS_STATE_URL or REDIS_URL is set
(the state's Redis: the cache's eviction must not reset a window), so every replica
counts against one limit per key. A limiter that cannot reach Redis lets the request
through (counted, logged once per outage): a rate limit protects the service, and
refusing every write while Redis is down would be the outage it is meant to prevent.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio.to_thread

from filmrec.config import Settings
from filmrec.serving import metrics
from filmrec.serving.breaker import CircuitBreaker, CircuitOpenError

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.storage import Storage
    from limits.strategies import RateLimiter

log = logging.getLogger(__name__)

# Keys in Redis: filmrec-limits/<strategy>/<scope>/<key name>/...
KEY_PREFIX = "filmrec-limits"


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    limit: str
    # Whole seconds until one more request fits (0 when allowed): the Retry-After header.
    retry_after_seconds: int = 0


class KeyRateLimiter:
    """One limit (e.g. 60/minute) per API key name, for one scope (writes)."""

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

        self.item: RateLimitItem = parse(limit)  # ValueError on a bad FILMREC_RATE_LIMIT: start fails
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
    def from_settings(cls, settings: Settings) -> KeyRateLimiter:
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
        return cls(
            settings.rate_limit,
            storage=storage,
            strategy=settings.rate_limit_strategy,
            retry_after_seconds=settings.cache_retry_seconds,
        )

    def check(self, key_name: str) -> LimitDecision:
        """Count one request of `key_name`; blocking when the storage is Redis."""
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
