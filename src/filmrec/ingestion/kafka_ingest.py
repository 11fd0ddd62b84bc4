"""Kafka -> Delta ingestion: Spark Structured Streaming, exactly once, in two modes.

* availableNow (the default, what the scheduled runs use): read everything the
  checkpoint has not seen yet, in micro-batches, and stop;
* continuous (`--continuous`): a long-lived query with a processing-time trigger,
  one micro-batch every INGEST_TRIGGER_SECONDS (30), until SIGTERM/SIGINT stops it
  between two batches.

Either way malformed or invalid messages go to quarantine (payload, topic,
partition, offset, reason), valid ones to raw ratings (deduplicated by event_id)
and are merged into clean ratings. Nothing invalid stops the job.

Exactly once. Spark records a batch's offsets before running it and commits it after
foreachBatch returns, so a killed run re-executes the last batch with the same
offsets, whatever the trigger. Every write in a batch is idempotent for that:
  * quarantine rows are keyed by a hash of topic/partition/offset;
  * raw rows by event_id (`write_ratings` adds only unseen ids);
  * the one non-idempotent gap - raw written, clean merge not yet - is closed by a
    per-batch "started" marker: a re-executed batch re-merges its events from raw
    into clean, which is a no-op for rows clean already has.

One run per checkpoint at a time, in either mode: every run holds the checkpoint's
lock (streaming.checkpoint_lock) and a second one fails at once, naming the holder.
Progress goes to the status file after every batch (streaming.ingest_status).

    python -m filmrec.ingestion.kafka_ingest [--max-offsets-per-trigger N]
    python -m filmrec.ingestion.kafka_ingest --continuous [--trigger-seconds 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from filmrec.config import Settings, get_settings
from filmrec.ingestion.checkpoint_lock import CheckpointBusyError, CheckpointLock
from filmrec.ingestion.contract import (
    EVENT_ID_PATTERN,
    EVENT_SCHEMA_VERSION,
    SOURCE_MAX_LENGTH,
    WRITER_NAME_PATTERN,
    QuarantineReason,
    RatedAtRule,
)
from filmrec.ingestion.events import WIRE_FIELDS, WIRE_REQUIRED_FIELDS
from filmrec.ingestion.ingest_status import HEARTBEAT_SECONDS, IngestionMode, RunState, RunStatus
from filmrec.ingestion.topics import bootstrap_servers
from filmrec.ingestion.validation import fully_matches, validate_ratings
from filmrec.lakehouse.ratings import append_quarantine, merge_into_clean, write_ratings
from filmrec.lakehouse.tables import LakehouseTables, ensure_all_tables, read_table

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "kafka_ratings"
CONSUMER_GROUP = "filmrec-ingest"  # offsets mirrored here so standard Kafka tools see the lag
INVALID = QuarantineReason.INVALID_EVENT.value
# Exit code of a run that found the checkpoint held by another run (sysexits' EX_TEMPFAIL:
# try again later; a supervisor restarting the continuous job does exactly that).
EXIT_CHECKPOINT_BUSY = 75
# How often the driver checks for a stop request and for the query's end.
POLL_SECONDS = 1
# After a stop request, how long to wait for Spark to commit the batch that just ended.
COMMIT_WAIT_SECONDS = 30.0


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

    The rules are `events.deserialize_event`'s, from the contract's constants; field
    values are left to `validate_ratings`, shared with the CSV loader.
    """
    from pyspark.sql import functions as F

    keys = F.json_object_keys(payload)  # null for invalid JSON or a non-object
    unknown = F.array_except(keys, F.array(*[F.lit(name) for name in WIRE_FIELDS]))
    missing = F.array_compact(
        F.array(*[F.when(event[name].isNull(), F.lit(name)) for name in WIRE_REQUIRED_FIELDS])
    )
    source_length = F.length(event["source"])
    writer = event["written_by"]
    return (
        F.when(keys.isNull(), F.lit(f"{INVALID}: malformed JSON"))
        .when(F.size(unknown) > 0, F.concat(F.lit(f"{INVALID}: unknown fields "), F.array_join(unknown, ",")))
        .when(
            event["schema_version"].isNotNull()
            & (F.trim(event["schema_version"]) != str(EVENT_SCHEMA_VERSION)),
            F.lit(f"{INVALID}: unsupported schema_version"),
        )
        .when(F.size(missing) > 0, F.concat(F.lit(f"{INVALID}: missing "), F.array_join(missing, ",")))
        .when(
            ~fully_matches(F.lower(F.trim(event["event_id"])), EVENT_ID_PATTERN),
            F.lit(f"{INVALID}: event_id"),
        )
        .when((source_length < 1) | (source_length > SOURCE_MAX_LENGTH), F.lit(f"{INVALID}: source"))
        .when(
            writer.isNotNull() & ~fully_matches(writer, WRITER_NAME_PATTERN), F.lit(f"{INVALID}: written_by")
        )
    )


def parse_messages(messages: DataFrame, rule: RatedAtRule | None = None) -> DataFrame:
    """Kafka rows (value, topic, partition, offset) -> typed events with `reason`.

    Every JSON field is read as a string, so a wrongly typed value reaches
    `validate_ratings` as text and is rejected with a precise reason instead of
    vanishing into a null. `rule`: when a rating can have been made (default: the settings').
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
        ),
        rule,
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
        F.col("event.written_by").alias("written_by"),
    )


class IngestionStopped(RuntimeError):
    """A micro-batch refused because the run is stopping: Spark will not commit it."""


class BatchWriter:
    """The foreachBatch function; accumulates counts over one run.

    `close` is the stop half of "stop between batches": it waits for a running batch
    to finish and makes every later one fail before writing anything, so a stopping
    run never leaves a batch half-written and the next run reads it from Kafka again.
    """

    def __init__(
        self,
        spark: SparkSession,
        tables: LakehouseTables,
        report: IngestionReport,
        *,
        rule: RatedAtRule | None = None,
        after_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.spark = spark
        self.tables = tables
        self.report = report
        self.rule = rule
        self.after_batch = after_batch
        self.markers = checkpoint_dir(tables) / "_filmrec_batches"
        self._batch_lock = threading.Lock()
        self.closed = False
        self.refused = False  # a batch came after `close`: the query ends with IngestionStopped

    def close(self) -> None:
        """Wait for the running batch (if any), then refuse the next ones."""
        with self._batch_lock:
            self.closed = True

    def _forget_committed(self, batch_id: int) -> None:
        # Spark commits batch N-1 before it starts batch N: older markers are moot.
        for marker in self.markers.glob("*.*"):
            if int(marker.stem) < batch_id:
                marker.unlink(missing_ok=True)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        with self._batch_lock:
            if self.closed:
                # Failing the batch is the one way to keep Spark from committing it; the
                # query ends with this error, which the driver expects after a stop request.
                self.refused = True
                raise IngestionStopped(f"batch {batch_id} refused: the run is stopping")
            clock = time.perf_counter()
            if self._write(batch, batch_id) and self.after_batch is not None:
                self.after_batch(batch_id, time.perf_counter() - clock)

    def _write(self, batch: DataFrame, batch_id: int) -> bool:
        """Write one batch; False when a previous run already wrote all of it."""
        from pyspark.sql import functions as F

        self.markers.mkdir(parents=True, exist_ok=True)
        self._forget_committed(batch_id)
        started, done = self.markers / f"{batch_id}.started", self.markers / f"{batch_id}.done"
        if done.exists():
            return False  # fully written by a run that died before Spark committed the batch
        retry = started.exists()
        started.touch()

        checked = parse_messages(batch, self.rule).persist()
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
        return True


def processed_offsets(checkpoint: Path, topic: str, *, batch_id: int | None = None) -> dict[int, int]:
    """Next offset to read per partition, after the last batch Spark committed (or `batch_id`).

    Spark's Kafka source does not commit to a consumer group; its checkpoint is the
    truth. Offset files are "v1", batch metadata, then one JSON line per source. A
    batch's offset file is written before the batch runs, so the batch that has just
    been written (and is not committed yet) can be named explicitly.
    """
    if batch_id is None:
        commits = [int(path.name) for path in (checkpoint / "commits").glob("*") if path.name.isdigit()]
        if not commits:
            return {}
        batch_id = max(commits)
    lines = (checkpoint / "offsets" / str(batch_id)).read_text().splitlines()
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


def _measure_lag(settings: Settings, topic: str, report: IngestionReport, processed: dict[int, int]) -> None:
    report.processed_offsets = processed
    report.lag_by_partition = kafka_lag(settings, topic, processed, commit_group=CONSUMER_GROUP)
    report.lag = sum(report.lag_by_partition.values())


def _stop_between_batches(query: StreamingQuery, writer: BatchWriter) -> None:
    """Stop the query at a batch boundary: after the running batch, before the next."""
    writer.close()
    # The batch that just ended is committed by Spark after foreachBatch returns; let
    # that happen (a stop before it is safe, the next run skips the batch by its
    # marker, but the lag reported now would count the batch as pending).
    deadline = time.monotonic() + COMMIT_WAIT_SECONDS
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.2)
    query.stop()
    error = query.exception()
    if error is not None and not writer.refused:
        raise error  # it failed on its own before the stop took effect


def _supervise(
    query: StreamingQuery, writer: BatchWriter, status: RunStatus, stop: threading.Event, *, continuous: bool
) -> bool:
    """Wait for the query to end, heartbeating; True when it ended on a stop request."""
    next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
    while True:
        if stop.is_set():
            _stop_between_batches(query, writer)
            return True
        if query.awaitTermination(POLL_SECONDS):  # raises if the query failed
            return False
        if time.monotonic() >= next_heartbeat:
            next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
            # Between triggers a continuous query has read all Kafka had for it: as
            # good as a successful run, even when no new message came (no batch).
            status.publish(success=continuous and not query.status["isTriggerActive"])


def run_ingestion(
    spark: SparkSession,
    settings: Settings | None = None,
    *,
    tables: LakehouseTables | None = None,
    topic: str | None = None,
    max_offsets_per_trigger: int | None = None,
    fail_on_data_loss: bool = True,
    continuous: bool = False,
    trigger_seconds: int | None = None,
    stop: threading.Event | None = None,
    lock: CheckpointLock | None = None,
) -> IngestionReport:
    """Run the ingestion query; write and return its report (and the status file).

    availableNow returns once everything pending is written; continuous runs until
    `stop` is set (one micro-batch every `trigger_seconds`, default
    INGEST_TRIGGER_SECONDS). Setting `stop` ends either mode between two batches.
    `lock` is the checkpoint's lock when the caller already holds it (entry points
    take it before starting Spark); otherwise it is taken here, and a run that finds
    the checkpoint held raises CheckpointBusyError before writing anything.
    """
    settings = settings or get_settings()
    tables = tables or LakehouseTables(settings.lakehouse_path)
    mode = IngestionMode.CONTINUOUS if continuous else IngestionMode.AVAILABLE_NOW
    checkpoint = checkpoint_dir(tables)
    if lock is not None and not (lock.held and lock.checkpoint == checkpoint):
        raise ValueError(f"the lock given is not a held lock of {checkpoint}")
    with contextlib.ExitStack() as owned:
        if lock is None:
            owned.enter_context(CheckpointLock(checkpoint, mode=mode))
        return _run_locked(
            spark,
            settings,
            tables,
            topic=topic or settings.kafka_topic,
            mode=mode,
            trigger_seconds=trigger_seconds or settings.ingest_trigger_seconds,
            max_offsets_per_trigger=max_offsets_per_trigger,
            fail_on_data_loss=fail_on_data_loss,
            stop=stop or threading.Event(),
        )


def _run_locked(
    spark: SparkSession,
    settings: Settings,
    tables: LakehouseTables,
    *,
    topic: str,
    mode: IngestionMode,
    trigger_seconds: int,
    max_offsets_per_trigger: int | None,
    fail_on_data_loss: bool,
    stop: threading.Event,
) -> IngestionReport:
    from confluent_kafka import KafkaException

    checkpoint = checkpoint_dir(tables)
    continuous = mode is IngestionMode.CONTINUOUS
    report = IngestionReport(topic=topic)
    status = RunStatus(
        tables.ingestion_status,
        job=CHECKPOINT_NAME,
        topic=topic,
        bootstrap_servers=bootstrap_servers(settings),
        mode=str(mode),
        trigger_seconds=trigger_seconds if continuous else None,
        pid=os.getpid(),
        host=socket.gethostname(),
        started_at=datetime.now(UTC).isoformat(),
        finished_at=None,
        error=None,
    )
    clock = time.perf_counter()

    def after_batch(batch_id: int, seconds: float) -> None:
        try:
            _measure_lag(settings, topic, report, processed_offsets(checkpoint, topic, batch_id=batch_id))
        except KafkaException as error:  # monitoring must not fail a batch that is written
            log.warning("lag after batch %d not measured: %s", batch_id, error)
        report.seconds = time.perf_counter() - clock
        status.publish(
            counts=_counts(report),
            success=True,
            last_batch_id=batch_id,
            last_batch_seconds=round(seconds, 3),
            last_batch_at=datetime.now(UTC).isoformat(),
        )

    writer = BatchWriter(
        spark, tables, report, rule=RatedAtRule.from_settings(settings), after_batch=after_batch
    )
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
        stream = (
            reader.load()
            .writeStream.queryName(f"{CHECKPOINT_NAME}_{topic}".replace("-", "_"))
            .foreachBatch(writer)
            .option("checkpointLocation", str(checkpoint))
        )
        if continuous:
            stream = stream.trigger(processingTime=f"{trigger_seconds} seconds")
        else:
            stream = stream.trigger(availableNow=True)
        query = stream.start()
        status.publish(state=RunState.RUNNING, counts=_counts(report))
        stopped = _supervise(query, writer, status, stop, continuous=continuous)
        report.seconds = time.perf_counter() - clock
        _measure_lag(settings, topic, report, processed_offsets(checkpoint, topic))
    except Exception as error:
        status.publish(
            state=RunState.FAILED,
            counts=_counts(report),
            error=f"{type(error).__name__}: {error}"[:2000],
            finished_at=datetime.now(UTC).isoformat(),
        )
        raise
    status.publish(
        state=RunState.STOPPED if stopped else RunState.OK,
        counts=_counts(report),
        success=True,
        finished_at=datetime.now(UTC).isoformat(),
    )
    return report


def _counts(report: IngestionReport) -> dict[str, Any]:
    counts = report.as_dict()
    counts.pop("topic")
    return counts


@contextlib.contextmanager
def stop_on_signals(spark: SparkSession, stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` instead of killing the driver, in Python and in the JVM.

    The driver's JVM gets the signal too, on its own: spark-submit's JVM is the
    process `docker stop` signals, and a terminal or `kill -- -PGID` signals the
    whole process group. Left to its default, the JVM would exit and abort the
    batch it runs; a handler registered through py4j forwards the signal here
    instead. (Exactly once does not depend on this, only a clean stop does.)
    """
    from py4j.protocol import Py4JError
    from pyspark.java_gateway import ensure_callback_server_started

    def request_stop(signum: int, _frame: object = None) -> None:
        if not stop.is_set():
            print(f"signal {signal.Signals(signum).name}: stopping after the running batch", file=sys.stderr)
        stop.set()

    class JvmSignalHandler:
        def handle(self, jvm_signal: Any) -> None:
            request_stop(int(jvm_signal.getNumber()))

        class Java:  # py4j: the Java interface this Python object implements
            implements: ClassVar[list[str]] = ["sun.misc.SignalHandler"]

    signals = (signal.SIGTERM, signal.SIGINT)
    previous_python = {signum: signal.signal(signum, request_stop) for signum in signals}
    gateway = spark.sparkContext._gateway
    jvm = spark.sparkContext._jvm
    assert gateway is not None and jvm is not None
    ensure_callback_server_started(gateway)
    handler = JvmSignalHandler()
    previous_jvm = {}
    for name in ("TERM", "INT"):
        try:
            jvm_signal = jvm.sun.misc.Signal(name)
            previous_jvm[name] = (jvm_signal, jvm.sun.misc.Signal.handle(jvm_signal, handler))
        except Py4JError as error:  # e.g. INT, which pyspark's local JVM ignores from birth
            log.debug("JVM signal %s left alone: %s", name, error)
    try:
        yield
    finally:
        for jvm_signal, previous in previous_jvm.values():
            with contextlib.suppress(Py4JError):
                jvm.sun.misc.Signal.handle(jvm_signal, previous)
        for signum, previous in previous_python.items():
            signal.signal(signum, previous)


def run_ingestion_job(
    start_spark: Callable[[], SparkSession],
    settings: Settings,
    *,
    continuous: bool = False,
    trigger_seconds: int | None = None,
    topic: str | None = None,
    max_offsets_per_trigger: int | None = None,
    fail_on_data_loss: bool = True,
) -> IngestionReport:
    """One ingestion run as a process (both entry points): lock, Spark, run, stop on signals.

    The checkpoint lock is taken before Spark starts, so a second run fails in a
    second with CheckpointBusyError instead of after a JVM start.
    """
    mode = IngestionMode.CONTINUOUS if continuous else IngestionMode.AVAILABLE_NOW
    tables = LakehouseTables(settings.lakehouse_path)
    with CheckpointLock(checkpoint_dir(tables), mode=mode) as lock:
        spark = start_spark()
        stop = threading.Event()
        try:
            with stop_on_signals(spark, stop):
                return run_ingestion(
                    spark,
                    settings,
                    tables=tables,
                    topic=topic,
                    max_offsets_per_trigger=max_offsets_per_trigger,
                    fail_on_data_loss=fail_on_data_loss,
                    continuous=continuous,
                    trigger_seconds=trigger_seconds,
                    stop=stop,
                    lock=lock,
                )
        finally:
            spark.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ingest rating events from Kafka into Delta.")
    parser.add_argument("--topic", default=None, help="default: KAFKA_RATINGS_TOPIC (ratings)")
    parser.add_argument(
        "--max-offsets-per-trigger",
        type=int,
        default=None,
        help="cap each micro-batch (default: one batch for everything pending)",
    )
    parser.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="skip offsets that Kafka retention already deleted instead of failing",
    )
    parser.add_argument(
        "--continuous",
        action="store_true",
        help="run until SIGTERM/SIGINT, one micro-batch per trigger (default: availableNow, then stop)",
    )
    parser.add_argument(
        "--trigger-seconds",
        type=int,
        default=None,
        help="with --continuous: seconds between micro-batches (default: INGEST_TRIGGER_SECONDS, 30)",
    )
    args = parser.parse_args(argv)
    if args.trigger_seconds is not None and not args.continuous:
        parser.error("--trigger-seconds applies to --continuous runs only")
    if args.trigger_seconds is not None and args.trigger_seconds < 1:
        parser.error("--trigger-seconds must be at least 1")

    from filmrec.lakehouse.spark_session import build_spark

    settings = get_settings()
    try:
        report = run_ingestion_job(
            lambda: build_spark(app_name="filmrec-ingest", settings=settings),
            settings,
            continuous=args.continuous,
            trigger_seconds=args.trigger_seconds,
            topic=args.topic,
            max_offsets_per_trigger=args.max_offsets_per_trigger,
            fail_on_data_loss=not args.allow_data_loss,
        )
    except CheckpointBusyError as busy:
        print(f"error: {busy}", file=sys.stderr)
        return EXIT_CHECKPOINT_BUSY
    print(
        f"read {report.read}, written {report.written}, duplicates {report.duplicates}, "
        f"quarantined {report.quarantined}, clean upserts {report.clean_upserts}, "
        f"batches {report.batches}, lag {report.lag} in {report.seconds:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
