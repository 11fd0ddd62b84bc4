"""spark-submit entry point: copy the Delta movies table into the serving database.

    spark-submit --jars ... spark/jobs/sync_movies.py --result-path REPORT.json

The serving database is PostgreSQL with DATABASE_URL, the embedded SQLite otherwise.
Idempotent: a second run over the same Delta version changes no row.
"""

from __future__ import annotations

from filmrec.orchestration.spark_jobs import job_parser


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    args = parser.parse_args(argv)

    from filmrec.config import get_settings
    from filmrec.orchestration.spark_jobs import configure_logging, submitted_spark, write_result
    from filmrec.pipeline import sync_metadata

    configure_logging()
    settings = get_settings()
    spark = submitted_spark("filmrec-sync-movies", settings)
    try:
        changed = sync_metadata(spark, settings)
    finally:
        spark.stop()
    database = settings.effective_database_url.split(":", 1)[0]  # the scheme only: no credentials
    write_result(args.result_path, {"movies_synced": changed, "database": database})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
