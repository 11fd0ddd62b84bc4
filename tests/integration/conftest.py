"""Fixtures of the integration tests: one real Spark session, trained platforms, real services.

Services come from `scripts/services.sh up` (or `.ci/run`); a Kafka broker is the
one in KAFKA_BOOTSTRAP_SERVERS when set, else a throwaway KRaft broker the project
starts for the session. A missing prerequisite skips on a laptop and fails under
CI=true (tests.conftest.require). Helpers that tests call are in service_helpers.py.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devstack import broker
from devstack.processes import free_port
from filmrec.config import Settings
from tests.conftest import require
from tests.integration.service_helpers import (
    BUNDLED,
    REPO,
    SLICE_USERS,
    TrainedModel,
    make_settings,
    postgres_tmpdir,
    service_env,
    unavailable,
    with_database,
    write_slice,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


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


@pytest.fixture(scope="session")
def trained_root(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The whole bundled data loaded, synced and trained with the default search.

    Shared by the training, API, real-time and browser tests: training is the slow
    step, and the quality floor (test_training.py) must hold for what `make train`
    does by default, so this is that run.
    """
    from filmrec.data.movielens import MovieLensFiles
    from filmrec.pipeline import load_movielens, sync_metadata
    from filmrec.training.job import train_and_register
    from filmrec.training.params import DEFAULT_SEARCH

    root = tmp_path_factory.mktemp("trained")
    settings = make_settings(root)
    ratings = write_slice(root / "input", users=None)
    files = MovieLensFiles(ratings=ratings, movies=BUNDLED / "movies.csv", links=BUNDLED / "links.csv")
    load_movielens(spark, settings, files)
    sync_metadata(spark, settings)
    result = train_and_register(spark, settings=settings, search=DEFAULT_SEARCH)
    assert result.promotion["promoted"]
    (root / "training_result.json").write_text(json.dumps(result.as_dict(), default=str))
    return root


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The shared PostgreSQL (its app role may create databases)."""
    from sqlalchemy import create_engine, text

    url = service_env("FILMREC_TEST_DATABASE_URL", "a PostgreSQL URL")
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

    url = service_env("FILMREC_TEST_REDIS_URL", "a Redis URL")
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except Exception as error:
        require(False, f"Redis at FILMREC_TEST_REDIS_URL answering ({error})")
    return url


@pytest.fixture(scope="session")
def mlflow_uri() -> str:
    from devstack.services import http_ok

    uri = service_env("FILMREC_TEST_MLFLOW_URI", "an MLflow tracking server URL")
    require(http_ok(f"{uri}/health", timeout=3), f"MLflow server at {uri} answering /health")
    return uri


@pytest.fixture
def fresh_pg_database(pg_url: str) -> Iterator[str]:
    """An empty database of its own on the shared PostgreSQL, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"filmrec_it_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(pg_url, name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def trained_on_server(spark, mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:  # type: ignore[no-untyped-def]
    """Load a slice of MovieLens into Delta, train (quick search) and register on the MLflow server.

    Unique experiment and model names keep reruns against the same server apart.
    """
    from filmrec.data.movielens import MovieLensFiles
    from filmrec.pipeline import load_movielens
    from filmrec.training.job import train_and_register
    from filmrec.training.params import QUICK_SEARCH

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
    result = train_and_register(spark, settings=settings, search=QUICK_SEARCH)
    assert result.promotion["promoted"], result.promotion
    return TrainedModel(root, overrides, settings.model_name, result.model_version, result.run_id)


@pytest.fixture
def throwaway_postgres() -> Iterator[Any]:
    """A PostgreSQL cluster of this test's own, on a free port, removed afterwards."""
    from devstack.processes import free_port
    from devstack.services import PostgresServer, postgres_bin

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
    from devstack.processes import free_port
    from devstack.services import RedisServer

    require(shutil.which("redis-server") is not None, "`redis-server` (apt-get install -y redis-server)")
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """bootstrap.servers of a real broker for the whole test session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        if not broker.serves_metadata(configured, timeout=10):
            unavailable(f"no Kafka broker answers on KAFKA_BOOTSTRAP_SERVERS={configured}")
        yield configured
        return
    # Free ports and a private data dir: a developer's `make kafka-up` broker on 9092
    # and its topics are left alone. The jar cache is shared.
    layout = broker.BrokerLayout(
        root=tmp_path_factory.mktemp("kafka"),
        libs=broker.default_layout().libs,
        port=free_port(),
        controller_port=free_port(),
    )
    try:
        bootstrap = broker.up(layout)
    except broker.BrokerError as error:
        broker.down(layout)
        unavailable(str(error))
    try:
        yield bootstrap
    finally:
        broker.down(layout)


@pytest.fixture
def unreachable_kafka() -> str:
    """bootstrap.servers where nothing listens: for 'broker down' tests."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings with a unique topic and a fresh lakehouse, so tests never share state."""
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KAFKA_RATINGS_TOPIC=f"ratings-test-{uuid.uuid4().hex[:12]}",
        LAKEHOUSE_PATH=tmp_path / "lakehouse",
    )


@pytest.fixture(scope="session")
def streaming_spark() -> SparkSession:
    """The session's Spark (build_spark uses getOrCreate, so it is shared with others)."""
    try:
        broker.java_executable()
    except broker.BrokerError as error:
        unavailable(str(error))
    from filmrec.lakehouse.spark_session import build_spark

    try:
        return build_spark(app_name="filmrec-tests")
    except RuntimeError as error:  # jars not fetchable
        unavailable(f"spark session not available: {error}")
