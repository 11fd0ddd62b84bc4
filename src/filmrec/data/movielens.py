"""The bundled MovieLens ml-latest-small data set and its integrity check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

BUNDLED_DIR_NAME = "ml-latest-small"


@dataclass(frozen=True)
class MovieLensFiles:
    ratings: Path
    movies: Path | None = None
    links: Path | None = None

    @classmethod
    def in_directory(cls, directory: Path) -> MovieLensFiles:
        links = directory / "links.csv"
        return cls(
            ratings=directory / "ratings.csv",
            movies=directory / "movies.csv",
            links=links if links.exists() else None,
        )


def find_bundled_dir(start: Path | None = None) -> Path:
    """The repository's data/ml-latest-small, searched from `start` (or cwd) upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "data" / BUNDLED_DIR_NAME
        if (candidate / "ratings.csv").exists():
            return candidate
    raise FileNotFoundError(f"data/{BUNDLED_DIR_NAME} not found from {here}; run from the repository")


def verify_checksums(directory: Path) -> list[str]:
    """Check the files listed in SHA256SUMS; return the names that do not match."""
    sums = directory / "SHA256SUMS"
    mismatched = []
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        expected, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        if digest != expected:
            mismatched.append(name)
    return mismatched
