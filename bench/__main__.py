"""`make bench`: measure, print, and write bench/results/latest.json.

Sections: training (wall time and quality on the bundled MovieLens), the API
(/recommendations, cache hit and model, each against its like serving the same bytes:
the hit path against a raw ASGI app, the model path against the fastest plain FastAPI
route; in alternating rounds of the same run, same load generator, same server
settings, for 1 and 2 worker processes; the model path also for a champion of every
movie rated 3 times; the hit path's p99 at half of its peak, offered open loop), and
the optional sections other parts of the platform provide. Opt-in: --soak MINUTES,
--swap (a model swap under load), --outages. A section that cannot run here says so
and why ("skipped"); a section that raises is "crashed" and fails the run (exit 1),
whatever the others measured. A load run with any failed request publishes no
requests/s. Every results file starts with its provenance (bench/provenance.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.api_sections import run_api_bench, run_outages, run_soak, run_swap
from bench.http_load import READ_LOAD_LIMIT
from bench.provenance import provenance, write_results
from bench.training import bench_settings, run_training_bench
from filmrec.config import get_settings
from filmrec.data.movielens import MovieLensFiles, find_bundled_dir


def _streaming(settings: Any, files: MovieLensFiles) -> dict[str, Any]:
    """Replay producer and Kafka -> Delta events/s (a private broker when none is configured)."""
    from bench.streaming import bench_streaming

    return bench_streaming(files.ratings, settings=settings)


def _realtime(settings: Any, files: MovieLensFiles, training: dict[str, Any]) -> dict[str, Any]:
    """Fold-in quality on held-out users and event-to-visibility time (a real broker and API).

    Fold-in is ALS's: the ALS parameters the training section's search chose, whichever
    family won, else the default search's ALS start point (training skipped)."""
    from bench.realtime import run_realtime_bench
    from filmrec.training.params import DEFAULT_SEARCH

    als = training.get("families", {}).get("als", {}).get("best_params")
    return run_realtime_bench(settings, files, als or DEFAULT_SEARCH.als_start[0].model_dump())


def _served_ease_params(training: dict[str, Any]) -> dict[str, Any] | None:
    """The champion's EASE parameters when EASE won (the catalogue variant keeps them)."""
    if training.get("chosen_family") == "ease":
        return dict(training["chosen_params"])
    return None


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


log = logging.getLogger("bench")


def run_section(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The section's results; if it raises, "crashed" with the error (never "skipped").

    "skipped" is a section's own verdict that it cannot run here (a missing service),
    returned, not raised. An exception is a bench or product fault: the other sections
    still run and are written, and the run fails (crashed_sections).
    """
    try:
        return run()
    except Exception as error:
        log.exception("section %s crashed", name)
        return {"crashed": f"{type(error).__name__}: {error}"[:500], "section": name}


def crashed_sections(results: dict[str, Any]) -> list[str]:
    """The names of the sections that crashed, training and the API included."""
    sections = {"training": results.get("training", {}), "api": results.get("api", {})}
    sections |= results.get("extra", {})
    return [name for name, section in sections.items() if "crashed" in section]


def exit_code(results: dict[str, Any]) -> int:
    """1 when a section crashed or the training quality target was missed, else 0."""
    if crashed_sections(results):
        return 1
    return 0 if results["training"].get("quality_target_met", True) else 1


SUMMARY_METRICS = (
    "ndcg_at_10",
    "precision_at_10",
    "recall_at_10",
    "map_at_10",
    "scored_coverage_at_10",
    "catalogue_coverage_at_10",
    "novelty_mean_popularity_rank",
    "genre_diversity_at_10",
)


def _print_training(training: dict[str, Any]) -> None:
    champion, baseline = training["champion"], training["popularity_baseline"]
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


def _print_summary(results: dict[str, Any]) -> None:
    training = results["training"]
    print("\n=== filmrec benchmark ===")
    if "crashed" in training:
        print(f"training: CRASHED ({training['crashed']})")
    elif "skipped" in training:
        print(f"training: skipped ({training['skipped']})")
    else:
        _print_training(training)
    api = results["api"]
    if "crashed" in api:
        print(f"API: CRASHED ({api['crashed']})")
    elif "skipped" in api:
        print(f"API: skipped ({api['skipped']})")
    else:
        print(
            f"API throughput ({api['cache']} cache, wrk {api['connections']} connections, "
            f"{api['rounds']} alternating rounds of {api['seconds_per_run']} s):"
        )
        for workers, section in api["by_workers"].items():
            if "skipped" in section:
                print(f"  {workers} worker(s): skipped ({section['skipped']})")
                continue
            models = section.get("served_models", {"model": section["served_model"]})
            served = ", ".join(
                f"{row}: {m['name']} v{m['version']} ({m['n_users']} users, {m['n_items']} movies scored)"
                for row, m in models.items()
            )
            print(f"  {workers} worker(s), {section['body_bytes']}-byte bodies; {served}")
            targets = section.get("targets", {})
            for key in ("raw_bare", "bare", "cache_hit", "model", "model_min3"):
                if key not in section:
                    continue
                row = section[key]
                rate = row["requests_per_second"]
                shown = f"{rate:>8.1f} req/s" if rate is not None else "  FAILED (errors: no result)"
                rounds = ", ".join(
                    f"{r['requests_per_second']}"
                    if r["requests_per_second"] is not None
                    else f"failed({r['errors']})"
                    for r in row["rounds"]
                )
                verdict = ""
                if key in targets:
                    target = targets[key]
                    verdict = f"  x{target['ratio']} of {target['yardstick']}"
                    if target["target"] is not None:
                        met = "met" if target["target_met"] else "NOT met"
                        verdict += f" (target >= {target['target']}: {met})"
                print(
                    f"    {row['name']:<50} {shown}  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms"
                    f"  spread {row.get('spread_pct')}%{verdict}  rounds [{rounds}]"
                )
            _print_paced(section.get("cache_hit_at_half_peak", {}))
    for name, section in results.get("extra", {}).items():
        if "crashed" in section:
            print(f"{name}: CRASHED ({section['crashed']})")
        elif name == "outages" and "skipped" not in section:
            _print_outages(section)
        elif name == "realtime" and "skipped" not in section:
            _print_realtime(section)
        else:
            print(f"{name}: {json.dumps(section)[:400]}")


def _print_paced(paced: dict[str, Any]) -> None:
    if "skipped" in paced:
        print(f"    cache hit at half of its peak: skipped ({paced['skipped']})")
    elif paced:
        hit, bare = paced["cache_hit"], paced["raw_bare"]
        verdict = "met" if paced["p99_target_met"] else "NOT met"
        print(
            f"    cache hit at half of its peak, {paced['generator']}: offered "
            f"{paced['offered_requests_per_second']} req/s, achieved {hit['achieved_requests_per_second']}"
            f" ({'held' if paced['rate_held'] else 'NOT held'}: {paced['rate_rule']}),"
            f" p50 {hit['p50_ms']:.2f} ms, p99 {hit['p99_ms']:.2f} ms"
            f" (target < {paced['p99_target_ms']:g} ms at the held rate: {verdict});"
            f" raw bare at the same rate: p99 {bare['p99_ms']:.2f} ms"
        )


def _print_outages(section: dict[str, Any]) -> None:
    print(f"outages ({section['offered_requests_per_second']:g} req/s offered, {section['generator']}):")
    faults = [("stop", name, section.get(name)) for name in ("redis", "postgresql", "mlflow")]
    hangs = section.get("hangs", {})
    if "skipped" in hangs:
        print(f"  hangs: skipped ({hangs['skipped']})")
    else:
        faults += [("hang", name, hangs.get(name)) for name in ("redis", "postgresql", "mlflow", "kafka")]
    for kind, name, row in faults:
        if row is None:
            continue
        print(
            f"  {kind} {name:<10} {'MET' if row['target_met'] else 'NOT MET'}: reads 5xx {row['reads_5xx']},"
            f" writes 5xx {row['writes_5xx']}, unanswered {row['unanswered']},"
            f" degraded {row['degraded_answers']},"
            f" p99 {row['p99_ms']:.0f} ms (bound {row['p99_bound_ms']:g}), ready"
            f" {row['seconds_from_end_of_fault_to_ready']} s after"
        )


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
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds of bare / cache hit / model"
    )
    parser.add_argument(
        "--api-workers", default="1,2", help="worker counts to measure (comma separated; > 1 needs REDIS_URL)"
    )
    parser.add_argument("--soak", type=float, default=None, metavar="MINUTES", help="soak at half of peak")
    parser.add_argument("--soak-window", type=int, default=30, help="seconds per soak measurement window")
    parser.add_argument("--swap", action="store_true", help="promote another champion under load")
    parser.add_argument(
        "--swap-seconds", type=int, default=15, help="duration of the load run around the swap"
    )
    parser.add_argument(
        "--outages",
        action="store_true",
        help="under load: stop the real Redis, PostgreSQL and MLflow (scripts/services.sh up), and hang "
        "each dependency behind a TCP proxy (--outage-kinds)",
    )
    parser.add_argument(
        "--outage-seconds", type=int, default=60, help="load run per outage (down for a quarter)"
    )
    parser.add_argument(
        "--outage-kinds",
        default="stop,hang",
        help="stop: the native servers stopped and restarted; hang: each of Redis, PostgreSQL, MLflow "
        "and Kafka behind a proxy that stops forwarding (bench/hangs.py)",
    )
    parser.add_argument("--outage-rate", type=float, default=200.0, help="requests/s offered during outages")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--root", type=Path, default=Path("var/bench"))
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["training", "api", "streaming", "realtime", "airflow", "peers", "blas"],
        help="leave a section out (recorded as skipped; training: serve the champion already under --root)",
    )
    parser.add_argument("--scale", action="store_true", help="also run the scale curve (an hour or more)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("py4j", "mlflow", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    settings = bench_settings(args.root.resolve(), get_settings().jars_dir)
    files = MovieLensFiles.in_directory(find_bundled_dir())
    results: dict[str, Any] = {"provenance": provenance()}
    start = time.perf_counter()
    if "training" in args.skip:
        results["training"] = {"skipped": "--skip: the champion already under --root is served"}
    else:
        results["training"] = run_section("training", lambda: run_training_bench(settings, files))
    env = {
        "FILMREC_VAR_DIR": str(settings.var_dir),
        "LAKEHOUSE_PATH": str(settings.lakehouse_path),
        "MODEL_POLL_SECONDS": "3600",
        "FILMREC_READ_RATE_LIMIT": READ_LOAD_LIMIT,
    }
    import pandas as pd

    # REDIS_URL from the environment (bench tooling): with it, the cache and the online
    # state are in Redis and 2 workers can be measured.
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    user_ids = sorted(pd.read_csv(files.ratings, usecols=["userId"])["userId"].unique().tolist())
    movie_ids = sorted(
        pd.read_csv(files.ratings, usecols=["movieId"])["movieId"].value_counts().index[:500].tolist()
    )
    scratch = settings.var_dir / "bench-api"
    workers = [int(count) for count in args.api_workers.split(",") if count.strip()]
    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "api": lambda: run_api_bench(
            env,
            user_ids,
            seconds=args.seconds,
            rounds=args.rounds,
            workers=workers,
            scratch=scratch,
            ease_params=_served_ease_params(results["training"]),
        ),
        "streaming": lambda: _streaming(settings, files),
        "realtime": lambda: _realtime(settings, files, results["training"]),
        "airflow": _airflow,
        "peers": _peers,
        "blas": _blas,
    }
    if args.scale:
        sections["scale"] = _scale
    # Opt-in sections, each also written to its own file beside --out.
    if args.soak:

        def soak() -> dict[str, Any]:
            return run_soak(
                env, user_ids, movie_ids, minutes=args.soak, peak_seconds=min(10, args.soak_window),
                window_seconds=args.soak_window, scratch=scratch / "soak",
            )  # fmt: skip

        sections["soak"] = soak
    if args.swap:
        for count in workers:
            sections[f"swap_{count}_workers"] = lambda count=count: run_swap(  # type: ignore[misc]
                env, user_ids, seconds=args.swap_seconds, scratch=scratch, workers=count
            )
    if args.outages:
        sections["outages"] = lambda: run_outages(
            env, user_ids, movie_ids, seconds=args.outage_seconds, rate=args.outage_rate, workers=workers[0],
            kinds=tuple(kind for kind in args.outage_kinds.split(",") if kind),
        )  # fmt: skip
    results["extra"] = {}
    for name, run in sections.items():
        section = {"skipped": "--skip"} if name in args.skip else run_section(name, run)
        if name == "api":
            results["api"] = section
        else:
            results["extra"][name] = section
        if name in ("soak", "outages") or name.startswith("swap_"):
            write_results(args.out.parent / f"{name}.json", {"provenance": results["provenance"]} | section)
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    write_results(args.out, results)
    _print_summary(results)
    print(f"\nresults written to {args.out}")
    crashed = crashed_sections(results)
    if crashed:
        print(f"FAILED: section(s) crashed: {', '.join(crashed)}")
    return exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
