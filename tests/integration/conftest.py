"""Fixtures for integration tests: one real Spark session, throwaway lakehouses."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "data" / "ml-latest-small"


def make_settings(root: Path, **overrides: object):  # type: ignore[no-untyped-def]
    """Settings with every piece of local state under `root` (lakehouse, MLflow, SQLite)."""
    from filmrec.config import Settings

    values: dict[str, object] = {
        "FILMREC_VAR_DIR": root / "var",
        "LAKEHOUSE_PATH": root / "lakehouse",
        # Jars are shared between tests: they are big and immutable.
        "SPARK_JARS_DIR": Path(os.environ.get("SPARK_JARS_DIR", REPO / "var" / "jars")),
        "SPARK_DRIVER_MEMORY": "2g",
        "MODEL_POLL_SECONDS": 0.2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One Spark session for the whole run: starting the JVM is the slow part."""
    require(shutil.which("java") is not None, "`java` 17+ (install openjdk-17-jre-headless)")
    try:
        import delta  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as error:
        require(False, f"python package {error.name} (pip install -e '.[spark]')")
    from filmrec.lakehouse.spark_session import build_spark

    session = build_spark(app_name="filmrec-tests", settings=make_settings(REPO / "var" / "test-spark"))
    yield session
    session.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
