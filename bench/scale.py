"""The scale curve: load, train and evaluate on synthetic MovieLens-shaped data of growing size.

    python -m bench.scale [--sizes 100000 1000000 10000000] [--out bench/results/scale.json]
    (make bench BENCH_ARGS=--scale runs it after the other sections)

Each size runs in its own process (a fresh JVM), from an empty lakehouse: the
synthetic files (filmrec.data.synthetic: ~150 ratings per user, a 10 000-movie
catalogue with power-law popularity) are loaded into Delta and the training job runs
with a fixed search budget (one ALS and one EASE trial on one validation fold), so
what grows is the data, not the search. Wall time per step and the peak resident
memory of the process tree (Python driver, JVM, Python workers) are recorded; the
growth exponent between sizes is d log(seconds) / d log(ratings) (1.0 = linear).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.provenance import write_results

SIZES = (100_000, 1_000_000, 10_000_000)
RATINGS_PER_USER = 150
MOVIES = 10_000
TARGET_SECONDS_AT_10M = 15 * 60


def scale_search() -> Any:
    """The fixed budget: one point per family, one fold; Settings-independent."""
    from filmrec.training.params import ALSParams, EASEParams, SearchBudget, SearchSpace

    return SearchSpace(
        als_start=(ALSParams(rank=32, max_iter=8, reg_param=0.1, confidence="binary"),),
        ease_start=(EASEParams(reg_param=100.0, input_scale="rating", min_item_ratings=5),),
        budget=SearchBudget(trials=1),
        folds=1,
    )


class PeakMemory:
    """Samples the RSS of a process and its descendants every half second."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(0.5):
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                total = 0
                for member in tree:
                    try:
                        total += member.memory_info().rss
                    except psutil.NoSuchProcess:
                        continue
            except psutil.NoSuchProcess:
                return
            self.peak_bytes = max(self.peak_bytes, total)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_one(ratings: int, root: Path) -> dict[str, Any]:
    """One size, in this process: generate, load, train; the timings of each step."""
    from bench.training import bench_settings
    from filmrec.config import get_settings
    from filmrec.data.movielens import MovieLensFiles
    from filmrec.data.synthetic import SyntheticSpec, write
    from filmrec.lakehouse.spark_session import build_spark
    from filmrec.pipeline import load_movielens
    from filmrec.training.job import train_and_register

    shutil.rmtree(root, ignore_errors=True)
    spec = SyntheticSpec(users=max(ratings // RATINGS_PER_USER, 100), movies=MOVIES, ratings=ratings, seed=7)
    start = time.perf_counter()
    paths = write(spec, root / "input")
    generate_seconds = time.perf_counter() - start
    settings = bench_settings(root, get_settings().jars_dir).model_copy(update={"spark_driver_memory": "12g"})
    spark = build_spark(app_name="filmrec-bench-scale", settings=settings)
    start = time.perf_counter()
    load_movielens(
        spark,
        settings,
        MovieLensFiles(ratings=paths["ratings"], movies=paths["movies"], links=paths["links"]),
    )
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = train_and_register(spark, settings=settings, search=scale_search())
    train_seconds = time.perf_counter() - start
    spark.stop()
    return {
        "ratings": ratings,
        "users": spec.users,
        "movies": spec.movies,
        "generate_seconds": round(generate_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        # The training job reads the Delta table and ends with a registered model: the
        # target's span. Loading the CSV files into Delta is its own row.
        "delta_to_registered_seconds": round(train_seconds, 1),
        "csv_to_registered_seconds": round(load_seconds + train_seconds, 1),
        "training_steps": result.timings,
        "family": result.family,
        "ndcg_at_10": round(result.metrics["ndcg_at_10"], 4),
        "popularity_ndcg_at_10": round(result.baseline_metrics["ndcg_at_10"], 4),
        "families": {name: {"skipped": f["skipped_reason"]} for name, f in result.families.items()},
    }


def _growth(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    done = [r for r in rows if key in r]
    return [
        {
            "from": a["ratings"],
            "to": b["ratings"],
            "exponent": round(math.log(b[key] / a[key]) / math.log(b["ratings"] / a["ratings"]), 2),
        }
        for a, b in itertools.pairwise(done)
        if a[key] > 0 and b[key] > 0
    ]


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "train_seconds" in r]
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    sizes = [r["ratings"] for r in done]
    lines = {
        "load_seconds": "load CSV into Delta",
        "delta_to_registered_seconds": "Delta to registered model (the training job)",
        "csv_to_registered_seconds": "CSV to registered model",
    }
    for key, label in lines.items():
        time_axis.plot(sizes, [r[key] for r in done], marker="o", label=label)
    if sizes:
        linear = [done[0]["delta_to_registered_seconds"] * s / sizes[0] for s in sizes]
        time_axis.plot(sizes, linear, linestyle=":", color="grey", label="linear from the smallest")
    time_axis.axhline(
        TARGET_SECONDS_AT_10M, color="red", linestyle="--", linewidth=0.8, label="15 min target"
    )
    time_axis.set(xscale="log", yscale="log", xlabel="ratings", ylabel="seconds", title="Wall time")
    time_axis.legend(fontsize=8)
    memory_axis.plot(sizes, [r["peak_rss_bytes"] / 2**30 for r in done], marker="o")
    memory_axis.set(xscale="log", xlabel="ratings", ylabel="GiB", title="Peak memory (driver, JVM, workers)")
    figure.suptitle("filmrec scale curve (synthetic MovieLens-shaped data)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--root", type=Path, default=Path("var/bench-scale"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/scale.json"))
    parser.add_argument("--plot", type=Path, default=Path("bench/results/scale.png"))
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per size")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size here
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        assert args.result is not None
        args.result.write_text(
            json.dumps(run_one(args.one, args.root.resolve() / str(args.one)), default=str)
        )
        return 0
    rows: list[dict[str, Any]] = []
    for size in args.sizes:
        result = args.root.resolve() / f"{size}.json"
        result.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "bench.scale",
            "--one",
            str(size),
            "--root",
            str(args.root),
            "--result",
            str(result),
        ]
        start = time.perf_counter()
        process = subprocess.Popen(command)
        with PeakMemory(process.pid) as memory:
            try:
                code = process.wait(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                code = None
        row: dict[str, Any] = {"ratings": size, "wall_seconds": round(time.perf_counter() - start, 1)}
        if code == 0 and result.exists():
            row |= json.loads(result.read_text())
        else:
            # What broke is recorded, never hidden: a timeout or the process's exit code.
            row["failed"] = f"timed out after {args.timeout:.0f} s" if code is None else f"exit code {code}"
        row["peak_rss_bytes"] = memory.peak_bytes
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "training_steps"}), flush=True)
    ten_million = next((r for r in rows if r["ratings"] == 10_000_000 and "train_seconds" in r), None)
    report = {
        "sizes": rows,
        "growth_exponent_delta_to_registered": _growth(rows, "delta_to_registered_seconds"),
        "growth_exponent_peak_memory": _growth(rows, "peak_rss_bytes"),
        "target": "10M ratings from Delta to a registered model in under 15 minutes",
        "target_met": bool(
            ten_million and ten_million["delta_to_registered_seconds"] < TARGET_SECONDS_AT_10M
        ),
    }
    write_results(args.out, report)
    plot(rows, args.plot)
    print(f"results written to {args.out}, plot {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
