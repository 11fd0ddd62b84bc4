"""Replay a MovieLens ratings.csv into Kafka, at a given rate or as fast as possible.

Each row's event_id is the hash of its content (`contract.event_id_for`), the same id
the CSV loader gives it, so replaying a file twice, or replaying a file that was
also loaded from CSV, adds nothing to the lakehouse.

    python -m filmrec.ingestion.replay --ratings data/ml-latest-small/ratings.csv --rate 500
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from filmrec.config import Settings, get_settings
from filmrec.ingestion.contract import RatingEvent, event_id_for
from filmrec.ingestion.events import encode_event
from filmrec.ingestion.producer import make_producer
from filmrec.ingestion.topics import bootstrap_servers, ensure_topic

if TYPE_CHECKING:
    from confluent_kafka import Message

DEFAULT_RATINGS = Path("data/ml-latest-small/ratings.csv")
REPLAY_SOURCE = "replay"


@dataclass(frozen=True)
class ReplayReport:
    topic: str
    sent: int  # acknowledged by the broker
    failed: int  # produced but not acknowledged (delivery error or flush timeout)
    invalid: int  # rows that break the contract: never sent
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "events_per_second": round(self.events_per_second, 1)}


def read_events(path: Path, *, limit: int | None = None) -> Iterator[RatingEvent | None]:
    """Events from a MovieLens ratings.csv; None for a row that breaks the contract."""
    with path.open(newline="", encoding="utf-8") as handle:
        yielded = 0
        for line_number, row in enumerate(csv.reader(handle)):
            if line_number == 0 and row and row[0].strip().lower() == "userid":
                continue  # header
            if not row:
                continue  # blank line
            if limit is not None and yielded >= limit:
                return
            yielded += 1
            yield row_to_event(row)


def row_to_event(row: list[str]) -> RatingEvent | None:
    try:
        user_id, movie_id, rating, timestamp = (int(row[0]), int(row[1]), float(row[2]), int(row[3]))
        event_id = event_id_for(user_id=user_id, movie_id=movie_id, rating=rating, rated_at_epoch=timestamp)
        return RatingEvent(
            event_id=uuid.UUID(event_id),
            user_id=user_id,
            movie_id=movie_id,
            rating=rating,
            rated_at=datetime.fromtimestamp(timestamp, UTC),
            source=REPLAY_SOURCE,
        )
    except (ValueError, IndexError, ValidationError, OverflowError, OSError):
        return None


def _count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def replay(
    path: Path,
    *,
    settings: Settings | None = None,
    topic: str | None = None,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = True,
    flush_timeout_s: float = 60.0,
) -> ReplayReport:
    """Publish every row of `path` (up to `limit`), at most `rate` events per second."""
    from tqdm import tqdm

    settings = settings or get_settings()
    topic = topic or settings.kafka_topic
    ensure_topic(settings, topic=topic)
    # A generous delivery timeout: a bulk load waits out a short broker hiccup.
    producer = make_producer(
        settings,
        delivery_timeout_s=120.0,
        client_id="filmrec-replay",
        **{"linger.ms": 20, "batch.size": 1_000_000},
    )
    outcome = {"sent": 0, "failed": 0}

    def on_delivery(error: object, _message: Message) -> None:
        outcome["failed" if error is not None else "sent"] += 1

    total = _count_rows(path)
    total = min(total, limit) if limit is not None else total
    invalid = produced = 0
    started = time.perf_counter()
    with tqdm(total=total, unit="ev", desc=f"replay -> {topic}", disable=not progress) as bar:
        for index, event in enumerate(read_events(path, limit=limit)):
            if rate:
                # Pace against the start time, not the previous send, so that the
                # average rate holds even when single sends are slow.
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            bar.update(1)
            if event is None:
                invalid += 1
                continue
            key, value = encode_event(event)
            while True:
                try:
                    producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.1)  # local queue full: let deliveries drain it
            produced += 1
            producer.poll(0)
        undelivered = producer.flush(flush_timeout_s)
    seconds = time.perf_counter() - started
    # Messages still queued after the flush timeout never got a delivery report.
    failed = outcome["failed"] + undelivered
    return ReplayReport(topic=topic, sent=outcome["sent"], failed=failed, invalid=invalid, seconds=seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replay a MovieLens ratings.csv into Kafka.")
    parser.add_argument("--ratings", type=Path, default=DEFAULT_RATINGS, help="ratings.csv path")
    parser.add_argument("--rate", type=float, default=None, help="events per second (default: max)")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N rows")
    parser.add_argument("--topic", default=None, help="default: KAFKA_RATINGS_TOPIC (ratings)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not args.ratings.exists():
        parser.error(f"{args.ratings} does not exist")

    settings = get_settings()
    report = replay(
        args.ratings,
        settings=settings,
        topic=args.topic,
        rate=args.rate,
        limit=args.limit,
        progress=not args.no_progress,
    )
    print(
        f"sent {report.sent}, failed {report.failed}, invalid rows skipped {report.invalid} "
        f"to {report.topic} on {bootstrap_servers(settings)} in {report.seconds:.1f}s "
        f"({report.events_per_second:,.0f} events/s)"
    )
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
