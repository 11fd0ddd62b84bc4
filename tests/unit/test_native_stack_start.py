"""The native stack's start: one that fails half-way stops what it started."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import pytest

from devstack.stack import NativeStack, Ports, StackError


def _stack(tmp_path: Path) -> NativeStack:
    return NativeStack(
        root=tmp_path / "stack", ports=Ports(), lakehouse=tmp_path / "lakehouse", var_dir=tmp_path
    )


def test_a_start_that_fails_half_way_stops_only_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _stack(tmp_path)
    stopped: list[Collection[str] | None] = []

    def half_way(states: dict[str, str], *, streaming: bool, log: Callable[[str], None]) -> None:
        states |= {"postgresql": "running", "kafka": "started", "spark-master": "started"}
        raise StackError("airflow-api-server: port 8080 is taken by a process that is not healthy")

    def down(*, only: Collection[str] | None = None, log: Callable[[str], None] = print) -> None:
        stopped.append(only)

    monkeypatch.setattr(stack, "_bring_up", half_way)
    monkeypatch.setattr(stack, "down", down)
    with pytest.raises(StackError, match="port 8080"):
        stack.up(log=lambda line: None)
    # Started by this call: stopped. Already running (someone's, or an earlier up's): left.
    assert stopped == [["kafka", "spark-master"]]


def test_a_start_that_succeeds_stops_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _stack(tmp_path)

    def whole(states: dict[str, str], *, streaming: bool, log: Callable[[str], None]) -> None:
        states |= {"kafka": "started"}

    monkeypatch.setattr(stack, "_bring_up", whole)
    monkeypatch.setattr(stack, "down", lambda **_: pytest.fail("down after a whole start"))
    assert stack.up(log=lambda line: None) == {"kafka": "started"}
