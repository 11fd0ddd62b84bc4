"""Kafka -> Delta ingestion: Spark Structured Streaming, trigger availableNow, exactly once.

One run reads everything the checkpoint has not seen yet, in micro-batches:
malformed or invalid messages go to quarantine (payload, topic, partition, offset,
reason), valid ones to raw ratings (deduplicated by event_id) and are merged into
clean ratings. Nothing invalid stops the job.

Exactly once. Spark records a batch's offsets before running it and commits it after
foreachBatch returns, so a killed run re-executes the last batch with the same
offsets. Every write in a batch is idempotent for that:
  * quarantine rows are keyed by a hash of topic/partition/offset;
  * raw rows by event_id (`write_ratings` adds only unseen ids);
  * the one non-idempotent gap - raw written, clean merge not yet - is closed by a
    per-batch "started" marker: a re-executed batch re-merges its events from raw
    into clean, which is a no-op for rows clean already has.

    python -m filmrec.streaming.ingest [--max-offsets-per-trigger N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filmrec.config import Settings, get_settings
from filmrec.contract import QuarantineReason
from filmrec.lakehouse.ratings import append_quarantine, merge_into_clean, write_ratings
from filmrec.lakehouse.tables import LakehouseTables, ensure_all_tables, read_table
from filmrec.lakehouse.validation import validate_ratings
from filmrec.streaming.events import WIRE_FIELDS, WIRE_REQUIRED_FIELDS
from filmrec.streaming.topics import bootstrap_servers

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

CHECKPOINT_NAME = "kafka_ratings"
CONSUMER_GROUP = "filmrec-ingest"  # offsets mirrored here so standard Kafka tools see the lag
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MAX_SOURCE_LENGTH = 64  # as in contract.RatingEvent
INVALID = QuarantineReason.INVALID_EVENT.value


@dataclass
class IngestionReport:
    topic: str
    read: int = 0
    written: int = 0
    duplicates: int = 0
    quarantined: int = 0
    clean_upserts: int = 0
    batches: int = 0
    lag: int = 0
    lag_by_partition: dict[int, int] = field(default_factory=dict)
    processed_offsets: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_second": round(self.events_per_second, 1)}


def checkpoint_dir(tables: LakehouseTables) -> Path:
    return tables.checkpoints / CHECKPOINT_NAME


def _envelope_reason(payload: Column, event: Column) -> Column:
    """Why a message is not a rating event at all (null when its envelope is fine).

    The rules mirror `events.deserialize_event`; field values are left to
    `validate_ratings`, shared with the CSV loader.
    """
    from pyspark.sql import functions as F

    keys = F.json_object_keys(payload)  # null for invalid JSON or a non-object
    unknown = F.array_except(keys, F.array(*[F.lit(name) for name in WIRE_FIELDS]))
    missing = F.array_compact(
        F.array(*[F.when(event[name].isNull(), F.lit(name)) for name in WIRE_REQUIRED_FIELDS])
    )
    source_length = F.length(event["source"])
    return (
        F.when(keys.isNull(), F.lit(f"{INVALID}: malformed JSON"))
        .when(F.size(unknown) > 0, F.concat(F.lit(f"{INVALID}: unknown fields "), F.array_join(unknown, ",")))
        .when(
            event["schema_version"].isNotNull() & (F.trim(event["schema_version"]) != "1"),
            F.lit(f"{INVALID}: unsupported schema_version"),
        )
        .when(F.size(missing) > 0, F.concat(F.lit(f"{INVALID}: missing "), F.array_join(missing, ",")))
        .when(~F.lower(F.trim(event["event_id"])).rlike(UUID_PATTERN), F.lit(f"{INVALID}: event_id"))
        .when((source_length < 1) | (source_length > MAX_SOURCE_LENGTH), F.lit(f"{INVALID}: source"))
    )


def parse_messages(messages: DataFrame) -> DataFrame:
    """Kafka rows (value, topic, partition, offset) -> typed events with `reason`.

    Every JSON field is read as a string, so a wrongly typed value reaches
    `validate_ratings` as text and is rejected with a precise reason instead of
    vanishing into a null.
    """
    from pyspark.sql import functions as F

    schema = ", ".join(f"{name} STRING" for name in WIRE_FIELDS)
    payload = F.col("value").cast("string")
    frame = messages.select(
        "topic",
        "partition",
        "offset",
        payload.alias("payload"),
        F.from_json(payload, schema).alias("event"),
    )
    envelope = _envelope_reason(F.col("payload"), F.col("event"))
    checked = validate_ratings(
        frame.select(
            "*",
            F.col("event.user_id").alias("user_id_raw"),
            F.col("event.movie_id").alias("movie_id_raw"),
            F.col("event.rating").alias("rating_raw"),
            F.col("event.rated_at").alias("rated_at_raw"),
        )
    )
    # Malformed JSON: the field checks would only repeat "everything is null".
    combined = F.when(F.json_object_keys("payload").isNull(), envelope).otherwise(
        F.concat_ws(";", envelope, F.col("reason"))
    )
    return checked.withColumn("reason", F.when(combined != "", combined))


def _quarantine_rows(rejected: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return rejected.select(
        # One row per Kafka message: a re-executed batch adds nothing.
        F.sha2(F.concat_ws("|", "topic", "partition", "offset"), 256).alias("quarantine_id"),
        F.concat(F.lit("kafka:"), F.col("topic")).alias("source"),
        "payload",
        "reason",
        "topic",
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
        F.current_timestamp().alias("quarantined_at"),
    )


def _raw_rows(valid: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return valid.select(
        F.lower(F.trim("event.event_id")).alias("event_id"),
        "user_id",
        "movie_id",
        "rating",
        "rated_at",
        F.col("event.source").alias("source"),
        F.current_timestamp().alias("ingested_at"),
    )


class BatchWriter:
    """The foreachBatch function; accumulates counts over one run."""

    def __init__(self, spark: SparkSession, tables: LakehouseTables, report: IngestionReport) -> None:
        self.spark = spark
        self.tables = tables
        self.report = report
        self.markers = checkpoint_dir(tables) / "_filmrec_batches"

    def _forget_committed(self, batch_id: int) -> None:
        # Spark commits batch N-1 before it starts batch N: older markers are moot.
        for marker in self.markers.glob("*.*"):
            if int(marker.stem) < batch_id:
                marker.unlink(missing_ok=True)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        self.markers.mkdir(parents=True, exist_ok=True)
        self._forget_committed(batch_id)
        started, done = self.markers / f"{batch_id}.started", self.markers / f"{batch_id}.done"
        if done.exists():
            return  # fully written by a run that died before Spark committed the batch
        retry = started.exists()
        started.touch()

        checked = parse_messages(batch).persist()
        try:
            read = checked.count()
            quarantined = append_quarantine(
                self.spark, self.tables, _quarantine_rows(checked.where(F.col("reason").isNotNull()))
            )
            valid = _raw_rows(checked.where(F.col("reason").isNull()))
            counts = write_ratings(self.spark, self.tables, valid)
            clean_upserts = counts.clean_upserts
            if retry and counts.duplicates:
                # The killed attempt may have written raw but not clean: re-merge this
                # batch's events as raw holds them (idempotent for rows clean has).
                already = read_table(self.spark, self.tables.raw_ratings).join(
                    valid.select("event_id").distinct(), "event_id", "left_semi"
                )
                clean_upserts += merge_into_clean(self.spark, self.tables, already)
        finally:
            checked.unpersist()
        done.touch()

        self.report.batches += 1
        self.report.read += read
        self.report.written += counts.written
        self.report.duplicates += counts.duplicates
        self.report.quarantined += quarantined
        self.report.clean_upserts += clean_upserts
        print(
            f"batch {batch_id}: read {read}, written {counts.written}, "
            f"duplicates {counts.duplicates}, quarantined {quarantined}",
            file=sys.stderr,
        )


def processed_offsets(checkpoint: Path, topic: str) -> dict[int, int]:
    """Next offset to read per partition, from the last batch Spark committed.

    Spark's Kafka source does not commit to a consumer group; its checkpoint is the
    truth. Offset files are "v1", batch metadata, then one JSON line per source.
    """
    commits = [int(path.name) for path in (checkpoint / "commits").glob("*") if path.name.isdigit()]
    if not commits:
        return {}
    lines = (checkpoint / "offsets" / str(max(commits))).read_text().splitlines()
    offsets = json.loads(lines[-1]).get(topic, {})
    return {int(partition): int(offset) for partition, offset in offsets.items()}


def kafka_lag(
    settings: Settings, topic: str, processed: dict[int, int], *, commit_group: str | None = None
) -> dict[int, int]:
    """Messages per partition not yet processed (high watermark minus processed offset).

    With `commit_group`, the processed offsets are also committed to that consumer
    group, so `kafka-consumer-groups` and lag exporters show the same lag.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers(settings),
            "group.id": commit_group or f"filmrec-lag-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
        lag = {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            lag[partition] = max(0, high - max(low, processed.get(partition, low)))
        if commit_group and processed:
            consumer.commit(
                offsets=[TopicPartition(topic, p, o) for p, o in processed.items()],
                asynchronous=False,
            )
        return lag
    finally:
        consumer.close()


def _write_status(tables: LakehouseTables, status: dict[str, Any]) -> None:
    path = tables.ingestion_status
    path.parent.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = {}
    status.setdefault("last_success_at", previous.get("last_success_at"))
    # Running totals across runs, so monitoring can expose them as counters.
    totals = dict(previous.get("totals") or {})
    for outcome in ("read", "written", "duplicates", "quarantined"):
        totals[outcome] = int(totals.get(outcome, 0)) + int(status.get(outcome) or 0)
    status["totals"] = totals
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(status, indent=2, sort_keys=True, default=str) + "\n")
    partial.replace(path)  # atomic: a monitor never reads half a file


def run_ingestion(
    spark: SparkSession,
    settings: Settings | None = None,
    *,
    tables: LakehouseTables | None = None,
    topic: str | None = None,
    max_offsets_per_trigger: int | None = None,
    fail_on_data_loss: bool = True,
) -> IngestionReport:
    """Run one availableNow ingestion; write and return its report (and the status file)."""
    settings = settings or get_settings()
    tables = tables or LakehouseTables(settings.lakehouse_path)
    topic = topic or settings.kafka_topic
    report = IngestionReport(topic=topic)
    started_at = datetime.now(UTC)
    status: dict[str, Any] = {
        "job": CHECKPOINT_NAME,
        "topic": topic,
        "bootstrap_servers": bootstrap_servers(settings),
        "started_at": started_at.isoformat(),
    }
    clock = time.perf_counter()
    try:
        ensure_all_tables(spark, tables)
        reader = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap_servers(settings))
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            # True: offsets deleted by retention before we read them are a gap, and
            # a gap must stop the job rather than pass silently.
            .option("failOnDataLoss", str(fail_on_data_loss).lower())
        )
        if max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
        query = (
            reader.load()
            .writeStream.queryName(f"{CHECKPOINT_NAME}_{topic}".replace("-", "_"))
            .foreachBatch(BatchWriter(spark, tables, report))
            .option("checkpointLocation", str(checkpoint_dir(tables)))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
        report.seconds = time.perf_counter() - clock
        report.processed_offsets = processed_offsets(checkpoint_dir(tables), topic)
        report.lag_by_partition = kafka_lag(
            settings, topic, report.processed_offsets, commit_group=CONSUMER_GROUP
        )
        report.lag = sum(report.lag_by_partition.values())
    except Exception as error:
        status.update(
            status="failed",
            error=f"{type(error).__name__}: {error}"[:2000],
            finished_at=datetime.now(UTC).isoformat(),
            **_counts(report),
        )
        _write_status(tables, status)
        raise
    finished_at = datetime.now(UTC).isoformat()
    status.update(status="ok", finished_at=finished_at, last_success_at=finished_at, **_counts(report))
    _write_status(tables, status)
    return report


def _counts(report: IngestionReport) -> dict[str, Any]:
    counts = report.as_dict()
    counts.pop("topic")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ingest rating events from Kafka into Delta.")
    parser.add_argument("--topic", default=None, help="default: KAFKA_RATINGS_TOPIC (ratings)")
    parser.add_argument(
        "--max-offsets-per-trigger",
        type=int,
        default=None,
        help="cap each micro-batch (default: one batch for everything)",
    )
    parser.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="skip offsets that Kafka retention already deleted instead of failing",
    )
    args = parser.parse_args(argv)

    from filmrec.lakehouse.spark_session import build_spark

    settings = get_settings()
    spark = build_spark(app_name="filmrec-ingest", settings=settings)
    report = run_ingestion(
        spark,
        settings,
        topic=args.topic,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        fail_on_data_loss=not args.allow_data_loss,
    )
    print(
        f"read {report.read}, written {report.written}, duplicates {report.duplicates}, "
        f"quarantined {report.quarantined}, clean upserts {report.clean_upserts}, "
        f"batches {report.batches}, lag {report.lag} in {report.seconds:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
