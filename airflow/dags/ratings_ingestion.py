"""
### Ratings ingestion: Kafka → Delta, every 15 minutes

Runs the Structured Streaming job `spark/jobs/ingest_ratings.py` (the same job as
`python -m filmrec.ingestion.kafka_ingest`) with trigger **availableNow**: it reads every
rating event the checkpoint has not seen, writes raw ratings, merges clean ratings,
quarantines invalid events, and stops. Exactly once across runs and retries.

**One ingestion mode per deployment at a time; the lock enforces it.** The same job
also runs continuously (`--continuous`, the Compose `ratings-stream` service), on
the same streaming checkpoint, which admits one writer. Every run of the job, in
either mode, holds an exclusive lock file in the checkpoint directory, and a second
run fails at once naming the holder. So while the continuous job runs,
**checkpoint_free** skips this DAG's runs (skipped, not failed: the continuous job
ingests the events itself), its log naming the holder's pid, host, mode and start
time. Pause this DAG when you run the continuous job for good.

Runs of this DAG never overlap either (`max_active_runs=1`). Without
KAFKA_BOOTSTRAP_SERVERS the run is skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from filmrec.orchestration.defaults import SPARK_TASK_TIMEOUT, default_args
from filmrec.orchestration.operators import FilmrecSparkSubmitOperator, from_xcom

CHECK = "kafka_configured"


@dag(
    dag_id="ratings_ingestion",
    schedule=timedelta(minutes=15),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,  # availableNow catches up by itself: one run reads all that is pending
    max_active_runs=1,
    dagrun_timeout=SPARK_TASK_TIMEOUT + timedelta(minutes=10),
    default_args=default_args(),
    tags=["filmrec", "ingestion", "kafka", "spark", "delta"],
    doc_md=__doc__,
)
def ratings_ingestion() -> None:
    @task.short_circuit(task_id=CHECK)
    def kafka_configured(run_id: str | None = None) -> dict[str, Any] | bool:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import ingestion_gate

        return ingestion_gate(get_settings(), run_id=run_id or "manual") or False

    @task(task_id="checkpoint_free")
    def checkpoint_free() -> None:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import skip_while_checkpoint_busy

        skip_while_checkpoint_busy(
            get_settings(), meanwhile="the events wait in Kafka for the holder or the next run"
        )

    ingest = FilmrecSparkSubmitOperator(
        task_id="ingest_ratings",
        job="ingest_ratings",
        application_args=["--result-path", from_xcom(CHECK, "report_path")],
        execution_timeout=SPARK_TASK_TIMEOUT,
        max_active_tis_per_dag=1,
    )

    @task
    def report_ingestion(check: dict[str, Any]) -> dict[str, Any]:
        import logging

        from filmrec.orchestration.tasks import read_json

        report = read_json(check["report_path"])
        logging.getLogger(__name__).info(
            "ingested: read %s, written %s, quarantined %s, lag %s",
            report.get("read"),
            report.get("written"),
            report.get("quarantined"),
            report.get("lag"),
        )
        return report

    check = kafka_configured()
    check >> checkpoint_free() >> ingest >> report_ingestion(check)


ratings_ingestion()
