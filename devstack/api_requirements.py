"""api/requirements.txt: the API image's pinned dependency set, generated from pyproject.toml.

    python -m devstack.api_requirements          # `make api-requirements`: re-lock
    python -m devstack.api_requirements --check  # exit 1 when the lock is out of date

The lock records a hash of the dependency specifiers it was resolved from, so a
change to pyproject.toml's base or `api` dependencies makes it stale without any
network access; tests/static/test_api_requirements.py checks both the hash and that
every pin satisfies pyproject.toml.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from devstack import REPO

PYPROJECT = REPO / "pyproject.toml"
LOCK = REPO / "api" / "requirements.txt"
HASH_PREFIX = "# pyproject-api-dependencies-sha256: "


def api_dependencies(pyproject: Path = PYPROJECT) -> list[str]:
    """What the API image installs: the base dependencies and the `api` extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["api"]]


def dependencies_hash(pyproject: Path = PYPROJECT) -> str:
    return hashlib.sha256(json.dumps(api_dependencies(pyproject)).encode()).hexdigest()


def recorded_hash(lock: Path = LOCK) -> str | None:
    for line in lock.read_text().splitlines():
        if line.startswith(HASH_PREFIX):
            return line.removeprefix(HASH_PREFIX).strip()
    return None


def compile_lock(lock: Path = LOCK) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "requirements.txt"
        subprocess.run(
            [sys.executable, "-m", "piptools", "compile", "--quiet", "--extra", "api", "--strip-extras",
             "--no-emit-index-url", "--no-emit-find-links", "--no-header", "--output-file", str(output),
             PYPROJECT.name],
            check=True,
            cwd=REPO,
        )  # fmt: skip
        header = [
            "# The API image's pinned dependencies (api/Dockerfile installs them, then the filmrec",
            "# wheel with --no-deps). Generated from pyproject.toml by `make api-requirements`",
            "# (pip-compile, Python 3.11); do not edit by hand.",
            f"{HASH_PREFIX}{dependencies_hash()}",
            "",
        ]
        lock.write_text("\n".join(header) + "\n" + output.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check that the lock is up to date")
    args = parser.parse_args(argv)
    if args.check:
        if recorded_hash() != dependencies_hash():
            print(f"{LOCK} is out of date: run `make api-requirements`", file=sys.stderr)
            return 1
        return 0
    compile_lock()
    print(f"wrote {LOCK}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
