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
        # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI to the process environment,
        # so without this a test would silently use the store of the previous test.
        "MLFLOW_TRACKING_URI": None,
        # Embedded defaults unless a test asks for a real service explicitly.
        "DATABASE_URL": None,
        "REDIS_URL": None,
        "KAFKA_BOOTSTRAP_SERVERS": None,
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


def write_slice(directory: Path, *, users: int) -> Path:
    """The bundled ratings of the first `users` users, as a MovieLens ratings.csv."""
    import pandas as pd

    directory.mkdir(parents=True, exist_ok=True)
    ratings = pd.read_csv(BUNDLED / "ratings.csv")
    path = directory / "ratings.csv"
    ratings[ratings["userId"] <= users].to_csv(path, index=False, float_format="%.1f")
    return path


@pytest.fixture(scope="session")
def trained_root(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A platform state with a small slice loaded, synced and trained (quick grid).

    Shared by the training and API tests: training is the slow step.
    """
    from filmrec.data.movielens import MovieLensFiles
    from filmrec.pipeline import load_movielens, sync_metadata
    from filmrec.training.job import train_and_register
    from filmrec.training.params import QUICK_GRID

    root = tmp_path_factory.mktemp("trained")
    settings = make_settings(root)
    ratings = write_slice(root / "input", users=120)
    files = MovieLensFiles(ratings=ratings, movies=BUNDLED / "movies.csv", links=BUNDLED / "links.csv")
    load_movielens(spark, settings, files)
    sync_metadata(spark, settings)
    result = train_and_register(spark, settings=settings, grid=QUICK_GRID)
    assert result.promotion["promoted"]
    return root
