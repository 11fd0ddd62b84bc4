"""spark-submit entry point: one Kafka -> Delta ingestion run (trigger availableNow).

    spark-submit --jars ... spark/jobs/ingest_ratings.py --result-path REPORT.json \
        [--max-offsets-per-trigger N]

Same job as `python -m filmrec.streaming.ingest`, on the master Airflow's
`spark_default` connection chooses; the IngestionReport is written to REPORT.json.
"""

from __future__ import annotations

from filmrec.orchestration.spark_jobs import job_parser


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    args = parser.parse_args(argv)

    from filmrec.config import get_settings
    from filmrec.orchestration.spark_jobs import configure_logging, submitted_spark, write_result
    from filmrec.streaming.ingest import run_ingestion

    configure_logging()
    settings = get_settings()
    spark = submitted_spark("filmrec-ingest", settings)
    try:
        report = run_ingestion(spark, settings, max_offsets_per_trigger=args.max_offsets_per_trigger)
    finally:
        spark.stop()
    write_result(args.result_path, report.as_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
