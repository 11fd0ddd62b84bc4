"""`make bench`: measure, print, and write bench/results/latest.json.

Sections: training (wall time and quality on the bundled MovieLens), the API
(/recommendations against a bare constant FastAPI endpoint, same run, same load
generator), and the optional sections other parts of the platform provide.
A section that cannot run here is recorded with the reason, never silently left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.http_load import SERVED_APP, ServerProcess, measure, wait_until_up
from bench.training import bench_settings, run_training_bench
from devstack.processes import free_port
from filmrec.config import get_settings
from filmrec.data.movielens import MovieLensFiles, find_bundled_dir


def run_api_bench(settings_env: dict[str, str], user_ids: list[int], *, seconds: int) -> dict[str, Any]:
    """/recommendations from the cache, from the model, and a bare constant endpoint.

    Each runs in its own server process under the same load generator, in one run, so
    the ratios compare like with like. The cache is Redis when REDIS_URL is set in
    the environment, else the in-process one; "model" turns the cache off.
    """
    bare = ServerProcess("bench.bare_app:app", port=free_port())
    cached = ServerProcess(SERVED_APP, port=free_port(), env=settings_env, factory=True)
    uncached = ServerProcess(
        SERVED_APP,
        port=free_port(),
        env=settings_env | {"CACHE_ENABLED": "false"},
        factory=True,
    )
    rows: dict[str, Any] = {}
    try:
        wait_until_up(f"{bare.base_url}/constant")
        wait_until_up(f"{cached.base_url}/ready")
        wait_until_up(f"{uncached.base_url}/ready")
        rows["bare"] = measure("bare constant endpoint", bare.base_url, "/constant", seconds=seconds)
        # One pass over every user first: what is measured is the steady state of hits.
        measure("warm-up", cached.base_url, "/recommendations/{id}", user_ids, seconds=3)
        rows["cache_hit"] = measure(
            "/recommendations (cache hit)",
            cached.base_url,
            "/recommendations/{id}",
            user_ids,
            seconds=seconds,
        )
        rows["model"] = measure(
            "/recommendations (model)", uncached.base_url, "/recommendations/{id}", user_ids, seconds=seconds
        )
    finally:
        for server in (bare, cached, uncached):
            server.stop()
    bare_rate = max(rows["bare"].requests_per_second, 1e-9)
    return {
        "cache": "redis" if settings_env.get("REDIS_URL") else "in-process",
        **{name: row.as_dict() for name, row in rows.items()},
        "ratio_vs_bare": {
            name: round(rows[name].requests_per_second / bare_rate, 3) for name in ("cache_hit", "model")
        },
    }


def _streaming(settings: Any, files: MovieLensFiles) -> dict[str, Any]:
    """Replay producer and Kafka -> Delta events/s (a private broker when none is configured)."""
    from bench.streaming import bench_streaming

    return bench_streaming(files.ratings, settings=settings)


def _realtime(settings: Any, files: MovieLensFiles, params: dict[str, Any]) -> dict[str, Any]:
    """Fold-in quality on held-out users and event-to-visibility time (a real broker and API)."""
    from bench.realtime import run_realtime_bench

    return run_realtime_bench(settings, files, params)


def _airflow() -> dict[str, Any]:
    """Wall time of the whole `als_training` DAG on the bundled data (airflow dags test)."""
    from bench.airflow_dag import time_training_dag

    return time_training_dag(search="default")


def _peers() -> dict[str, Any]:
    """The served champion against LensKit's EASE and ImplicitMF on unseen splits (bench/peers.py)."""
    from bench.peers import main as peers_main

    peers_main([])
    return dict(json.loads(Path("bench/results/peers.json").read_text()))


def _blas() -> dict[str, Any]:
    """Spark ALS fit time with the native BLAS and with Java's, in one run (bench/blas.py)."""
    from bench.blas import main as blas_main

    blas_main([])
    return dict(json.loads(Path("bench/results/blas.json").read_text()))


def _scale() -> dict[str, Any]:
    """Load, train, evaluate at 100k, 1M and 10M synthetic ratings (bench/scale.py)."""
    from bench.scale import main as scale_main

    scale_main([])
    return dict(json.loads(Path("bench/results/scale.json").read_text()))


def _optional(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return run()
    except Exception as error:  # a section that cannot run is reported, not hidden
        return {"skipped": f"{type(error).__name__}: {error}"[:500], "section": name}


SUMMARY_METRICS = (
    "ndcg_at_10",
    "precision_at_10",
    "recall_at_10",
    "map_at_10",
    "coverage",
    "catalogue_coverage_at_10",
    "novelty_mean_popularity_rank",
    "genre_diversity_at_10",
)


def _print_summary(results: dict[str, Any]) -> None:
    training = results["training"]
    champion, baseline = training["champion"], training["popularity_baseline"]
    print("\n=== filmrec benchmark ===")
    print(
        "training wall time (bundled MovieLens, default search): "
        f"{training['training_wall_seconds']} s  (load+sync {training['load_and_sync_seconds']} s)"
    )
    print(f"champion: {training['chosen_family']} {training['chosen_params']}")
    print(f"{'metric':<30}{'champion':>10}{'popularity':>12}")
    for metric in SUMMARY_METRICS:
        print(f"{metric:<30}{champion[metric]:>10.4f}{baseline[metric]:>12.4f}")
    for name, family in training["families"].items():
        if family["skipped_reason"]:
            print(f"  {name}: skipped: {family['skipped_reason']}")
            continue
        print(
            f"  {name}: best validation nDCG@10 {family['best_validation_ndcg']} over {family['trials']} "
            f"trials ({family['pruned']} pruned, {family['search_seconds']} s); "
            f"test nDCG@10 {family['test']['ndcg_at_10']:.4f}"
        )
    print(
        f"nDCG@10 ratio vs popularity: {training['ndcg_ratio_vs_popularity']}  "
        f"(target {training['quality_target']}: {'MET' if training['quality_target_met'] else 'NOT MET'}; "
        f"{training['ndcg_target']}: {'MET' if training['ndcg_target_met'] else 'NOT MET'})"
    )
    api = results["api"]
    if "skipped" in api:
        print(f"API: skipped ({api['skipped']})")
    else:
        print(f"API throughput ({api['cache']} cache, one uvicorn worker each):")
        for key in ("bare", "cache_hit", "model"):
            row = api[key]
            ratio = api["ratio_vs_bare"].get(key, 1.0)
            print(
                f"  {row['name']:<30} {row['requests_per_second']:>8.1f} req/s  p50 {row['p50_ms']:7.2f} ms"
                f"  p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}  x{ratio} of bare  ({row['tool']})"
            )
    for name, section in results.get("extra", {}).items():
        if name == "realtime" and "skipped" not in section:
            _print_realtime(section)
        else:
            print(f"{name}: {json.dumps(section)[:400]}")


def _print_realtime(section: dict[str, Any]) -> None:
    quality, visibility = section["fold_in_quality"], section["event_to_visibility"]
    p50, p99, worst = (visibility[f"{name}_seconds"] * 1000 for name in ("p50", "p99", "max"))
    print(f"real-time loop ({quality['protocol']}):")
    print(
        f"  nDCG@10 fold-in users {quality['ndcg_at_10_fold_in_users']:.4f}, in-model users "
        f"{quality['ndcg_at_10_in_model_users']:.4f} (x{quality['fold_in_vs_in_model']}), popularity on "
        f"held-out {quality['ndcg_at_10_popularity_on_held_out']:.4f} (x{quality['fold_in_vs_popularity']}); "
        f"target {quality['target']}: {'MET' if quality['target_met'] else 'NOT MET'}"
    )
    print(
        f"  event to visibility over {visibility['probes']} probes, "
        f"{visibility['background_events_per_second']:g} background events/s: "
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms; "
        f"target {visibility['target']}: {'MET' if visibility['target_met'] else 'NOT MET'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15, help="duration of each HTTP load run")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--root", type=Path, default=Path("var/bench"))
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["api", "streaming", "realtime", "airflow", "peers", "blas"],
        help="leave a section out (recorded as skipped)",
    )
    parser.add_argument("--scale", action="store_true", help="also run the scale curve (an hour or more)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("py4j", "mlflow", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

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
    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "api": lambda: run_api_bench(env, user_ids, seconds=args.seconds),
        "streaming": lambda: _streaming(settings, files),
        "realtime": lambda: _realtime(settings, files, results["training"]["chosen_params"]),
        "airflow": _airflow,
        "peers": _peers,
        "blas": _blas,
    }
    if args.scale:
        sections["scale"] = _scale
    results["extra"] = {}
    for name, run in sections.items():
        section = {"skipped": "--skip"} if name in args.skip else _optional(name, run)
        if name == "api":
            results["api"] = section
        else:
            results["extra"][name] = section
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    _print_summary(results)
    print(f"\nresults written to {args.out}")
    return 0 if results["training"]["quality_target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
