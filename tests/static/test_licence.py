"""The code's licence file matches pyproject's, and the data's terms travel with the data."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "ml-latest-small"


def test_license_file_is_the_apache_2_text_pyproject_names() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"]
    assert declared == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_movielens_terms_sit_beside_the_data() -> None:
    # GroupLens' README (its "Usage License" section) is distributed with the files,
    # and data/README.md restates the terms and the citation they ask for.
    assert "Usage License" in (DATA / "README.txt").read_text(encoding="utf-8", errors="replace")
    summary = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    assert "ml-latest-small/README.txt" in summary
    assert "commercial" in summary and "10.1145/2827872" in summary
    assert "README.txt" in (DATA / "SHA256SUMS").read_text(encoding="utf-8")
