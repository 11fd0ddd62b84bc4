"""spark-submit entry point: load MovieLens-format CSVs into the lakehouse.

    spark-submit --jars ... spark/jobs/load_movielens.py --result-path REPORT.json \
        [--movies movies.csv [--links links.csv]] [--ratings ratings.csv] [--sync-metadata]

Loads whichever files are given (movies with their links, ratings), then with
--sync-metadata copies the Delta movies into the serving database. Idempotent:
loading the same files again adds nothing.
"""

from __future__ import annotations

from pathlib import Path

from filmrec.orchestration.spark_jobs import job_parser


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--movies", type=Path, default=None)
    parser.add_argument("--links", type=lambda value: Path(value) if value else None, default=None)
    parser.add_argument("--ratings", type=Path, default=None)
    parser.add_argument("--sync-metadata", action="store_true", help="then copy movies to the serving DB")
    args = parser.parse_args(argv)
    if args.movies is None and args.ratings is None and not args.sync_metadata:
        parser.error("nothing to do: give --movies, --ratings or --sync-metadata")

    from filmrec.config import get_settings
    from filmrec.ingestion.csv_load import load_movies_csv, load_ratings_csv
    from filmrec.lakehouse.tables import LakehouseTables
    from filmrec.orchestration.spark_jobs import configure_logging, submitted_spark, write_result
    from filmrec.pipeline import sync_metadata

    configure_logging()
    settings = get_settings()
    tables = LakehouseTables(settings.lakehouse_path)
    spark = submitted_spark("filmrec-load-movielens", settings)
    loads = []
    synced = None
    try:
        if args.movies is not None:
            loads.append(load_movies_csv(spark, tables, args.movies, args.links).as_dict())
        if args.ratings is not None:
            loads.append(load_ratings_csv(spark, tables, args.ratings).as_dict())
        if args.sync_metadata:
            synced = sync_metadata(spark, settings)
    finally:
        spark.stop()
    write_result(args.result_path, {"loads": loads, "movies_synced": synced})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
