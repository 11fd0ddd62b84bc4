"""The product wheel holds the product: no development stack, no benchmark, all package data."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The development tooling lives outside src/, and its old homes inside the package are gone.
NOT_PRODUCT = (
    "devstack/",
    "bench/",
    "tests/",
    "filmrec/native_",
    "filmrec/benchmarks/",
    "filmrec/streaming/",
    "filmrec/orchestration/local_airflow",
    "filmrec/processes",
)


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    # setuptools reuses build/ between builds: a stale copy of a moved module would ship.
    shutil.rmtree(REPO / "build", ignore_errors=True)
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "--wheel-dir", str(out), str(REPO)], check=True, capture_output=True)
    (wheel,) = out.glob("filmrec-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_has_no_development_or_benchmark_module(wheel_names: list[str]) -> None:
    offending = [name for name in wheel_names if name.startswith(NOT_PRODUCT)]
    assert not offending, offending
    packages = {name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"filmrec"}


def test_the_wheel_has_every_stage_and_its_package_data(wheel_names: list[str]) -> None:
    for room in ("ingestion", "lakehouse", "training", "model", "serving", "metadata", "orchestration"):
        assert f"filmrec/{room}/__init__.py" in wheel_names, room
    assert "filmrec/py.typed" in wheel_names
    assert "filmrec/metadata/migrations/script.py.mako" in wheel_names
    assert any(name.startswith("filmrec/metadata/migrations/versions/0001") for name in wheel_names)
    # The web page at GET / is read from the installed package.
    for asset in ("index.html", "app.js", "style.css", "icon.svg"):
        assert f"filmrec/serving/web/{asset}" in wheel_names, asset
