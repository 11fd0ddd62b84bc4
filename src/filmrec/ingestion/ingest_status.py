"""The ingestion status file (lakehouse/_status/ingestion.json): what the Kafka -> Delta job does.

The job has no endpoint of its own. It rewrites this file, atomically, when its
query starts, after every micro-batch, on a heartbeat while it runs, and when it
ends. The API re-exposes the file to Prometheus (serving.metrics), and the
Compose healthcheck of the continuous job reads it:

    python -m filmrec.ingestion.ingest_status [--mode continuous]   # exit 0: running

Counts are per run (`read`, `written`, ...) plus running totals across runs
(`totals`, `batches_total`), so monitoring can expose the totals as counters.
Only the holder of the checkpoint lock writes the file, so runs never interleave.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

OUTCOMES = ("read", "written", "duplicates", "quarantined")
CARRIED_OVER = ("last_success_at", "last_batch_at", "last_batch_seconds", "last_batch_id")
# The job refreshes `heartbeat_at` this often while it runs; a reader calls it dead
# after three missed heartbeats and some slack for a loaded machine.
HEARTBEAT_SECONDS = 10.0
STALE_AFTER_HEARTBEATS = 3
STALE_SLACK_SECONDS = 30.0


class IngestionMode(StrEnum):
    CONTINUOUS = "continuous"  # a long-lived query, one micro-batch per trigger interval
    AVAILABLE_NOW = "available_now"  # reads what is pending and stops (the scheduled runs)


class RunState(StrEnum):
    RUNNING = "running"
    OK = "ok"  # an availableNow run read everything and finished
    STOPPED = "stopped"  # stopped on request (SIGTERM/SIGINT) between batches
    FAILED = "failed"


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_timestamp(value: object) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def read_status(path: Path) -> dict[str, Any]:
    """The status document, or {} when there is none (or it is unreadable)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def write_status(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    partial.replace(path)  # atomic: a monitor never reads half a file


def stale_after_seconds(status: Mapping[str, Any]) -> float:
    heartbeat = float(status.get("heartbeat_seconds") or HEARTBEAT_SECONDS)
    return STALE_AFTER_HEARTBEATS * heartbeat + STALE_SLACK_SECONDS


def running_mode(status: Mapping[str, Any], now: datetime | None = None) -> IngestionMode | None:
    """The mode of the run the file describes if it is running now, else None.

    "Running" needs a recent heartbeat as well: a run that was killed never wrote
    that it stopped, and must not look alive forever.
    """
    if status.get("status") != RunState.RUNNING:
        return None
    heartbeat = parse_timestamp(status.get("heartbeat_at"))
    if heartbeat is None:
        return None
    age = ((now or utc_now()) - heartbeat).total_seconds()
    if age > stale_after_seconds(status):
        return None
    try:
        return IngestionMode(status.get("mode", IngestionMode.AVAILABLE_NOW))
    except ValueError:
        return None


class RunStatus:
    """The status file as one run keeps it: totals carried over from the runs before.

    `publish` merges what changed into the run's document and rewrites the file.
    Totals are recomputed from the carried totals and the run's counts each time,
    so publishing after every batch (and again at the end) never counts twice.
    Thread-safe: batches are reported from Spark's callback thread, heartbeats
    from the driver's main thread.
    """

    def __init__(self, path: Path, **identity: Any) -> None:
        self.path = path
        previous = read_status(path)
        totals = previous.get("totals") or {}
        self._carried_totals = {key: int(value) for key, value in totals.items()}
        self._carried_batches = int(previous.get("batches_total") or 0)
        # When ingestion last succeeded or wrote a batch stays true across runs: a run
        # that finds nothing new must not make it look as if nothing ever happened.
        carried = {key: previous.get(key) for key in CARRIED_OVER}
        self._document: dict[str, Any] = {**carried, **identity, "heartbeat_seconds": HEARTBEAT_SECONDS}
        self._lock = threading.Lock()

    def publish(
        self,
        *,
        state: RunState | None = None,
        counts: Mapping[str, Any] | None = None,
        success: bool = False,
        **fields: Any,
    ) -> dict[str, Any]:
        """Merge `counts` and `fields`, stamp the heartbeat (and success), write the file."""
        with self._lock:
            document = self._document
            now = utc_now().isoformat()
            if state is not None:
                document["status"] = str(state)
            document.update(counts or {})
            document.update(fields)
            document["heartbeat_at"] = now
            if success:
                document["last_success_at"] = now
            totals = dict(self._carried_totals)
            for outcome in OUTCOMES:
                totals[outcome] = totals.get(outcome, 0) + int(document.get(outcome) or 0)
            document["totals"] = totals
            document["batches_total"] = self._carried_batches + int(document.get("batches") or 0)
            write_status(self.path, document)
            return dict(document)


def check_running(path: Path, mode: IngestionMode | None = None) -> tuple[bool, str]:
    """(healthy, why) for a healthcheck: a run (in `mode`) is running with a fresh heartbeat."""
    status = read_status(path)
    if not status:
        return False, f"no ingestion status at {path}"
    running = running_mode(status)
    summary = (
        f"status {status.get('status')}, mode {status.get('mode')}, heartbeat {status.get('heartbeat_at')}, "
        f"last batch {status.get('last_batch_at')}, lag {status.get('lag')}"
    )
    if running is None:
        return False, f"not running: {summary}"
    if mode is not None and running != mode:
        return False, f"running in mode {running}, not {mode}: {summary}"
    return True, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Exit 0 when the Kafka -> Delta ingestion job is running (its status file "
        "has a fresh heartbeat), 1 otherwise: a healthcheck."
    )
    parser.add_argument("--mode", choices=[mode.value for mode in IngestionMode], default=None)
    parser.add_argument("--status-file", type=Path, default=None, help="default: LAKEHOUSE_PATH's")
    args = parser.parse_args(argv)
    path = args.status_file
    if path is None:
        from filmrec.config import get_settings
        from filmrec.lakehouse.tables import LakehouseTables

        path = LakehouseTables(get_settings().lakehouse_path).ingestion_status
    healthy, why = check_running(path, IngestionMode(args.mode) if args.mode else None)
    print(why, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
