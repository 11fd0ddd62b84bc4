"""One ingestion run per streaming checkpoint at a time: an exclusive lock file inside it.

A Structured Streaming checkpoint admits one writer. Two queries on it (the
continuous job and a scheduled availableNow run, or bootstrap_movielens' ingest
beside either) would both plan the next batch and race to commit it. Airflow's
`max_active_runs=1` only keeps runs of one DAG apart; this lock covers every run
of the ingestion job, whoever started it, in every container that mounts the
lakehouse. The rule it enforces: one ingestion mode per deployment at a time.

flock(2) rather than "create the file if absent": the kernel drops the lock when
the holding process exits, however it exits (SIGKILL included), so a crash never
leaves a stale lock for an operator to delete. The lock is non-blocking: a second
run fails at once with a CheckpointBusyError naming the holder, whose pid, host,
mode and start time the holder writes into the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

LOCK_FILE_NAME = "_filmrec_ingestion.lock"


@dataclass(frozen=True)
class LockHolder:
    """Who holds a checkpoint, as the holder recorded it (fields may be missing)."""

    pid: int | None = None
    host: str | None = None
    mode: str | None = None
    started_at: str | None = None

    @classmethod
    def parse(cls, text: str) -> LockHolder:
        try:
            document = json.loads(text)
        except ValueError:
            return cls()  # empty: the holder has not written its name yet
        if not isinstance(document, dict):
            return cls()
        pid = document.get("pid")
        return cls(
            pid=int(pid) if isinstance(pid, int) else None,
            host=document.get("host"),
            mode=document.get("mode"),
            started_at=document.get("started_at"),
        )

    def describe(self) -> str:
        if self.pid is None:
            return "another ingestion run (it has not recorded its pid yet)"
        host = self.host or "an unknown host"
        return f"pid {self.pid} on {host}, mode {self.mode}, started {self.started_at}"


class CheckpointBusyError(RuntimeError):
    """Another ingestion run holds the checkpoint; the message names it."""

    def __init__(self, checkpoint: Path, holder: LockHolder) -> None:
        self.checkpoint = checkpoint
        self.holder = holder
        super().__init__(
            f"the ingestion checkpoint {checkpoint} is held by {holder.describe()}: one ingestion "
            "mode per deployment at a time (the continuous job or the scheduled runs), so this "
            "run stops here; stop that run first or let it finish"
        )


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> LockHolder:
    os.lseek(fd, 0, os.SEEK_SET)
    return LockHolder.parse(os.read(fd, 4096).decode(errors="replace"))


class CheckpointLock:
    """The exclusive, non-blocking lock of one checkpoint directory (a context manager)."""

    def __init__(self, checkpoint: Path, *, mode: str) -> None:
        self.checkpoint = checkpoint
        self.mode = mode
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.checkpoint / LOCK_FILE_NAME

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> CheckpointLock:
        """Take the lock or raise CheckpointBusyError at once; record who holds it."""
        if self._fd is not None:
            return self
        self.checkpoint.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o664)
        if not _try_flock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            raise CheckpointBusyError(self.checkpoint, holder)
        holder = LockHolder(
            pid=os.getpid(),
            host=socket.gethostname(),
            mode=self.mode,
            started_at=datetime.now(UTC).isoformat(),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(holder)) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # Emptied first: a run that finds the lock free never reads the content, but an
        # operator looking at the file should not see a finished run as the holder.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> CheckpointLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def checkpoint_holder(checkpoint: Path) -> LockHolder | None:
    """Who holds the checkpoint now, or None when it is free.

    A probe for schedulers deciding whether to start a run: the lock is taken and
    dropped at once when free, and nothing is written.
    """
    path = checkpoint / LOCK_FILE_NAME
    try:
        # Read-write although nothing is written: where flock is emulated with POSIX
        # locks (NFS), an exclusive lock needs a descriptor open for writing.
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None  # no run has ever locked it
    try:
        if _try_flock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _read_holder(fd)
    finally:
        os.close(fd)
