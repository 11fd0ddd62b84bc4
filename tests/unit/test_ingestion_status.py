"""The ingestion status file: totals across runs, per-batch updates, liveness, the healthcheck."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from filmrec.ingestion.ingest_status import (
    IngestionMode,
    RunState,
    RunStatus,
    check_running,
    main,
    read_status,
    running_mode,
    stale_after_seconds,
)


def _counts(read: int, written: int, batches: int) -> dict[str, int]:
    return {
        "read": read,
        "written": written,
        "duplicates": read - written,
        "quarantined": 0,
        "batches": batches,
    }


def test_publishing_after_every_batch_counts_each_event_once(tmp_path: Path) -> None:
    path = tmp_path / "_status" / "ingestion.json"
    run = RunStatus(path, mode="continuous", pid=1)
    run.publish(state=RunState.RUNNING, counts=_counts(0, 0, 0))
    run.publish(counts=_counts(10, 9, 1), success=True, last_batch_seconds=1.5)
    run.publish(counts=_counts(25, 20, 2), success=True, last_batch_seconds=0.5)
    run.publish()  # a heartbeat: no new counts
    status = read_status(path)
    assert status["totals"] == {"read": 25, "written": 20, "duplicates": 5, "quarantined": 0}
    assert status["batches_total"] == 2
    assert status["status"] == "running" and status["mode"] == "continuous"
    assert status["last_batch_seconds"] == 0.5  # kept by the heartbeat
    assert status["last_success_at"] and status["heartbeat_at"] >= status["last_success_at"]
    assert not list(path.parent.glob("*.tmp"))  # written atomically

    # The next run carries the totals on and starts its own counts from zero.
    second = RunStatus(path, mode="available_now", pid=2)
    second.publish(state=RunState.OK, counts=_counts(5, 5, 1), success=True)
    status = read_status(path)
    assert status["totals"] == {"read": 30, "written": 25, "duplicates": 5, "quarantined": 0}
    assert status["batches_total"] == 3
    assert (status["read"], status["batches"], status["mode"], status["pid"]) == (5, 1, "available_now", 2)


def test_a_failed_run_keeps_the_last_success_and_unknown_totals(tmp_path: Path) -> None:
    path = tmp_path / "ingestion.json"
    path.write_text(json.dumps({"last_success_at": "2026-01-01T00:00:00+00:00", "totals": {"legacy": 4}}))
    RunStatus(path, mode="available_now").publish(
        state=RunState.FAILED, counts=_counts(3, 0, 0), error="boom"
    )
    status = read_status(path)
    assert status["last_success_at"] == "2026-01-01T00:00:00+00:00"
    assert status["totals"]["legacy"] == 4 and status["totals"]["read"] == 3
    assert status["status"] == "failed" and status["error"] == "boom"


def test_an_unreadable_file_starts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "ingestion.json"
    path.write_text("{half a fi")
    assert read_status(path) == {}
    RunStatus(path).publish(counts=_counts(1, 1, 1))
    assert read_status(path)["totals"]["read"] == 1


def _status(state: str, heartbeat_age: float, mode: str = "continuous") -> dict[str, object]:
    heartbeat = datetime.now(UTC) - timedelta(seconds=heartbeat_age)
    return {"status": state, "mode": mode, "heartbeat_at": heartbeat.isoformat(), "heartbeat_seconds": 10}


def test_running_needs_a_fresh_heartbeat() -> None:
    stale = stale_after_seconds({"heartbeat_seconds": 10})
    assert running_mode(_status("running", 1)) is IngestionMode.CONTINUOUS
    assert running_mode(_status("running", 1, "available_now")) is IngestionMode.AVAILABLE_NOW
    # Killed without a word: the file still says running, the heartbeat gives it away.
    assert running_mode(_status("running", stale + 1)) is None
    for state in ("ok", "stopped", "failed"):
        assert running_mode(_status(state, 1)) is None
    assert running_mode({"status": "running"}) is None  # no heartbeat at all
    assert running_mode({**_status("running", 1), "mode": "sideways"}) is None


def test_the_healthcheck_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ingestion.json"
    assert main(["--status-file", str(path)]) == 1
    assert "no ingestion status" in capsys.readouterr().err

    path.write_text(json.dumps(_status("running", 2)))
    assert main(["--status-file", str(path), "--mode", "continuous"]) == 0
    assert main(["--status-file", str(path)]) == 0
    assert main(["--status-file", str(path), "--mode", "available_now"]) == 1
    assert "not available_now" in capsys.readouterr().err

    path.write_text(json.dumps(_status("stopped", 2)))
    healthy, why = check_running(path, IngestionMode.CONTINUOUS)
    assert not healthy and "status stopped" in why
