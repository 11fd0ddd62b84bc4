"""A small in-process LRU of response bodies in front of the recommendation cache.

A hit here is answered on the event loop with the stored bytes: no thread hop, no
Redis round trip for the list, no JSON decoding and no pydantic. It is keyed exactly
like the shared cache (serving/cache.py: model name and version, user, online-state
version, k), so it can never hold a list the shared cache would not; the TTL is
short because entries are dropped only by age or by size: a few seconds bound how
long a process keeps answering from memory what Redis already evicted or what a
cache flush removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from filmrec.serving.expiring_lru import ExpiringLRU


class HitCache:
    """Bounded entries, one TTL for all, safe across the event loop and scoring threads."""

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must be >= 0")
        self.ttl_seconds = ttl_seconds
        self._lru = ExpiringLRU(max_entries=max_entries, clock=clock)  # checks max_entries

    @property
    def max_entries(self) -> int:
        return self._lru.max_entries

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.ttl_seconds > 0

    def get(self, key: str) -> bytes | None:
        return self._lru.get(key) if self.enabled else None

    def put(self, key: str, body: bytes) -> None:
        if self.enabled:
            self._lru.put_many({key: body}, ttl_seconds=self.ttl_seconds)

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)
