"""The Kafka side of the DAGs, run for real against a real broker.

`airflow dags test` on a SQLite Airflow (orchestration.local_airflow), local Spark
through spark-submit, the session's broker (conftest_kafka) and a topic of its own.
One scenario, in order (each test builds on the state the previous one left):

1. bootstrap_movielens with KAFKA_BOOTSTRAP_SERVERS set takes its Kafka route: it
   replays a slice of MovieLens (the first 10 users, ~1.3k ratings) to the topic and
   ingests it with the streaming job;
2. ratings_ingestion ingests exactly the events published since;
3. ratings_ingestion while another run holds the checkpoint (this test holds the
   lock, as the continuous job would) is skipped, its log naming the holder.

A few minutes on 2 cores: three spark-submit JVMs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.local_airflow import DagRunOutcome, LocalAirflow
from filmrec.config import Settings
from filmrec.ingestion.checkpoint_lock import CheckpointLock
from filmrec.ingestion.contract import RatingEvent
from filmrec.ingestion.events import encode_event
from filmrec.ingestion.ingest_status import read_status
from filmrec.ingestion.kafka_ingest import checkpoint_dir
from filmrec.lakehouse import delta_log
from filmrec.lakehouse.tables import LakehouseTables
from tests.conftest import require
from tests.integration.service_helpers import BUNDLED, publish, write_slice

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

SLICE_USERS = 10
NEW_EVENTS = 40


@pytest.fixture(scope="module")
def kafka_airflow(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalAirflow, Settings]]:
    """A local Airflow whose DAGs use the real broker and a fresh topic; the same settings."""
    require(shutil.which("java") is not None, "`java` 17+ (install openjdk-17-jre-headless)")
    bin_dir = Path(sys.executable).parent
    require((bin_dir / "airflow").exists(), "the airflow CLI (pip install -e '.[airflow]')")
    require((bin_dir / "spark-submit").exists(), "spark-submit (pip install -e '.[spark]')")
    root = tmp_path_factory.mktemp("airflow-kafka-dags")
    topic = f"ratings-dags-{uuid.uuid4().hex[:10]}"
    # LocalAirflow keeps service URLs of the caller's environment out; these are given back.
    local = LocalAirflow(
        root, extra_env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_RATINGS_TOPIC": topic}
    )
    local.migrate()
    settings = Settings(
        _env_file=None,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KAFKA_RATINGS_TOPIC=topic,
        FILMREC_VAR_DIR=root / "var",
        LAKEHOUSE_PATH=root / "lakehouse",
    )
    yield local, settings


def _assert_states(outcome: DagRunOutcome, expected: dict[str, str]) -> None:
    actual = {task: outcome.task_states.get(task) for task in expected}
    assert actual == expected, (
        f"{outcome.dag_id} tasks {outcome.task_states}; log {outcome.log_path}:\n{outcome.tail()}"
    )


def _raw_rows(settings: Settings) -> int:
    # From the Delta log, without a Spark session in this process: rows the loads added.
    return delta_log.rows_changed_since(LakehouseTables(settings.lakehouse_path).raw_ratings, 0) or 0


def test_bootstrap_replays_to_kafka_and_ingests(kafka_airflow: tuple[LocalAirflow, Settings]) -> None:
    local, settings = kafka_airflow
    data_dir = local.root / "movielens-slice"
    ratings = write_slice(data_dir, users=SLICE_USERS)
    for name in ("movies.csv", "links.csv"):
        shutil.copy(BUNDLED / name, data_dir / name)
    expected = sum(1 for _ in ratings.open()) - 1

    outcome = local.dags_test("bootstrap_movielens", {"data_dir": str(data_dir)})
    _assert_states(
        outcome,
        {
            "locate_movielens": "success",
            "load_movies": "success",
            "choose_ratings_route": "success",
            "load_ratings": "skipped",
            "replay_ratings": "success",
            "checkpoint_free": "success",
            "ingest_replayed_ratings": "success",
        },
    )
    tables = LakehouseTables(settings.lakehouse_path)
    report = json.loads(
        next((settings.var_dir / "airflow" / "bootstrap_movielens").glob("*/ingest.json")).read_text()
    )
    assert (report["read"], report["written"], report["quarantined"], report["lag"]) == (
        expected,
        expected,
        0,
        0,
    )
    assert _raw_rows(settings) == expected
    # MovieLens has one rating per user and movie: clean holds every one of them.
    assert delta_log.rows_changed_since(tables.clean_ratings, 0) == expected
    status = read_status(tables.ingestion_status)
    assert (status["status"], status["mode"], status["totals"]["written"]) == (
        "ok",
        "available_now",
        expected,
    )


def test_ratings_ingestion_adds_exactly_the_new_events(kafka_airflow: tuple[LocalAirflow, Settings]) -> None:
    local, settings = kafka_airflow
    before = _raw_rows(settings)
    events = [
        RatingEvent(
            event_id=uuid.uuid4(),
            user_id=9_000 + index,
            movie_id=1 + index,
            rating=4.0,
            rated_at=datetime(2026, 1, 1, tzinfo=UTC),
            source="test",
        )
        for index in range(NEW_EVENTS)
    ]
    publish(settings, [encode_event(event) for event in events])

    outcome = local.dags_test("ratings_ingestion")
    _assert_states(
        outcome,
        dict.fromkeys(
            ("kafka_configured", "checkpoint_free", "ingest_ratings", "report_ingestion"), "success"
        ),
    )
    reports = sorted((settings.var_dir / "airflow" / "ratings_ingestion").glob("*/report.json"))
    report = json.loads(reports[-1].read_text())
    assert (report["read"], report["written"], report["duplicates"], report["lag"]) == (
        NEW_EVENTS,
        NEW_EVENTS,
        0,
        0,
    )
    assert _raw_rows(settings) == before + NEW_EVENTS


def test_ratings_ingestion_skips_while_another_run_holds_the_checkpoint(
    kafka_airflow: tuple[LocalAirflow, Settings],
) -> None:
    local, settings = kafka_airflow
    checkpoint = checkpoint_dir(LakehouseTables(settings.lakehouse_path))
    with CheckpointLock(checkpoint, mode="continuous"):
        outcome = local.dags_test("ratings_ingestion")
    _assert_states(
        outcome,
        {
            "kafka_configured": "success",
            "checkpoint_free": "skipped",
            "ingest_ratings": "skipped",
            "report_ingestion": "skipped",
        },
    )
    assert outcome.state == "success", "a skipped run is not a failed one"
    log = outcome.log_path.read_text(errors="replace")
    assert f"pid {os.getpid()}" in log and "mode continuous" in log, outcome.tail()
    assert "one ingestion mode per deployment at a time" in log, outcome.tail()
