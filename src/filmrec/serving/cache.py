"""Recommendation caches: in-process by default, Redis when REDIS_URL is set.

Keys carry the model version, so a new champion never serves an old list.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol


def recommendation_key(*, model_version: str, user_id: int, k: int) -> str:
    return f"filmrec:recs:v{model_version}:u{user_id}:k{k}"


class RecommendationCache(Protocol):
    name: str

    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any], *, ttl_seconds: int) -> None: ...

    def ping(self) -> None: ...


class InProcessCache:
    """A bounded LRU dict with expiry, shared by the threads of one process."""

    name = "in-process"

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, payload = entry
            if expires_at < time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
        return json.loads(payload)

    def set(self, key: str, value: dict[str, Any], *, ttl_seconds: int) -> None:
        # Stored as JSON so callers get a fresh copy and behave as with Redis.
        payload = json.dumps(value)
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl_seconds, payload)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def ping(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._entries)
