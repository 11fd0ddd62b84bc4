"""spark-submit entry point: search ALS and EASE on the clean ratings, register the best, maybe promote it.

    spark-submit --jars ... spark/jobs/train_als.py --result-path RESULT.json \
        [--search default|quick] [--trials N] [--search-seconds S] [--data-version N]

Writes the TrainingResult (model family and version, metrics, promotion decision) as
JSON to RESULT.json; the als_training DAG reads it in its evaluate_and_promote task.
"""

from __future__ import annotations

from filmrec.orchestration.spark_jobs import job_parser


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument(
        "--search", default="default", help="the search space: default, quick or a JSON SearchSpace"
    )
    parser.add_argument("--trials", type=int, default=0, help="trials per model family (0: the search's own)")
    parser.add_argument(
        "--search-seconds", type=float, default=0.0, help="seconds per model family (0: no time limit)"
    )
    parser.add_argument("--data-version", type=int, default=None, help="clean ratings Delta version to read")
    args = parser.parse_args(argv)

    from filmrec.orchestration.spark_jobs import (
        configure_logging,
        parse_search,
        submitted_spark,
        write_result,
    )
    from filmrec.training.job import train_and_register

    configure_logging()
    # Before the JVM starts: a bad search name fails in a second.
    search = parse_search(args.search, trials=args.trials, seconds=args.search_seconds)
    spark = submitted_spark("filmrec-train-als")
    try:
        result = train_and_register(spark, search=search, data_version=args.data_version)
    finally:
        spark.stop()
    write_result(args.result_path, result.as_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
