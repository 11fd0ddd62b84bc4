"""Redis on the request path: bounded timeouts, no client retries, a circuit breaker.

redis-py retries a failed command by default, which would multiply the timeout; the
breaker is the retry policy here, and callers fall back (compute the list, use the
model alone). The recommendation cache and the online state both build on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from filmrec.serving.breaker import CircuitBreaker

if TYPE_CHECKING:
    import redis


class GuardedRedis:
    def __init__(
        self,
        url: str,
        *,
        breaker_name: str,
        timeout_seconds: float = 0.2,
        retry_after_seconds: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
            max_connections=max_connections,
        )
        self.breaker = CircuitBreaker(breaker_name, retry_after_seconds=retry_after_seconds)

    def ping(self) -> None:
        # Not through the breaker: /ready must see the real state, and a successful
        # ping closes the breaker early so Redis is used again without waiting.
        try:
            self.client.ping()
        except Exception as error:
            self.breaker.record_failure(error)
            raise
        self.breaker.record_success()

    def close(self) -> None:
        self.client.close()
