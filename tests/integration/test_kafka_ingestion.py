"""Kafka -> Delta ingestion against a real broker and real Spark: exact counts, exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from filmrec.config import Settings
from filmrec.ingestion.checkpoint_lock import CheckpointBusyError
from filmrec.ingestion.contract import RatingEvent, event_id_for
from filmrec.ingestion.events import InvalidEventError, deserialize_event, encode_event
from filmrec.ingestion.ingest_status import read_status
from filmrec.ingestion.kafka_ingest import EXIT_CHECKPOINT_BUSY, checkpoint_dir, run_ingestion
from filmrec.ingestion.replay import replay
from filmrec.ingestion.topics import ensure_topic
from filmrec.lakehouse.tables import LakehouseTables, read_table, table_version
from tests.integration.service_helpers import DEMO_KEY, publish

REPO = Path(__file__).resolve().parents[2]

MESSAGES = 10_000
MALFORMED = 100  # 1%
DUPLICATES = 100  # 1%: exact re-sends of earlier events


@dataclass(frozen=True)
class Dataset:
    messages: list[tuple[bytes | None, bytes | None]]
    events: dict[str, RatingEvent]  # the unique valid events by event_id
    malformed: int  # how many of the messages are not valid rating events

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


def make_dataset(
    seed: int = 3, *, messages: int = MESSAGES, malformed: int = MALFORMED, duplicates: int = DUPLICATES
) -> Dataset:
    rng = random.Random(seed)
    unique = messages - malformed - duplicates
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
    resent = rng.sample(valid, duplicates)
    template = next(iter(events.values()))
    broken: list[tuple[bytes | None, bytes | None]] = [
        (b"1", _malformed(template, index)) for index in range(malformed)
    ]
    shuffled: list[tuple[bytes | None, bytes | None]] = [*valid, *resent, *broken]
    rng.shuffle(shuffled)
    return Dataset(messages=shuffled, events=events, malformed=malformed)


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
        "quarantine": dataset.malformed,
    }
    assert clean_rows(spark, tables) == expected_clean
    quarantine = read_table(spark, tables.quarantine)
    assert (
        quarantine.where("topic IS NULL OR partition IS NULL OR offset IS NULL OR reason IS NULL").count()
        == 0
    )
    assert quarantine.select("topic", "partition", "offset").distinct().count() == dataset.malformed


def job_env(settings: Settings) -> dict[str, str]:
    """The environment of an ingestion job run as a process of its own against `settings`."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": str(settings.kafka_bootstrap_servers),
        "KAFKA_RATINGS_TOPIC": settings.kafka_topic,
        "LAKEHOUSE_PATH": str(settings.lakehouse_path),
        "FILMREC_VAR_DIR": str(settings.lakehouse_path.parent / "var"),
        # The jars are big and immutable: the repository's cache.
        "FILMREC_JARS_DIR": os.environ.get("FILMREC_JARS_DIR", str(REPO / "var" / "jars")),
        "SPARK_DRIVER_MEMORY": "1g",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def start_job(settings: Settings, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """`python -m filmrec.ingestion.kafka_ingest ARGS` in its own process group (JVM included)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "filmrec.ingestion.kafka_ingest", *args],
            env=job_env(settings),
            cwd=settings.lakehouse_path.parent,  # no repository .env reaches the job
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill takes the JVM with it
        )


def start_submitted_job(settings: Settings, *args: str, log: Path, result: Path) -> subprocess.Popen[bytes]:
    """spark-submit of spark/jobs/ingest_ratings.py ARGS, shaped as the Compose ratings-stream runs it.

    The process is spark-submit's JVM (the driver's Python is its child), which is
    what `docker stop` signals in the container.
    """
    env = job_env(settings)
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[2]",
        "--jars",
        f"{env['FILMREC_JARS_DIR']}/*.jar",  # a glob, as in docker-compose.yml
        "--conf",
        "spark.eventLog.enabled=false",
        str(REPO / "spark" / "jobs" / "ingest_ratings.py"),
        *args,
        "--result-path",
        str(result),
    ]
    env |= {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=settings.lakehouse_path.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def processed_messages(status: dict[str, Any]) -> int:
    """Messages the run has written, by the offsets of its last batch (topics start at 0)."""
    return sum(int(offset) for offset in (status.get("processed_offsets") or {}).values())


def wait_for_status(
    settings: Settings,
    job: subprocess.Popen[bytes],
    log: Path,
    condition: Callable[[dict[str, Any]], bool],
    what: str,
    *,
    started_after: datetime,
    timeout: float = 300,
) -> dict[str, Any]:
    """The status file of a run started after `started_after` once `condition` holds.

    Fails as soon as the job exits, or when time runs out.
    """
    path = LakehouseTables(settings.lakehouse_path).ingestion_status
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = read_status(path)
        started = status.get("started_at")
        if started and datetime.fromisoformat(started) > started_after and condition(status):
            return status
        assert job.poll() is None, f"the job exited ({job.returncode}) before {what}:\n{tail(log)}"
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout:.0f}s; status {status}\n{tail(log)}")


def kill_between_raw_and_clean(
    job: subprocess.Popen[bytes], tables: LakehouseTables, log: Path, *, batch: int, timeout: float = 600
) -> None:
    """SIGKILL the job, JVM included, in the worst place for exactly once.

    That is when `batch` is in raw but not yet merged into clean, and Spark has not
    committed it: only a re-run can bring those rows to clean. Every batch up to
    `batch` must add raw rows: raw is at version 0 when created, gains one version
    per batch (its MERGE), and clean gains its own right after.
    """
    markers = checkpoint_dir(tables) / "_filmrec_batches"
    raw_written = Path(tables.raw_ratings) / "_delta_log" / f"{batch + 1:020d}.json"
    clean_merged = Path(tables.clean_ratings) / "_delta_log" / f"{batch + 1:020d}.json"
    deadline = time.monotonic() + timeout
    try:
        while not raw_written.exists():
            assert job.poll() is None, f"ingestion exited before batch {batch} could be hit:\n{tail(log)}"
            assert time.monotonic() < deadline, f"ingestion never reached batch {batch}:\n{tail(log)}"
            time.sleep(0.02)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert job.returncode == -signal.SIGKILL
    assert (markers / f"{batch}.started").exists() and not (markers / f"{batch}.done").exists()
    assert not clean_merged.exists(), "the kill came too late to hit the raw/clean window"


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
def test_killed_ingestion_reruns_to_the_same_result(streaming_spark, kafka_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spark, settings = streaming_spark, kafka_settings
    tables = LakehouseTables(settings.lakehouse_path)
    dataset = make_dataset(seed=11)
    publish(settings, dataset.messages)

    log = tmp_path / "ingest.log"
    job = start_job(settings, "--max-offsets-per-trigger", "2000", log=log)
    kill_between_raw_and_clean(job, tables, log, batch=1)

    report = run_ingestion(spark, settings)
    assert report.lag == 0
    assert_expected_tables(spark, settings, dataset)


# Three Spark drivers (this session, the killed job and its restart) on 2 cores.
@pytest.mark.timeout(1800)
def test_continuous_ingestion_killed_mid_stream_and_restarted_is_exactly_once(  # type: ignore[no-untyped-def]
    streaming_spark, kafka_settings, tmp_path: Path
) -> None:
    spark, settings = streaming_spark, kafka_settings
    tables = LakehouseTables(settings.lakehouse_path)
    dataset = make_dataset(seed=23, messages=900, malformed=9, duplicates=9)
    before, during, after = dataset.messages[:300], dataset.messages[300:600], dataset.messages[600:]
    publish(settings, before)

    first_log = tmp_path / "continuous-1.log"
    launched = datetime.now(UTC)
    job = start_job(settings, "--continuous", "--trigger-seconds", "2", log=first_log)
    try:
        wait_for_status(
            settings,
            job,
            first_log,
            lambda s: processed_messages(s) == len(before),
            "batch 0 written",
            started_after=launched,
        )
        _assert_the_checkpoint_is_held_by(job, spark, settings)
        publish(settings, during)  # arrives while the query runs: the next trigger's batch
    except BaseException:
        os.killpg(job.pid, signal.SIGKILL)
        raise
    kill_between_raw_and_clean(job, tables, first_log, batch=1)
    publish(settings, after)  # more while the job is down

    # Restarted the way the Compose service restarts: spark-submit of the job script.
    second_log, result = tmp_path / "continuous-2.log", tmp_path / "last-run.json"
    launched = datetime.now(UTC)
    restarted = start_submitted_job(
        settings, "--continuous", "--trigger-seconds", "2", log=second_log, result=result
    )
    try:
        caught_up = wait_for_status(
            settings,
            restarted,
            second_log,
            lambda s: processed_messages(s) == len(dataset.messages) and s.get("lag") == 0,
            "the restarted job to catch up",
            started_after=launched,
        )
        assert caught_up["status"] == "running" and caught_up["mode"] == "continuous"
        # `docker stop`: SIGTERM to spark-submit's JVM alone; it reaches the driver all the same.
        os.kill(restarted.pid, signal.SIGTERM)
        assert restarted.wait(timeout=180) == 0, tail(second_log)
    finally:
        if restarted.poll() is None:
            os.killpg(restarted.pid, signal.SIGKILL)
    assert read_status(tables.ingestion_status)["status"] == "stopped"
    assert json.loads(result.read_text())["lag"] == 0
    assert_expected_tables(spark, settings, dataset)
    # Every message read once over both runs: the killed batch was never reported, and
    # its re-run was; the restart re-ran nothing else.
    assert read_status(tables.ingestion_status)["totals"]["read"] == len(dataset.messages)


def _assert_the_checkpoint_is_held_by(job: subprocess.Popen[bytes], spark: Any, settings: Any) -> None:
    """While a continuous job runs, a second run in either mode fails at once naming the holder."""
    tables = LakehouseTables(settings.lakehouse_path)
    # No Java to start (Spark's launcher runs $JAVA_HOME/bin/java when JAVA_HOME is set):
    # a run that started Spark before taking the lock would fail on the missing JVM
    # instead, so the lock's exit code says it stopped before Spark.
    no_java = settings.lakehouse_path.parent / "no-java"
    second = subprocess.run(
        [sys.executable, "-m", "filmrec.ingestion.kafka_ingest"],
        env=job_env(settings) | {"JAVA_HOME": str(no_java)},
        cwd=settings.lakehouse_path.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == EXIT_CHECKPOINT_BUSY, second.stderr
    assert "Java gateway" not in second.stderr, second.stderr
    holder = f"pid {job.pid} on {socket.gethostname()}, mode continuous, started "
    assert holder in second.stderr and "one ingestion mode per deployment at a time" in second.stderr
    with pytest.raises(CheckpointBusyError, match=f"pid {job.pid} .*mode continuous"):
        run_ingestion(spark, settings, continuous=True)
    assert read_status(tables.ingestion_status)["pid"] == job.pid, "only the holder writes the status"


def test_replaying_a_file_twice_adds_nothing_the_second_time(  # type: ignore[no-untyped-def]
    streaming_spark, kafka_settings, tmp_path: Path
) -> None:
    """`make replay` of one ratings.csv twice into the broker: the second ingestion adds nothing.

    Replayed events carry content-based ids (the same the CSV loader gives), so the
    second replay's events are all duplicates of the first's, on new offsets.
    """
    spark, settings = streaming_spark, kafka_settings
    tables = LakehouseTables(settings.lakehouse_path)
    rows = (REPO / "data" / "ml-latest-small" / "ratings.csv").read_text().splitlines()[:151]
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("\n".join([*rows, "1,31,7.0,1260759144", "1,31"]) + "\n")  # + two invalid rows
    expected_ids = {
        str(event_id_for(user_id=int(u), movie_id=int(m), rating=float(r), rated_at_epoch=int(t)))
        for u, m, r, t in (row.split(",") for row in rows[1:])
    }

    first = replay(ratings, settings=settings, progress=False)
    assert (first.sent, first.failed, first.invalid) == (150, 0, 2)
    report = run_ingestion(spark, settings)
    assert (report.read, report.written, report.duplicates, report.quarantined) == (150, 150, 0, 0)
    raw = read_table(spark, tables.raw_ratings)
    assert {row.event_id for row in raw.collect()} == expected_ids
    assert {row.source for row in raw.select("source").distinct().collect()} == {"replay"}
    versions = (table_version(spark, tables.raw_ratings), table_version(spark, tables.clean_ratings))
    clean_before = clean_rows(spark, tables)

    second = replay(ratings, settings=settings, progress=False)
    assert (second.sent, second.failed, second.invalid) == (150, 0, 2)
    report = run_ingestion(spark, settings)
    assert (report.read, report.written, report.duplicates, report.quarantined) == (150, 0, 150, 0)
    assert report.lag == 0
    assert (table_version(spark, tables.raw_ratings), table_version(spark, tables.clean_ratings)) == versions
    assert clean_rows(spark, tables) == clean_before


def test_a_rating_posted_to_the_api_reaches_delta(streaming_spark, kafka_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """POST /ratings -> the real broker -> ingestion -> raw and clean Delta rows."""
    from fastapi.testclient import TestClient

    from filmrec.serving.app import create_app

    # No model is needed to accept ratings; MLflow and SQLite state stay in tmp_path.
    settings = kafka_settings.model_copy(update={"var_dir": tmp_path / "var"})
    ensure_topic(settings)  # kafka-init's job on the platform
    with TestClient(create_app(settings)) as api:
        response = api.post("/ratings", headers=DEMO_KEY, json={"user_id": 7, "movie_id": 31, "rating": 4.5})
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]

    report = run_ingestion(streaming_spark, settings)
    assert (report.read, report.written, report.quarantined) == (1, 1, 0)
    tables = LakehouseTables(settings.lakehouse_path)
    raw = read_table(streaming_spark, tables.raw_ratings).collect()
    rows = [(r.event_id, r.user_id, r.movie_id, r.rating, r.source, r.written_by) for r in raw]
    assert rows == [(event_id, 7, 31, 4.5, "api", "demo")]  # the key's name, never the key
    assert clean_rows(streaming_spark, tables) == {(7, 31): (4.5, event_id)}


def test_the_ingestion_job_applies_the_contracts_rated_at_rule(spark) -> None:  # type: ignore[no-untyped-def]
    """parse_messages on Kafka-shaped rows (no broker needed): the reasons RatedAtRule gives."""
    from filmrec.ingestion.contract import QuarantineReason, RatedAtRule
    from filmrec.ingestion.kafka_ingest import parse_messages

    def message(offset: int, **changes: object) -> tuple[bytes, str, int, int]:
        document = json.loads(
            RatingEvent(
                user_id=1,
                movie_id=offset + 1,
                rating=4.0,
                rated_at=datetime(2024, 5, 1, tzinfo=UTC),
                source="test",
            ).model_dump_json()
        )
        document.update(changes)
        return json.dumps(document).encode(), "ratings", 0, offset

    cases = {
        0: ({}, None),
        1: ({"rated_at": 1714566600}, None),  # Unix seconds: UTC by definition
        2: ({"rated_at": "2024-05-01T14:00:00+02:00"}, None),
        3: ({"written_by": "shop-backend"}, None),
        4: ({"rated_at": "9999-12-31T23:59:59Z"}, QuarantineReason.RATED_AT_IN_FUTURE.value),
        5: ({"rated_at": "1990-01-01T00:00:00Z"}, QuarantineReason.RATED_AT_BEFORE_FLOOR.value),
        6: ({"rated_at": 1}, QuarantineReason.RATED_AT_BEFORE_FLOOR.value),
        7: ({"rated_at": "2024-05-01T12:30:00"}, QuarantineReason.RATED_AT_WITHOUT_OFFSET.value),
        8: ({"written_by": "two words"}, "invalid_event: written_by"),
        9: ({"written_by": "name\n"}, "invalid_event: written_by"),
    }
    rows = [message(offset, **changes) for offset, (changes, _) in cases.items()]
    frame = spark.createDataFrame(rows, "value binary, topic string, partition int, offset long")
    rule = RatedAtRule.current()
    checked = {row["offset"]: row for row in parse_messages(frame, rule).collect()}
    assert {offset: row["reason"] for offset, row in checked.items()} == {
        offset: reason for offset, (_, reason) in cases.items()
    }
    assert checked[3]["event"]["written_by"] == "shop-backend"
    # The pydantic contract says the same of every case (the API's consumer reads these too).
    for offset, (_, reason) in cases.items():
        verdict = None
        try:
            deserialize_event(rows[offset][0])
        except InvalidEventError as error:
            verdict = error.reason
        assert (verdict is None) == (reason is None), (offset, verdict, reason)
