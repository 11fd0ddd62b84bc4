"""Kafka -> Delta ingestion against a real broker and real Spark: exact counts, exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from filmrec.config import Settings
from filmrec.contract import RatingEvent
from filmrec.lakehouse.tables import LakehouseTables, read_table, table_version
from filmrec.streaming.events import InvalidEventError, deserialize_event, encode_event
from filmrec.streaming.ingest import checkpoint_dir, run_ingestion
from filmrec.streaming.producer import make_producer
from filmrec.streaming.topics import ensure_topic

pytestmark = pytest.mark.integration

MESSAGES = 10_000
MALFORMED = 100  # 1%
DUPLICATES = 100  # 1%: exact re-sends of earlier events


@dataclass(frozen=True)
class Dataset:
    messages: list[tuple[bytes | None, bytes | None]]
    events: dict[str, RatingEvent]  # the unique valid events by event_id

    def expected_clean(self) -> dict[tuple[int, int], tuple[float, str]]:
        """(user, movie) -> (rating, event_id): latest rated_at wins, ties by event_id."""
        latest: dict[tuple[int, int], RatingEvent] = {}
        for event in self.events.values():
            pair = (event.user_id, event.movie_id)
            current = latest.get(pair)
            if current is None or (event.rated_at, str(event.event_id)) > (
                current.rated_at,
                str(current.event_id),
            ):
                latest[pair] = event
        return {pair: (e.rating, str(e.event_id)) for pair, e in latest.items()}


def _malformed(valid: RatingEvent, index: int) -> bytes | None:
    """Ten kinds of broken message, from unparsable bytes to one bad field."""
    kind = index % 10
    raw = {0: b"{not json", 1: None, 2: b"[1, 2, 3]"}  # None: a tombstone, no value at all
    if kind in raw:
        return raw[kind]
    document = json.loads(valid.model_dump_json())
    if kind == 3:
        del document["event_id"]
    else:
        field, value = {
            4: ("rating", 7.0),
            5: ("rating", 3.3),
            6: ("user_id", "abc"),
            7: ("rated_at", "not a time"),
            8: ("unexpected", True),
            9: ("event_id", "123"),
        }[kind]
        document[field] = value
    return json.dumps(document).encode()


def make_dataset(seed: int = 3) -> Dataset:
    rng = random.Random(seed)
    unique = MESSAGES - MALFORMED - DUPLICATES
    events: dict[str, RatingEvent] = {}
    while len(events) < unique:
        event = RatingEvent(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            # A small id space, so that many users re-rate a movie: "latest wins" matters.
            user_id=rng.randint(1, 150),
            movie_id=rng.randint(1, 250),
            rating=rng.randint(1, 10) / 2,
            rated_at=datetime.fromtimestamp(rng.randint(1_500_000_000, 1_500_100_000), UTC),
            source="test",
        )
        events[str(event.event_id)] = event
    valid = [encode_event(event) for event in events.values()]
    duplicates = rng.sample(valid, DUPLICATES)
    template = next(iter(events.values()))
    malformed: list[tuple[bytes | None, bytes | None]] = [
        (b"1", _malformed(template, index)) for index in range(MALFORMED)
    ]
    messages: list[tuple[bytes | None, bytes | None]] = [*valid, *duplicates, *malformed]
    rng.shuffle(messages)
    return Dataset(messages=messages, events=events)


def publish(settings: Settings, messages: list[tuple[bytes | None, bytes | None]]) -> None:
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


def table_counts(spark, tables: LakehouseTables) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {
        "raw": read_table(spark, tables.raw_ratings).count(),
        "raw_ids": read_table(spark, tables.raw_ratings).select("event_id").distinct().count(),
        "clean": read_table(spark, tables.clean_ratings).count(),
        "quarantine": read_table(spark, tables.quarantine).count(),
    }


def clean_rows(spark, tables: LakehouseTables) -> dict[tuple[int, int], tuple[float, str]]:  # type: ignore[no-untyped-def]
    rows = read_table(spark, tables.clean_ratings).collect()
    return {(r.user_id, r.movie_id): (r.rating, r.event_id) for r in rows}


def assert_expected_tables(spark, settings: Settings, dataset: Dataset) -> None:  # type: ignore[no-untyped-def]
    tables = LakehouseTables(settings.lakehouse_path)
    expected_clean = dataset.expected_clean()
    assert table_counts(spark, tables) == {
        "raw": len(dataset.events),
        "raw_ids": len(dataset.events),
        "clean": len(expected_clean),
        "quarantine": MALFORMED,
    }
    assert clean_rows(spark, tables) == expected_clean
    quarantine = read_table(spark, tables.quarantine)
    assert (
        quarantine.where("topic IS NULL OR partition IS NULL OR offset IS NULL OR reason IS NULL").count()
        == 0
    )
    assert quarantine.select("topic", "partition", "offset").distinct().count() == MALFORMED


def test_dataset_agrees_with_the_python_contract() -> None:
    """The generator's 1% malformed are exactly what `deserialize_event` rejects."""
    dataset = make_dataset()
    rejected = 0
    for _key, value in dataset.messages:
        try:
            deserialize_event(value if value is not None else b"")
        except InvalidEventError:
            rejected += 1
    assert len(dataset.messages) == MESSAGES
    assert rejected == MALFORMED


def test_ingestion_counts_and_republishing_changes_nothing(streaming_spark, kafka_settings) -> None:  # type: ignore[no-untyped-def]
    spark, settings = streaming_spark, kafka_settings
    tables = LakehouseTables(settings.lakehouse_path)
    dataset = make_dataset()
    publish(settings, dataset.messages)

    report = run_ingestion(spark, settings)
    assert (report.read, report.written, report.quarantined) == (MESSAGES, len(dataset.events), MALFORMED)
    assert report.duplicates == DUPLICATES
    assert report.lag == 0
    assert_expected_tables(spark, settings, dataset)
    status = json.loads((tables.status / "ingestion.json").read_text())
    assert status["status"] == "ok"
    assert status["read"] == MESSAGES and status["lag"] == 0 and status["last_success_at"]

    # The same event ids again - verbatim, and one with a different rating - change nothing.
    clean_version = table_version(spark, tables.clean_ratings)
    clean_before = clean_rows(spark, tables)
    again = list(dataset.events.values())[:50]
    altered = again[0].model_copy(update={"rating": 5.0 if again[0].rating != 5.0 else 0.5})
    publish(settings, [encode_event(event) for event in [*again, altered]])
    report = run_ingestion(spark, settings)
    assert (report.read, report.written, report.duplicates, report.quarantined) == (51, 0, 51, 0)
    assert table_version(spark, tables.clean_ratings) == clean_version
    assert clean_rows(spark, tables) == clean_before
    assert_expected_tables(spark, settings, dataset)

    # Nothing new: a run reads nothing and reports no lag.
    report = run_ingestion(spark, settings)
    assert (report.read, report.batches, report.lag) == (0, 0, 0)


# Two Spark drivers (the killed job and the re-run) on a 2-core machine: allow for load.
@pytest.mark.timeout(1800)
def test_killed_ingestion_reruns_to_the_same_result(streaming_spark, kafka_settings) -> None:  # type: ignore[no-untyped-def]
    spark, settings = streaming_spark, kafka_settings
    tables = LakehouseTables(settings.lakehouse_path)
    dataset = make_dataset(seed=11)
    publish(settings, dataset.messages)

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": str(settings.kafka_bootstrap_servers),
        "KAFKA_RATINGS_TOPIC": settings.kafka_topic,
        "LAKEHOUSE_PATH": str(settings.lakehouse_path),
        "SPARK_DRIVER_MEMORY": "1g",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    job = subprocess.Popen(
        [sys.executable, "-m", "filmrec.streaming.ingest", "--max-offsets-per-trigger", "2000"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the JVM with it
    )
    markers = checkpoint_dir(tables) / "_filmrec_batches"
    # Raw is at version 0 when created, 1 after batch 0, 2 after batch 1's raw MERGE.
    raw_written = Path(tables.raw_ratings) / "_delta_log" / f"{2:020d}.json"
    clean_merged = Path(tables.clean_ratings) / "_delta_log" / f"{2:020d}.json"
    deadline = time.monotonic() + 600
    try:
        # Kill in the worst place: batch 1 is in raw but not yet merged into clean, and
        # Spark has not committed it. Only the re-run can bring those rows to clean.
        while not raw_written.exists():
            assert job.poll() is None, "ingestion finished before it could be killed"
            assert time.monotonic() < deadline, "ingestion never reached its second batch"
            time.sleep(0.02)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert job.returncode == -signal.SIGKILL
    assert (markers / "1.started").exists() and not (markers / "1.done").exists()
    assert not clean_merged.exists(), "the kill came too late to hit the raw/clean window"

    report = run_ingestion(spark, settings)
    assert report.lag == 0
    assert_expected_tables(spark, settings, dataset)


def test_a_rating_posted_to_the_api_reaches_delta(streaming_spark, kafka_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """POST /ratings -> the real broker -> ingestion -> raw and clean Delta rows."""
    from fastapi.testclient import TestClient

    from filmrec.serving.app import create_app

    # No model is needed to accept ratings; MLflow and SQLite state stay in tmp_path.
    settings = kafka_settings.model_copy(update={"var_dir": tmp_path / "var"})
    ensure_topic(settings)  # kafka-init's job on the platform
    with TestClient(create_app(settings)) as api:
        response = api.post("/ratings", json={"user_id": 7, "movie_id": 31, "rating": 4.5})
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]

    report = run_ingestion(streaming_spark, settings)
    assert (report.read, report.written, report.quarantined) == (1, 1, 0)
    tables = LakehouseTables(settings.lakehouse_path)
    raw = read_table(streaming_spark, tables.raw_ratings).collect()
    rows = [(r.event_id, r.user_id, r.movie_id, r.rating, r.source) for r in raw]
    assert rows == [(event_id, 7, 31, 4.5, "api")]
    assert clean_rows(streaming_spark, tables) == {(7, 31): (4.5, event_id)}
