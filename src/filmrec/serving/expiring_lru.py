"""A bounded LRU of bytes with per-entry expiry, shared by the threads of one process.

Both in-process caches are one of these: the shared cache when no REDIS_URL is set
(serving/cache.py) and the small LRU of bodies in front of any cache
(serving/hit_cache.py).

Keys carry the user's online-state version, so a posted rating retires the user's
keys for good: nothing reads them again, and an expired entry nobody reads would sit
until the size bound pushed it out. So each write also drops the expired entries at
the least recently used end: memory follows the keys still alive, not the bound (a
soak's posted ratings had filled the body LRU with dead versions).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping


class ExpiringLRU:
    """At most `max_entries` entries, the least recently used dropped first; an entry
    is gone once its time is up, whether read or not."""

    def __init__(self, *, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        # A plain lock: held for dict operations only, never across I/O.
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, value = entry
            if expires_at <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)  # a read does not extend the entry's life
            return value

    def put_many(self, values: Mapping[str, bytes], *, ttl_seconds: float) -> None:
        # bytes are immutable: callers share a stored value safely, as with Redis.
        now = self._clock()
        expires_at = now + ttl_seconds
        with self._lock:
            for key, value in values.items():
                self._entries[key] = (expires_at, value)
                self._entries.move_to_end(key)
            # The front is the least recently used; stop at its first live entry, so a
            # write costs O(1) amortised (each entry is dropped once). Expired entries
            # behind a live one wait for a later write, or for the size bound.
            while self._entries:
                oldest_expiry = next(iter(self._entries.values()))[0]
                if oldest_expiry > now and len(self._entries) <= self.max_entries:
                    break
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
