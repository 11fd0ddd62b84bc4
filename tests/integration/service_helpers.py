"""Fixtures and helpers for tests against the real services (PostgreSQL, Redis, MLflow, Prometheus).

The shared services come from `scripts/services.sh up` (or `.ci/run`), which exports
FILMREC_TEST_DATABASE_URL, FILMREC_TEST_REDIS_URL and FILMREC_TEST_MLFLOW_URI. Tests
that stop a service start their own throwaway instance of it, so the shared ones stay up.
Test modules import the fixtures they use from here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.integration.conftest import BUNDLED, make_settings, write_slice

SLICE_USERS = 150


def _service_env(name: str, what: str) -> str:
    value = os.environ.get(name)
    require(
        bool(value),
        f"{name} ({what}; run `scripts/services.sh up` and source var/services/test-services.env)",
    )
    assert value is not None
    return value


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The shared PostgreSQL (its app role may create databases)."""
    from sqlalchemy import create_engine, text

    url = _service_env("FILMREC_TEST_DATABASE_URL", "a PostgreSQL URL")
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        require(False, f"PostgreSQL at FILMREC_TEST_DATABASE_URL answering ({error})")
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = _service_env("FILMREC_TEST_REDIS_URL", "a Redis URL")
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except Exception as error:
        require(False, f"Redis at FILMREC_TEST_REDIS_URL answering ({error})")
    return url


@pytest.fixture(scope="session")
def mlflow_uri() -> str:
    from filmrec.native_services import http_ok

    uri = _service_env("FILMREC_TEST_MLFLOW_URI", "an MLflow tracking server URL")
    require(http_ok(f"{uri}/health", timeout=3), f"MLflow server at {uri} answering /health")
    return uri


def _with_database(base_url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(base_url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture
def fresh_pg_database(pg_url: str) -> Iterator[str]:
    """An empty database of its own on the shared PostgreSQL, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"filmrec_it_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(pg_url, name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class TrainedModel:
    """A small model trained on Spark and registered on the real MLflow server."""

    root: Path
    overrides: dict[str, Any]  # Settings aliases shared by every test using this model
    model_name: str
    version: str
    run_id: str

    def settings(self, **more: Any):  # type: ignore[no-untyped-def]
        return make_settings(self.root, **(self.overrides | more))


@pytest.fixture(scope="session")
def trained_on_server(spark, mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:  # type: ignore[no-untyped-def]
    """Load a slice of MovieLens into Delta, train (quick grid) and register on the MLflow server.

    Unique experiment and model names keep reruns against the same server apart.
    """
    from filmrec.data.movielens import MovieLensFiles
    from filmrec.pipeline import load_movielens
    from filmrec.training.job import train_and_register
    from filmrec.training.params import QUICK_GRID

    root = tmp_path_factory.mktemp("services")
    suffix = uuid.uuid4().hex[:8]
    overrides: dict[str, Any] = {
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "MODEL_NAME": f"filmrec-it-{suffix}",
        "MLFLOW_EXPERIMENT_NAME": f"filmrec-it-{suffix}",
    }
    settings = make_settings(root, **overrides)
    ratings = write_slice(root / "input", users=SLICE_USERS)
    files = MovieLensFiles(ratings=ratings, movies=BUNDLED / "movies.csv", links=BUNDLED / "links.csv")
    load_movielens(spark, settings, files)
    result = train_and_register(spark, settings=settings, grid=QUICK_GRID)
    assert result.promotion["promoted"], result.promotion
    return TrainedModel(root, overrides, settings.model_name, result.model_version, result.run_id)


def promote_copy(settings: Any, version: str) -> str:
    """Register the artifacts of `version` again as a new version and move the alias to it.

    What a better retrained model does to the registry, without a second Spark run.
    """
    import mlflow

    from filmrec.model.registry import configure_mlflow

    client = configure_mlflow(settings)
    source = client.get_model_version(settings.model_name, version)
    new = mlflow.register_model(source.source, settings.model_name, tags=dict(source.tags))
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, new.version)
    return str(new.version)


def sync_movies_into(spark: Any, settings: Any) -> int:
    from filmrec.pipeline import sync_metadata

    return sync_metadata(spark, settings)


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def metric_value(client: Any, name: str, **labels: str) -> float:
    """One sample of the API's /metrics (0 when absent), read over HTTP like Prometheus."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def postgres_tmpdir() -> Path:
    """A directory the postgres user can use (pytest's tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="filmrec-pg-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def throwaway_postgres() -> Iterator[Any]:
    """A PostgreSQL cluster of this test's own, on a free port, removed afterwards."""
    from filmrec.native_services import PostgresServer, free_port, postgres_bin

    try:
        postgres_bin("initdb")
    except Exception as error:
        require(False, f"PostgreSQL server binaries ({error})")
    root = postgres_tmpdir()
    server = PostgresServer(root / "pg", free_port())
    server.start()
    server.ensure_database("filmrec", "filmrec", "filmrec")
    try:
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[Any]:
    """A redis-server of this test's own on a free port (the test may stop and restart it)."""
    from filmrec.native_services import RedisServer, free_port

    require(shutil.which("redis-server") is not None, "`redis-server` (apt-get install -y redis-server)")
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ServerThread:
    """A real uvicorn server in a thread, for clients outside the process (Prometheus)."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=60, what="uvicorn to start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
