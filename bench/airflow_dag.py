"""Benchmark: wall time of the whole als_training DAG on the bundled data.

    python -m bench.airflow_dag [--search default|quick] [--workdir DIR]

A fresh local Airflow (SQLite), lakehouse and MLflow store are set up under a
temporary directory; `bootstrap_movielens` loads the bundled MovieLens data (timed
separately); then `airflow dags test als_training` is timed from start to end:
the training gate, spark-submit of the training job, evaluation and promotion,
metadata sync, cache warm-up and API notification.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from devstack.local_airflow import DagRunOutcome, LocalAirflow


def _require_success(outcome: DagRunOutcome, *expected: str) -> None:
    failed = {
        task: state for task, state in outcome.task_states.items() if state not in ("success", "skipped")
    }
    missing = [task for task in expected if outcome.task_states.get(task) != "success"]
    if outcome.returncode != 0 or failed or missing:
        raise RuntimeError(
            f"{outcome.dag_id} did not succeed (rc={outcome.returncode}, tasks={outcome.task_states}); "
            f"log {outcome.log_path}:\n{outcome.tail()}"
        )


def time_training_dag(*, search: str = "default", workdir: Path | None = None) -> dict[str, Any]:
    """Bootstrap the bundled data, then time one als_training DAG run end to end."""
    root = workdir or Path(tempfile.mkdtemp(prefix="filmrec-airflow-bench-"))
    local = LocalAirflow(root, extra_env={"FILMREC_TRAINING_SEARCH": search})
    local.migrate()
    bootstrap = local.dags_test("bootstrap_movielens")
    _require_success(bootstrap, "load_movies", "load_ratings")
    training = local.dags_test("als_training")
    _require_success(training, "train_als", "evaluate_and_promote", "notify_api")
    result_files = sorted((root / "var" / "airflow" / "als_training").glob("*/training_result.json"))
    result = json.loads(result_files[-1].read_text()) if result_files else {}
    return {
        "dag": "als_training",
        "search": search,
        "training_dag_seconds": round(training.seconds, 1),
        "bootstrap_dag_seconds": round(bootstrap.seconds, 1),
        "training_job_seconds": result.get("timings", {}).get("total"),
        "model_version": result.get("model_version"),
        "promoted": result.get("promotion", {}).get("promoted"),
        "ndcg_at_10": result.get("metrics", {}).get("ndcg_at_10"),
        "task_states": training.task_states,
        "workdir": str(root),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--search", default="default", help="default (as `make train`) or quick")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary directory")
    args = parser.parse_args(argv)
    report = time_training_dag(search=args.search, workdir=args.workdir)
    print(json.dumps(report, indent=2))
    print(f"als_training DAG wall time: {report['training_dag_seconds']:.1f}s (search {args.search})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
