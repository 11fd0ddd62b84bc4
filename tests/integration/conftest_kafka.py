"""Fixtures for tests against a real Kafka broker (registered with `pytest_plugins`).

The broker is the one in KAFKA_BOOTSTRAP_SERVERS when set (CI service, Compose);
otherwise the project's own script starts a throwaway KRaft broker on free ports for
the test session. A missing prerequisite skips on a laptop but fails under CI=true:
CI must never go green by skipping the tests it exists to run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from filmrec.config import Settings
from filmrec.streaming import broker
from filmrec.streaming.producer import make_producer
from filmrec.streaming.topics import ensure_topic
from tests.conftest import require

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine; fail in CI, where every service must be there."""
    require(False, reason)
    raise AssertionError("unreachable: require() skips or fails")


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
        port=broker.free_port(),
        controller_port=broker.free_port(),
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
    return f"127.0.0.1:{broker.free_port()}"


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


def publish(settings: Settings, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    """Send (key, value) messages to the settings' topic (created if missing); all must be acked."""
    ensure_topic(settings)
    producer = make_producer(settings, delivery_timeout_s=30.0)
    failures: list[object] = []
    for key, value in messages:
        producer.produce(
            settings.kafka_topic,
            key=key,
            value=value,
            on_delivery=lambda error, _msg: failures.append(error) if error else None,
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert failures == []
