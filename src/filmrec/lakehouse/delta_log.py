"""Read a Delta table's version and recent row changes from its transaction log.

The training gate runs before any Spark session exists: starting a JVM only to learn
that nothing changed would cost a minute on a small box. Every Delta commit writes
`_delta_log/<version>.json` with a `commitInfo` action whose `operationMetrics` say
how many rows it wrote, so the gate needs only those small JSON files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")

# Rows a commit added or changed, by operation. Operations that only reorganise
# files (OPTIMIZE, VACUUM, ...) change no rows and count zero.
_ROW_METRICS: dict[str, tuple[str, ...]] = {
    "WRITE": ("numOutputRows",),
    "CREATE TABLE AS SELECT": ("numOutputRows",),
    "REPLACE TABLE AS SELECT": ("numOutputRows",),
    "CREATE OR REPLACE TABLE AS SELECT": ("numOutputRows",),
    "STREAMING UPDATE": ("numOutputRows",),
    "MERGE": ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted"),
    "UPDATE": ("numUpdatedRows",),
    "DELETE": ("numDeletedRows",),
}


def _log_dir(table_path: str | Path) -> Path:
    return Path(table_path) / "_delta_log"


def commit_versions(table_path: str | Path) -> list[int]:
    """The versions whose commit files are still in the log, ascending."""
    directory = _log_dir(table_path)
    if not directory.is_dir():
        return []
    return sorted(
        int(match.group(1)) for path in directory.iterdir() if (match := _COMMIT_FILE.match(path.name))
    )


def latest_version(table_path: str | Path) -> int | None:
    """The table's current version, or None when there is no Delta table at the path."""
    versions = commit_versions(table_path)
    return versions[-1] if versions else None


def rows_changed(table_path: str | Path, version: int) -> int:
    """Rows inserted, updated or deleted by the commit that created `version`."""
    path = _log_dir(table_path) / f"{version:020d}.json"
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        if "commitInfo" in action:
            info = action["commitInfo"]
            metrics = info.get("operationMetrics") or {}
            names = _ROW_METRICS.get(info.get("operation", ""), ())
            return sum(int(metrics.get(name, 0)) for name in names)
    return 0


def rows_changed_since(table_path: str | Path, version: int) -> int | None:
    """Rows changed by the commits after `version`; None when the log cannot tell.

    None means a commit in the range is gone (log retention) or the table was
    recreated with fewer versions: the caller should assume the data is new.
    """
    latest = latest_version(table_path)
    if latest is None or latest < version:
        return None
    wanted = range(version + 1, latest + 1)
    present = set(commit_versions(table_path))
    if any(v not in present for v in wanted):
        return None
    return sum(rows_changed(table_path, v) for v in wanted)
