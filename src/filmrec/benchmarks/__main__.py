"""`make bench`: measure, print, and write bench/results/latest.json.

Sections: training (wall time and quality on the bundled MovieLens), the API
(/recommendations against a bare constant FastAPI endpoint, same run, same load
generator), and the optional sections other parts of the platform provide.
A section that cannot run here is recorded with the reason, never silently left out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filmrec.benchmarks.http_load import ServerProcess, free_port, measure, wait_until_up
from filmrec.benchmarks.training import bench_settings, run_training_bench
from filmrec.config import get_settings
from filmrec.data.movielens import MovieLensFiles, find_bundled_dir


def run_api_bench(settings_env: dict[str, str], user_ids: list[int], *, seconds: int) -> dict[str, Any]:
    """/recommendations and the bare endpoint, each in its own server process."""
    api_port, bare_port = free_port(), free_port()
    api = ServerProcess("filmrec.serving.app:create_app", port=api_port, env=settings_env, factory=True)
    bare = ServerProcess("filmrec.benchmarks.bare_app:app", port=bare_port)
    try:
        wait_until_up(f"{api.base_url}/ready")
        wait_until_up(f"{bare.base_url}/constant")
        # One pass over every user first, so the steady state is what is measured.
        measure("warm-up", api.base_url, "/recommendations/{id}", user_ids, seconds=3)
        bare_result = measure("bare constant endpoint", bare.base_url, "/constant", seconds=seconds)
        recs = measure(
            "/recommendations/{user_id}", api.base_url, "/recommendations/{id}", user_ids, seconds=seconds
        )
    finally:
        api.stop()
        bare.stop()
    return {
        "bare": bare_result.as_dict(),
        "recommendations": recs.as_dict(),
        "throughput_ratio_recommendations_vs_bare": round(
            recs.requests_per_second / max(bare_result.requests_per_second, 1e-9), 3
        ),
    }


def _optional(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return run()
    except Exception as error:  # a section that cannot run is reported, not hidden
        return {"skipped": f"{type(error).__name__}: {error}"[:500], "section": name}


def _print_summary(results: dict[str, Any]) -> None:
    training = results["training"]
    champion, baseline = training["champion"], training["popularity_baseline"]
    print("\n=== filmrec benchmark ===")
    print(
        f"training wall time (bundled MovieLens, grid of {len(training['training_step_seconds'])} steps): "
        f"{training['training_wall_seconds']} s  (load+sync {training['load_and_sync_seconds']} s)"
    )
    print(f"{'metric':<16}{'champion':>10}{'popularity':>12}")
    for metric in ("ndcg_at_10", "precision_at_10", "recall_at_10", "map_at_10", "coverage"):
        print(f"{metric:<16}{champion[metric]:>10.4f}{baseline[metric]:>12.4f}")
    print(
        f"nDCG@10 ratio vs popularity: {training['ndcg_ratio_vs_popularity']}  "
        f"(target {training['quality_target']}: {'MET' if training['quality_target_met'] else 'NOT MET'})"
    )
    api = results["api"]
    if "skipped" not in api:
        for key in ("bare", "recommendations"):
            row = api[key]
            print(
                f"{row['name']:<30} {row['requests_per_second']:>9.1f} req/s  p50 {row['p50_ms']:.2f} ms"
                f"  p99 {row['p99_ms']:.2f} ms  errors {row['errors']}  ({row['tool']})"
            )
        print(f"throughput ratio /recommendations vs bare: {api['throughput_ratio_recommendations_vs_bare']}")
    for name, section in results.get("extra", {}).items():
        print(f"{name}: {json.dumps(section)[:400]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15, help="duration of each HTTP load run")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--root", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)

    settings = bench_settings(args.root.resolve(), get_settings().jars_dir)
    files = MovieLensFiles.in_directory(find_bundled_dir())
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    start = time.perf_counter()
    results["training"] = run_training_bench(settings, files)
    env = {
        "FILMREC_VAR_DIR": str(settings.var_dir),
        "LAKEHOUSE_PATH": str(settings.lakehouse_path),
        "MODEL_POLL_SECONDS": "3600",
    }
    import pandas as pd

    user_ids = sorted(pd.read_csv(files.ratings, usecols=["userId"])["userId"].unique().tolist())
    results["api"] = _optional("api", lambda: run_api_bench(env, user_ids, seconds=args.seconds))
    results["extra"] = {}
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    _print_summary(results)
    print(f"\nresults written to {args.out}")
    return 0 if results["training"]["quality_target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
