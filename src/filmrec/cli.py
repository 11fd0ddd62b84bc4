"""The `filmrec` command: load data, train, serve, and the one-command demo."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from filmrec.config import Settings, get_settings
from filmrec.data.movielens import MovieLensFiles

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from filmrec.training.params import SearchSpace

log = logging.getLogger("filmrec")


def _step(number: int, total: int, text: str) -> None:
    print(f"\n[{number}/{total}] {text}", flush=True)


def _files(args: argparse.Namespace) -> MovieLensFiles:
    from filmrec.data.movielens import find_bundled_dir, verify_checksums

    if args.ratings is None:
        bundled = find_bundled_dir()
        bad = verify_checksums(bundled)
        if bad:
            raise SystemExit(f"bundled data does not match SHA256SUMS: {', '.join(bad)}")
        return MovieLensFiles.in_directory(bundled)
    movies = args.movies or (args.ratings.parent / "movies.csv")
    links = args.links or (args.ratings.parent / "links.csv")
    return MovieLensFiles(
        ratings=args.ratings,
        movies=movies if movies.exists() else None,
        links=links if links.exists() else None,
    )


def _spark(settings: Settings, name: str) -> SparkSession:
    from filmrec.lakehouse.spark_session import build_spark

    return build_spark(app_name=name, settings=settings)


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from filmrec.pipeline import load_movielens, sync_metadata

    spark = _spark(settings, "filmrec-load")
    for report in load_movielens(spark, settings, _files(args)):
        print(json.dumps(report.as_dict()))
    sync_metadata(spark, settings)
    return 0


def cmd_sync_movies(_args: argparse.Namespace, settings: Settings) -> int:
    from filmrec.pipeline import sync_metadata

    print(f"movies new or changed: {sync_metadata(_spark(settings, 'filmrec-sync'), settings)}")
    return 0


def _search(args: argparse.Namespace, settings: Settings) -> SearchSpace:
    """The search the command asked for, with its budget (flags, then Settings)."""
    from filmrec.orchestration.spark_jobs import parse_search

    return parse_search(
        args.search or settings.training_search,
        trials=args.trials or settings.training_trials,
        seconds=args.search_seconds or settings.training_search_seconds,
    )


def search_args(parser: argparse.ArgumentParser) -> None:
    from filmrec.training.params import SEARCHES  # loads numpy: see main

    parser.add_argument(
        "--search", choices=sorted(SEARCHES), default=None, help="default: FILMREC_TRAINING_SEARCH"
    )
    parser.add_argument("--trials", type=int, default=None, help="Optuna trials per model family")
    parser.add_argument("--search-seconds", type=float, default=None, help="search seconds per model family")


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from filmrec.pipeline import train

    result = train(_spark(settings, "filmrec-train"), settings, search=_search(args, settings))
    print(json.dumps(result.as_dict(), indent=2, default=str))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from filmrec.serving.server import serve

    # API_WORKERS processes; the launcher refuses a worker count the settings cannot serve.
    serve(settings, port=args.port)
    return 0


def _print_recommendations(base_url: str, user_ids: list[int]) -> None:
    import httpx

    with httpx.Client(base_url=base_url, timeout=10) as client:
        for user_id in user_ids:
            body = client.get(f"/recommendations/{user_id}", params={"k": 5}).json()
            print(f"\n  user {user_id} ({body['strategy']}, model v{body['model_version']}):")
            for rank, item in enumerate(body["items"], start=1):
                year = f" ({item['year']})" if item["year"] else ""
                genres = ", ".join(item["genres"])
                print(f"    {rank}. {item['title']}{year}  [{genres}]  score={item['score']:.3f}")


def _wait_ready(base_url: str, *, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the API at {base_url} did not become ready in {timeout:.0f}s")


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Load -> sync -> train -> serve, printing each step and a few recommendations."""
    import uvicorn

    from filmrec.pipeline import load_movielens, sync_metadata, train
    from filmrec.serving.app import create_app
    from filmrec.serving.server import proxy_options

    total = 5
    _step(1, total, "Starting Spark with Delta Lake (the first run downloads the jars) ...")
    spark = _spark(settings, "filmrec-demo")
    files = _files(args)
    _step(
        2,
        total,
        f"Loading {files.ratings} into the Delta lakehouse at {settings.lakehouse_path} ...",
    )
    for report in load_movielens(spark, settings, files):
        print(
            f"  {report.source}: read {report.read}, new {report.written}, "
            f"already there {report.duplicates}, quarantined {report.quarantined}"
        )
    _step(3, total, f"Copying movie metadata to {settings.effective_database_url} ...")
    print(f"  movies new or changed: {sync_metadata(spark, settings)}")
    _step(4, total, "Searching ALS and EASE on Spark, evaluating, logging to MLflow ...")
    result = train(spark, settings, search=_search(args, settings))
    spark.stop()
    m, b = result.metrics, result.baseline_metrics
    print(f"  model v{result.model_version} (run {result.run_id}), data version {result.data_version}")
    print(
        f"  nDCG@10 {m['ndcg_at_10']:.4f} vs popularity {b['ndcg_at_10']:.4f} "
        f"(x{result.ndcg_ratio:.2f}); promotion: {result.promotion['reason']}"
    )

    port = args.port or settings.api_port
    base_url = f"http://{settings.api_host}:{port}"
    _step(5, total, f"Starting the API on {base_url} ...")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.api_host,
            port=port,
            log_level="warning",
            **proxy_options(settings),  # as `filmrec serve`: the read limit's addresses
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait_ready(base_url)
    _print_recommendations(base_url, [1, 2, 3])
    print(f"\n  Try it:  curl '{base_url}/recommendations/1?k=10'")
    if settings.kafka_bootstrap_servers:
        print(
            f"  Rate:    curl -X POST {base_url}/ratings -H 'Content-Type: application/json' "
            f"-H 'X-API-Key: {'demo' if not settings.api_keys else '<your key>'}' "
            """-d '{"user_id": 1, "movie_id": 318, "rating": 4.5}'"""
        )
        print("           (the next /recommendations/1 folds it in; `make ingest` lands it in Delta)")
    print(f"  Docs:    {base_url}/docs    Metrics: {base_url}/metrics")
    if not args.serve:
        server.should_exit = True
        thread.join(timeout=10)
        return 0
    print("\n  Serving until Ctrl-C ...", flush=True)
    try:
        while thread.is_alive():
            thread.join(timeout=0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(timeout=10)
    return 0


def cmd_generate(args: argparse.Namespace, _settings: Settings) -> int:
    from filmrec.data.synthetic import run

    return run(args)


def cmd_jars(_args: argparse.Namespace, settings: Settings) -> int:
    from filmrec.lakehouse.jars import fetch_jars

    for path in fetch_jars(settings.jars_dir):
        print(path)
    return 0


def cmd_api_key(args: argparse.Namespace, _settings: Settings) -> int:
    """`api-key new NAME`: a fresh key and its FILMREC_API_KEYS entry; `api-key hash`: a key's entry."""
    from filmrec.serving.api_keys import hash_key, new_key

    if args.action == "new":
        key = new_key()
        print(f"key (give it to the client, it is not stored anywhere): {key}")
    else:
        # From stdin, not argv: a key on the command line lands in the shell history.
        key = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("API key: ")
        if not key:
            print("no key given", file=sys.stderr)
            return 2
    print(f"FILMREC_API_KEYS entry: {args.name}:{hash_key(key)}")
    return 0


def cmd_registry(args: argparse.Namespace, settings: Settings) -> int:
    """`registry migrate`: a registry made under the former names, brought to the current ones.

    `registry hash`: record the artifacts' SHA-256 on a version registered before the
    API checked it (the champion unless --version), so the API serves it again.
    """
    from filmrec.model.registry import TAG_ARTIFACTS_SHA256, migrate_registry, registry_client

    client = registry_client(settings)
    if args.action == "hash":
        from filmrec.model.pyfunc import record_artifacts_sha256

        version = args.version or str(
            client.get_model_version_by_alias(settings.model_name, settings.champion_alias).version
        )
        digest = record_artifacts_sha256(client, name=settings.model_name, version=version)
        print(f"{settings.model_name} v{version}: {TAG_ARTIFACTS_SHA256}={digest}")
        return 0
    done = migrate_registry(client, settings)
    print("\n".join(done) if done else "nothing to migrate")
    return 0


def build_parser() -> argparse.ArgumentParser:
    # Here, not at the top: both load numpy (see main).
    from filmrec.data import synthetic

    parser = argparse.ArgumentParser(prog="filmrec", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ratings", type=Path, default=None, help="ratings.csv (default: bundled MovieLens)")
        p.add_argument("--movies", type=Path, default=None, help="movies.csv (default: beside ratings)")
        p.add_argument("--links", type=Path, default=None, help="links.csv (default: beside ratings)")

    load = sub.add_parser("load", help="load MovieLens-format CSVs into the lakehouse")
    data_args(load)
    load.set_defaults(func=cmd_load)
    sub.add_parser("sync-movies", help="copy Delta movies to the serving database").set_defaults(
        func=cmd_sync_movies
    )
    train = sub.add_parser("train", help="train, evaluate, register and maybe promote")
    search_args(train)
    train.set_defaults(func=cmd_train)
    serve = sub.add_parser("serve", help="run the API")
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="load, train and serve in one go")
    data_args(demo)
    search_args(demo)
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument(
        "--no-serve",
        dest="serve",
        action="store_false",
        help="stop after printing recommendations instead of serving until Ctrl-C (scripts, CI)",
    )
    demo.set_defaults(func=cmd_demo)
    generate = sub.add_parser("generate", help="write a synthetic MovieLens-format data set")
    synthetic.add_arguments(generate)
    generate.set_defaults(func=cmd_generate)
    sub.add_parser("jars", help="fetch the Delta and Kafka jars from Maven Central").set_defaults(
        func=cmd_jars
    )
    api_key = sub.add_parser(
        "api-key", help="make an API key (new) or hash one (hash, read from stdin) for FILMREC_API_KEYS"
    )
    api_key.add_argument("action", choices=["new", "hash"])
    api_key.add_argument("name", nargs="?", default="client", help="the key's name in FILMREC_API_KEYS")
    api_key.set_defaults(func=cmd_api_key)
    registry = sub.add_parser(
        "registry",
        help="migrate: rename a registry's filmrec-als model, experiment and coverage tags; "
        "hash: record a version's artifacts_sha256 tag (one registered before the API checked it)",
    )
    registry.add_argument("action", choices=["migrate", "hash"])
    registry.add_argument("--version", default=None, help="hash: the version (default: the champion's)")
    registry.set_defaults(func=cmd_registry)
    return parser


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] == ["serve"]:
        # A serving process: one OpenBLAS thread unless set (filmrec/serving/__init__.py
        # says why). OpenBLAS reads the variable once, when numpy loads, which building
        # the parser does: so before it. The other commands keep OpenBLAS's default.
        import filmrec.serving  # noqa: F401
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Quiet the chatty libraries; our own steps say what is happening.
    for noisy in ("py4j", "mlflow", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return int(args.func(args, get_settings()) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
