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

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class HitCache:
    """Bounded entries, per-entry expiry, safe across the event loop and scoring threads."""

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0 or ttl_seconds < 0:
            raise ValueError("max_entries and ttl_seconds must be >= 0")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        # A plain lock: held for a dict operation only, never across I/O.
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.ttl_seconds > 0

    def get(self, key: str) -> bytes | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, body = entry
            if expires_at <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return body

    def put(self, key: str, body: bytes) -> None:
        if not self.enabled:
            return
        expires_at = self._clock() + self.ttl_seconds
        with self._lock:
            self._entries[key] = (expires_at, body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
