"""A small circuit breaker for dependencies on the request path (Redis, the database).

Without it, a dead or hung dependency adds its full timeout to every request. After
a failure the breaker opens for `retry_after_seconds`: calls fail at once. When the
window ends, exactly one caller is let through to probe; success closes the breaker
(the dependency is used again by itself), failure opens it for another window.

Only a dependency's own faults open it: `is_fault` tells them from errors the input
caused (a value the database refuses, say). Those say nothing about the dependency,
and counting them would let any anonymous request switch a feature off for everyone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
FaultTest = Callable[[Exception], bool]


def every_error_is_a_fault(_error: Exception) -> bool:
    """For dependencies no request input reaches (keys and values the server builds)."""
    return True


class CircuitOpenError(ConnectionError):
    """Raised instead of calling a dependency that failed moments ago."""


class CircuitBreaker:
    def __init__(
        self, name: str, *, retry_after_seconds: float = 2.0, is_fault: FaultTest = every_error_is_a_fault
    ) -> None:
        self.name = name
        self.retry_after_seconds = retry_after_seconds
        self.is_fault = is_fault
        self._open_until = 0.0
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self._open_until > time.monotonic()

    def _admit(self) -> bool:
        if self._open_until == 0.0:
            return True  # closed: the fast path takes no lock
        with self._lock:
            now = time.monotonic()
            if now < self._open_until:
                return False
            # Half-open: this caller probes; everyone else waits out one more window.
            self._open_until = now + self.retry_after_seconds
            return True

    def call(self, operation: Callable[[], T]) -> T:
        probing = self._open_until != 0.0  # read before _admit: this call may be the probe
        if not self._admit():
            raise CircuitOpenError(f"{self.name} failed recently ({self.last_error}); retrying later")
        try:
            result = operation()
        except Exception as error:
            if self.is_fault(error):
                self.record_failure(error)
            elif probing:
                # The probe learnt nothing about the dependency: the next caller probes.
                with self._lock:
                    self._open_until = min(self._open_until, time.monotonic())
            raise
        self.record_success()
        return result

    def record_failure(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"[:300]
        self._open_until = time.monotonic() + self.retry_after_seconds

    def record_success(self) -> None:
        if self._open_until:
            self._open_until = 0.0
            self.last_error = None
