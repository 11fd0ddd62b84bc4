"""Throughput of the streaming path: replay producer -> Kafka, and Kafka -> Delta.

A benchmark, not a test: it reports numbers for `make bench`; a run in which any
event failed (refused, unacknowledged, quarantined, or sent but not written)
publishes no events/s (streaming_report).
Each run uses a fresh topic and a throwaway lakehouse, so it measures a cold load
and never touches the real tables. Without a configured or running broker it starts
a private one for the duration.

    python -m bench.streaming [--ratings PATH] [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devstack import broker
from devstack.processes import free_port
from filmrec.config import Settings, get_settings
from filmrec.ingestion.kafka_ingest import run_ingestion
from filmrec.ingestion.replay import DEFAULT_RATINGS, replay
from filmrec.ingestion.topics import DEFAULT_BOOTSTRAP_SERVERS


@contextlib.contextmanager
def bench_broker(settings: Settings, scratch: Path) -> Iterator[str]:
    """The configured broker, else a running `make kafka-up` one, else a private one."""
    if settings.kafka_bootstrap_servers:
        yield settings.kafka_bootstrap_servers
        return
    if broker.serves_metadata(DEFAULT_BOOTSTRAP_SERVERS, timeout=2):
        yield DEFAULT_BOOTSTRAP_SERVERS
        return
    layout = broker.BrokerLayout(
        root=scratch / "kafka",
        libs=broker.default_layout().libs,
        port=free_port(),
        controller_port=free_port(),
    )
    try:
        yield broker.up(layout)
    finally:
        broker.down(layout)


def _delete_topic(bootstrap_servers: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    futures = AdminClient({"bootstrap.servers": bootstrap_servers}).delete_topics([topic])
    with contextlib.suppress(Exception):  # best effort: the numbers are already taken
        futures[topic].result(timeout=30)


def bench_streaming(
    ratings: Path = DEFAULT_RATINGS, *, settings: Settings | None = None, limit: int | None = None
) -> dict[str, Any]:
    """Events/s of the replay producer and of one availableNow Kafka -> Delta ingestion."""
    from filmrec.lakehouse.spark_session import build_spark

    settings = settings or get_settings()
    with (
        tempfile.TemporaryDirectory(prefix="filmrec-bench-") as scratch,
        bench_broker(settings, Path(scratch)) as bootstrap,
    ):
        run_settings = settings.model_copy(
            update={
                "kafka_bootstrap_servers": bootstrap,
                "kafka_topic": f"bench-ratings-{uuid.uuid4().hex[:8]}",
                "lakehouse_path": Path(scratch) / "lakehouse",
            }
        )
        try:
            produced = replay(ratings, settings=run_settings, limit=limit, progress=False)
            spark = build_spark(app_name="filmrec-bench", settings=run_settings)
            ingested = run_ingestion(spark, run_settings)
        finally:
            _delete_topic(bootstrap, run_settings.kafka_topic)
    return streaming_report(
        str(ratings),
        sent=produced.sent, failed=produced.failed, invalid=produced.invalid,
        replay_seconds=produced.seconds, written=ingested.written, quarantined=ingested.quarantined,
        ingest_seconds=ingested.seconds, batches=ingested.batches,
    )  # fmt: skip


def streaming_report(
    ratings: str, *, sent: int, failed: int, invalid: int, replay_seconds: float, written: int,
    quarantined: int, ingest_seconds: float, batches: int,
) -> dict[str, Any]:  # fmt: skip
    """The section's numbers; events/s only when every event went through.

    Complete means no row was refused by the contract, none failed delivery, none was
    quarantined, and Delta took exactly what the broker acknowledged (written == sent).
    A run that lost or refused events would be "fast" for the wrong reason: it
    publishes no rate, and says what went wrong.
    """
    problems = [
        f"{count} {what}"
        for count, what in (
            (invalid, "rows refused by the contract"),
            (failed, "events not acknowledged by the broker"),
            (quarantined, "events quarantined"),
        )
        if count
    ]
    if written != sent:
        problems.append(f"Delta wrote {written} of the {sent} events the broker acknowledged")
    complete = not problems
    return {
        "ratings": ratings,
        "events": sent,
        "complete": complete,
        "failures": problems,
        "replay_events_per_s": round(sent / replay_seconds, 1) if complete and replay_seconds > 0 else None,
        "replay_seconds": round(replay_seconds, 2),
        "ingest_events_per_s": round(written / ingest_seconds, 1)
        if complete and ingest_seconds > 0
        else None,
        "ingest_seconds": round(ingest_seconds, 2),
        "replay_failed": failed,
        "replay_invalid": invalid,
        "ingest_written": written,
        "ingest_quarantined": quarantined,
        "ingest_batches": batches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark Kafka replay and ingestion.")
    parser.add_argument("--ratings", type=Path, default=DEFAULT_RATINGS)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    report = bench_streaming(args.ratings, limit=args.limit)
    print(json.dumps(report, indent=2))
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
