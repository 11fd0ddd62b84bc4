from __future__ import annotations

import time

import pytest

from filmrec.serving.breaker import CircuitBreaker, CircuitOpenError


def _fail() -> None:
    raise ConnectionError("down")


def test_opens_after_a_failure_and_probes_once_per_window() -> None:
    breaker = CircuitBreaker("x", retry_after_seconds=0.2)
    calls = []
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    assert breaker.is_open
    # While open, the dependency is not called at all.
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: calls.append(1))
    assert calls == []
    time.sleep(0.25)
    # One probe after the window; it succeeds and closes the breaker.
    assert breaker.call(lambda: calls.append(1) or "ok") == "ok"
    assert not breaker.is_open and breaker.last_error is None
    assert calls == [1]


def test_a_failed_probe_opens_another_window() -> None:
    breaker = CircuitBreaker("x", retry_after_seconds=0.1)
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    time.sleep(0.15)
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    breaker.record_success()  # e.g. a /ready ping got through
    assert breaker.call(lambda: 1) == 1


def _refused_value() -> None:
    raise ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")


def test_an_error_the_input_caused_never_opens_it() -> None:
    breaker = CircuitBreaker(
        "x", retry_after_seconds=60, is_fault=lambda error: not isinstance(error, ValueError)
    )
    for _ in range(100):
        with pytest.raises(ValueError):
            breaker.call(_refused_value)
    assert not breaker.is_open and breaker.last_error is None
    assert breaker.call(lambda: "ok") == "ok"


def test_a_probe_that_fails_on_its_input_leaves_the_next_caller_to_probe() -> None:
    breaker = CircuitBreaker(
        "x", retry_after_seconds=0.1, is_fault=lambda error: not isinstance(error, ValueError)
    )
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    time.sleep(0.15)
    with pytest.raises(ValueError):
        breaker.call(_refused_value)  # the probe: it says nothing about the dependency
    assert breaker.call(lambda: "ok") == "ok"  # so this caller probes at once, and closes it
    assert not breaker.is_open


def test_by_default_every_error_counts() -> None:
    breaker = CircuitBreaker("x", retry_after_seconds=60)
    with pytest.raises(ValueError):
        breaker.call(_refused_value)
    assert breaker.is_open
