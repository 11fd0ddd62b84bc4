"""Where and how a results file was measured: every file under bench/results records it.

A number without its machine, its commit and its command cannot be compared or
reproduced. `write_results` is the one way the bench writes a results file, so none
is written without a `provenance` block:

    {"date", "commit", "cpu_model", "cores", "memory_gib", "java", "python", "command"}

(the docs renderer reads exactly these names). A field that cannot be read here is
null, never guessed.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack import REPO

PROVENANCE_FIELDS = ("date", "commit", "cpu_model", "cores", "memory_gib", "java", "python", "command")


def _commit() -> str | None:
    """HEAD's hash, with `-dirty` when the work tree has changes (the numbers are of those)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if changes else head


def cpu_model(cpuinfo: str | None = None) -> str | None:
    """The first `model name` of /proc/cpuinfo (Linux), else what platform says."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or None


def memory_gib(meminfo: str | None = None) -> float | None:
    """MemTotal of /proc/meminfo in GiB, one decimal."""
    if meminfo is None:
        try:
            meminfo = Path("/proc/meminfo").read_text()
        except OSError:
            return None
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) * 1024 / 2**30, 1)
    return None


def java_version(version_output: str | None = None) -> str | None:
    """The version `java -version` prints (the Java Spark and the broker run), e.g. 17.0.15."""
    if version_output is None:
        from devstack.broker import BrokerError, java_executable

        try:
            version_output = subprocess.run(
                [java_executable(), "-version"], capture_output=True, text=True, timeout=30
            ).stderr
        except (BrokerError, OSError, subprocess.SubprocessError):
            return None
    first = version_output.strip().splitlines()[0] if version_output.strip() else ""
    quoted = first.split('"')
    return quoted[1] if len(quoted) >= 3 else (first or None)


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    """This machine, this commit, now, and the command line that is measuring."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "java": java_version(),
        "python": platform.python_version(),
        "command": shlex.join(command if command is not None else sys.orig_argv),
    }


def write_results(path: Path, report: dict[str, Any], *, command: list[str] | None = None) -> None:
    """`report` as JSON at `path`, with its provenance (a provenance already in it is kept)."""
    stamped = {"provenance": report.get("provenance") or provenance(command)} | report
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamped, indent=2, default=str) + "\n")
