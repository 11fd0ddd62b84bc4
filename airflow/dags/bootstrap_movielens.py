"""
### Bootstrap: the bundled MovieLens data into a fresh platform

Run once, by hand (`airflow dags trigger bootstrap_movielens`):

1. **locate_movielens** finds data/ml-latest-small (or the `data_dir` parameter)
   and checks it against its SHA256SUMS;
2. **load_movies** loads movies (with IMDb/TMDb links) into Delta and copies them
   to the serving database;
3. ratings take one of two routes: with KAFKA_BOOTSTRAP_SERVERS set they are
   **replayed to Kafka** and **ingested** by the streaming job, as live ratings
   would be; otherwise they are **loaded** into Delta directly.

Running the DAG again adds no rows: loads upsert, and replayed events carry
content-based ids that ingestion de-duplicates. (The Kafka route does publish the
events again, so the topic grows.) Then trigger `als_training`.

The Kafka route's ingest is the ratings ingestion job, on the one streaming
checkpoint that `ratings_ingestion` and the continuous job (`ratings-stream`) use:
**one ingestion mode per deployment at a time; the lock enforces it.** When another
run holds the checkpoint, **checkpoint_free** skips `ingest_replayed_ratings` (its
log names the holder): the continuous job ingests the replayed events as they
arrive, a scheduled run at its next run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Param, dag, task

from filmrec.orchestration.defaults import SPARK_TASK_TIMEOUT, default_args
from filmrec.orchestration.operators import FilmrecSparkSubmitOperator, from_xcom

LOCATE = "locate_movielens"


@dag(
    dag_id="bootstrap_movielens",
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["filmrec", "bootstrap", "spark", "delta"],
    doc_md=__doc__,
    params={
        "data_dir": Param(
            None, type=["null", "string"], description="a MovieLens-format directory (null: the bundled one)"
        ),
    },
)
def bootstrap_movielens() -> None:
    @task(task_id=LOCATE)
    def locate_movielens(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, str]:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import movielens_dir, run_dir

        settings = get_settings()
        directory = movielens_dir(settings, (params or {}).get("data_dir"))
        links = directory / "links.csv"
        return {
            "movies": str(directory / "movies.csv"),
            "links": str(links) if links.exists() else "",
            "ratings": str(directory / "ratings.csv"),
            "run_dir": str(run_dir(settings, "bootstrap_movielens", run_id or "manual")),
        }

    def load(task_id: str, *args: str) -> FilmrecSparkSubmitOperator:
        return FilmrecSparkSubmitOperator(
            task_id=task_id,
            job="load_movielens",
            application_args=["--result-path", f"{from_xcom(LOCATE, 'run_dir')}/{task_id}.json", *args],
            execution_timeout=SPARK_TASK_TIMEOUT,
        )

    load_movies = load(
        "load_movies",
        "--movies",
        from_xcom(LOCATE, "movies"),
        "--links",
        from_xcom(LOCATE, "links"),
        "--sync-metadata",
    )
    load_ratings = load("load_ratings", "--ratings", from_xcom(LOCATE, "ratings"))

    @task.branch
    def choose_ratings_route() -> str:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import kafka_configured

        return "replay_ratings" if kafka_configured(get_settings()) else "load_ratings"

    @task
    def replay_ratings(files: dict[str, str]) -> dict[str, Any]:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import replay_ratings

        return replay_ratings(get_settings(), files["ratings"])

    @task(task_id="checkpoint_free")
    def checkpoint_free() -> None:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import skip_while_checkpoint_busy

        skip_while_checkpoint_busy(
            get_settings(), meanwhile="the replayed events wait in Kafka for the holder or the next run"
        )

    ingest = FilmrecSparkSubmitOperator(
        task_id="ingest_replayed_ratings",
        job="ingest_ratings",
        application_args=["--result-path", f"{from_xcom(LOCATE, 'run_dir')}/ingest.json"],
        execution_timeout=SPARK_TASK_TIMEOUT,
    )

    files = locate_movielens()
    route = choose_ratings_route()
    files >> load_movies >> route
    route >> load_ratings
    route >> replay_ratings(files) >> checkpoint_free() >> ingest


bootstrap_movielens()
