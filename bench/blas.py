"""Spark ALS with and without the native BLAS, in one run.

    python -m bench.blas [--ranks 64 128] [--out bench/results/blas.json]

Spark's ALS does its linear algebra through dev.ludovic.netlib, which loads the
system's libblas.so.3 (here OpenBLAS, Debian's libopenblas0-pthread) or else falls
back to Java code. Each variant fits the same ALS on the bundled ratings in a fresh
driver JVM (the choice is made when the JVM loads netlib):
- native: the system BLAS, with as many OpenBLAS threads as cores (its default);
- native, 1 thread: OPENBLAS_NUM_THREADS=1, as Spark's docs advise when every core
  already runs a task;
- java: the native library name pointed at a file that does not exist.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.provenance import write_results

VARIANTS: dict[str, dict[str, Any]] = {
    "native": {"env": {"OPENBLAS_NUM_THREADS": str(os.cpu_count() or 1)}, "java_options": ""},
    "native-1-thread": {"env": {"OPENBLAS_NUM_THREADS": "1"}, "java_options": ""},
    "java": {"env": {}, "java_options": "-Ddev.ludovic.netlib.blas.nativeLib=filmrec-no-native-blas.so"},
}


def run_one(java_options: str, ranks: list[int]) -> dict[str, Any]:
    """In this process: a local Spark with `java_options`, one ALS fit per rank."""
    import pandas as pd
    from pyspark.sql import SparkSession

    from filmrec.data.movielens import find_bundled_dir
    from filmrec.training.als import fit_als
    from filmrec.training.params import ALSParams

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("filmrec-bench-blas")
        .config("spark.driver.memory", "4g")
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(str(Path("var/bench-blas/checkpoints").resolve()))
    blas = spark.sparkContext._jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getName()  # type: ignore[union-attr]
    ratings = pd.read_csv(find_bundled_dir() / "ratings.csv").rename(
        columns={"userId": "user_id", "movieId": "movie_id"}
    )[["user_id", "movie_id", "rating"]]
    frame = spark.createDataFrame(ratings).cache()
    frame.count()
    fits = {}
    for rank in ranks:
        params = ALSParams(rank=rank, max_iter=15, reg_param=0.1, confidence="binary")
        start = time.perf_counter()
        fit_als(frame, params, ratings_pdf=ratings)
        fits[str(rank)] = round(time.perf_counter() - start, 1)
    spark.stop()
    return {"blas_implementation": blas, "fit_seconds_by_rank": fits}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ranks", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--out", type=Path, default=Path("bench/results/blas.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one variant, JSON on stdout
    args = parser.parse_args(argv)
    if args.one is not None:
        print("RESULT " + json.dumps(run_one(VARIANTS[args.one]["java_options"], args.ranks)))
        return 0
    report: dict[str, Any] = {"ratings": "bundled MovieLens (100k)", "als": "implicit, binary, 15 iterations"}
    for name, variant in VARIANTS.items():
        command = [sys.executable, "-m", "bench.blas", "--one", name, "--ranks", *map(str, args.ranks)]
        done = subprocess.run(
            command, env=os.environ | variant["env"], capture_output=True, text=True, check=True
        )
        line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
        report[name] = json.loads(line.removeprefix("RESULT "))
        print(name, report[name], flush=True)
    write_results(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
