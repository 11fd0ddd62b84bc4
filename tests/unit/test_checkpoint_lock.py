"""The checkpoint lock: exclusive, non-blocking, naming its holder, released however a run ends."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from filmrec.ingestion import checkpoint_lock
from filmrec.ingestion.checkpoint_lock import (
    LOCK_FILE_NAME,
    CheckpointBusyError,
    CheckpointLock,
    LockHolder,
    checkpoint_holder,
)

# A separate process that takes the lock, says so, and waits to be killed.
_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from filmrec.ingestion.checkpoint_lock import CheckpointLock

    lock = CheckpointLock(Path(sys.argv[1]), mode="continuous").acquire()
    print("locked", flush=True)
    time.sleep(600)
    """
)


def _holding_process(checkpoint: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(checkpoint)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_second_run_fails_at_once_naming_the_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = tmp_path / "checkpoint"
    # Every flock request, as the kernel gets it: "at once" means each exclusive request
    # is non-blocking (a blocking one would wait for the holder, however long it runs).
    requests: list[int] = []
    real_flock = checkpoint_lock.fcntl.flock

    def recorded_flock(fd: int, operation: int) -> None:
        requests.append(operation)
        real_flock(fd, operation)

    monkeypatch.setattr(checkpoint_lock.fcntl, "flock", recorded_flock)
    with CheckpointLock(checkpoint, mode="continuous") as first:
        assert first.held and first.path == checkpoint / LOCK_FILE_NAME
        recorded = json.loads(first.path.read_text())
        assert recorded["pid"] == os.getpid() and recorded["mode"] == "continuous"

        requests.clear()
        with pytest.raises(CheckpointBusyError) as busy:
            CheckpointLock(checkpoint, mode="available_now").acquire()
        assert requests == [fcntl.LOCK_EX | fcntl.LOCK_NB], "one non-blocking attempt, no wait, no retry"
        message = str(busy.value)
        assert f"pid {os.getpid()}" in message
        assert "mode continuous" in message and recorded["started_at"] in message
        assert "one ingestion mode per deployment at a time" in message
        assert busy.value.holder.mode == "continuous"
    # Released on exit: the next run gets it, and the file names nobody.
    assert first.path.read_text() == ""
    with CheckpointLock(checkpoint, mode="available_now"):
        pass


def test_another_process_holding_it_is_named_and_a_kill_releases_it(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    holder = _holding_process(checkpoint)
    try:
        with pytest.raises(CheckpointBusyError, match=f"pid {holder.pid} on .*, mode continuous"):
            CheckpointLock(checkpoint, mode="available_now").acquire()
        probed = checkpoint_holder(checkpoint)
        assert probed is not None and probed.pid == holder.pid and probed.mode == "continuous"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the lock with the process: no stale lock, although the dead
    # holder never emptied the file.
    assert checkpoint_holder(checkpoint) is None
    with CheckpointLock(checkpoint, mode="available_now") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_probing_a_free_checkpoint_neither_keeps_nor_creates_the_lock(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    assert checkpoint_holder(checkpoint) is None
    assert not checkpoint.exists()
    with CheckpointLock(checkpoint, mode="continuous"):
        pass
    assert checkpoint_holder(checkpoint) is None
    with CheckpointLock(checkpoint, mode="continuous"):  # the probe left it free
        pass


def test_release_is_idempotent_and_acquire_reentrant_for_the_same_object(tmp_path: Path) -> None:
    lock = CheckpointLock(tmp_path, mode="continuous")
    assert lock.acquire() is lock.acquire()
    lock.release()
    lock.release()
    assert not lock.held


@pytest.mark.parametrize("content", ["", "not json", "[1]", '{"pid": "12"}'])
def test_a_holder_that_wrote_nothing_usable_is_still_reported(content: str) -> None:
    holder = LockHolder.parse(content)
    assert holder.pid is None
    assert "another ingestion run" in holder.describe()


def test_a_busy_checkpoint_stops_the_job_before_spark_starts(tmp_path: Path) -> None:
    """The lock comes first (kafka_ingest.run_ingestion_job): a second run never starts a JVM."""
    from filmrec.config import Settings
    from filmrec.ingestion.kafka_ingest import checkpoint_dir, run_ingestion_job
    from filmrec.lakehouse.tables import LakehouseTables

    settings = Settings(_env_file=None, LAKEHOUSE_PATH=tmp_path / "lakehouse")
    spark_starts: list[str] = []

    def start_spark() -> Any:
        spark_starts.append("started")
        raise AssertionError("Spark started although the checkpoint is busy")

    checkpoint = checkpoint_dir(LakehouseTables(settings.lakehouse_path))
    with CheckpointLock(checkpoint, mode="continuous"), pytest.raises(CheckpointBusyError):
        run_ingestion_job(start_spark, settings)
    assert spark_starts == []
