"""spark-submit entry point: Kafka -> Delta ingestion, availableNow (default) or continuous.

    spark-submit --jars ... spark/jobs/ingest_ratings.py --result-path REPORT.json \
        [--max-offsets-per-trigger N] [--continuous [--trigger-seconds 30]]

Same job as `python -m filmrec.ingestion.kafka_ingest`, on the master Airflow's
`spark_default` connection (or the Compose `ratings-stream` service) chooses; the
IngestionReport is written to REPORT.json when the run ends (a continuous run ends
on SIGTERM/SIGINT, between two batches). A run that finds the checkpoint held by
another run exits with EXIT_CHECKPOINT_BUSY and writes no report.
"""

from __future__ import annotations

import logging

from filmrec.orchestration.spark_jobs import job_parser

log = logging.getLogger("ingest_ratings")


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    parser.add_argument("--continuous", action="store_true", help="run until stopped (SIGTERM/SIGINT)")
    parser.add_argument("--trigger-seconds", type=int, default=None, help="default: INGEST_TRIGGER_SECONDS")
    args = parser.parse_args(argv)

    from filmrec.config import get_settings
    from filmrec.ingestion.checkpoint_lock import CheckpointBusyError
    from filmrec.ingestion.kafka_ingest import EXIT_CHECKPOINT_BUSY, run_ingestion_job
    from filmrec.orchestration.spark_jobs import configure_logging, submitted_spark, write_result

    configure_logging()
    settings = get_settings()
    try:
        report = run_ingestion_job(
            lambda: submitted_spark("filmrec-ingest", settings),
            settings,
            continuous=args.continuous,
            trigger_seconds=args.trigger_seconds,
            max_offsets_per_trigger=args.max_offsets_per_trigger,
        )
    except CheckpointBusyError as busy:
        log.error("%s", busy)
        return EXIT_CHECKPOINT_BUSY
    write_result(args.result_path, report.as_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
