"""spark-submit entry point: train ALS on the clean ratings, register it, maybe promote it.

    spark-submit --jars ... spark/jobs/train_als.py --result-path RESULT.json \
        [--grid default|quick|JSON-list] [--data-version N]

Writes the TrainingResult (model version, metrics, promotion decision) as JSON to
RESULT.json; the als_training DAG reads it in its evaluate_and_promote task.
"""

from __future__ import annotations

from filmrec.orchestration.spark_jobs import job_parser


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--grid", default="default", help="default, quick, or a JSON list of ALSParams")
    parser.add_argument("--data-version", type=int, default=None, help="clean ratings Delta version to read")
    args = parser.parse_args(argv)

    from filmrec.orchestration.spark_jobs import configure_logging, parse_grid, submitted_spark, write_result
    from filmrec.training.job import train_and_register

    configure_logging()
    grid = parse_grid(args.grid)  # before the JVM starts: a bad grid fails in a second
    spark = submitted_spark("filmrec-train-als")
    try:
        result = train_and_register(spark, grid=grid, data_version=args.data_version)
    finally:
        spark.stop()
    write_result(args.result_path, result.as_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
