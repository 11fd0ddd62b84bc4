"""Writing ratings into the lakehouse: raw append, quarantine, clean merge.

Both the CSV loader and the Kafka ingestion job end here, so deduplication and the
"latest rating wins" rule exist once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from filmrec.lakehouse.tables import LakehouseTables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class WriteCounts:
    written: int
    duplicates: int
    clean_upserts: int


def append_quarantine(spark: SparkSession, tables: LakehouseTables, rejected: DataFrame) -> int:
    """Insert rejected rows that are not in quarantine yet; return how many were new.

    `rejected` has the quarantine columns; `quarantine_id` identifies a rejected input
    (source and payload, or topic/partition/offset), so re-running adds nothing.
    """
    from delta.tables import DeltaTable

    rejected = rejected.dropDuplicates(["quarantine_id"])
    target = DeltaTable.forPath(spark, tables.quarantine)
    new_rows = rejected.join(
        target.toDF().select("quarantine_id"), "quarantine_id", "left_anti"
    ).localCheckpoint(eager=True)
    count = new_rows.count()
    if count:
        (
            target.alias("t")
            .merge(new_rows.alias("s"), "t.quarantine_id = s.quarantine_id")
            .whenNotMatchedInsertAll()
            .execute()
        )
    return count


def write_ratings(spark: SparkSession, tables: LakehouseTables, valid: DataFrame) -> WriteCounts:
    """Add valid ratings to raw (by event_id, once) and merge them into clean.

    `valid` has the raw_ratings columns. Rows whose event_id is already in raw are
    duplicates: they change nothing, which makes loads and re-runs idempotent.
    """
    from delta.tables import DeltaTable

    valid = valid.persist()
    try:
        incoming = valid.count()
        unique = valid.dropDuplicates(["event_id"])
        raw = DeltaTable.forPath(spark, tables.raw_ratings)
        # Materialised apart from its lineage: once raw is written, re-evaluating the
        # anti-join would find nothing new and clean would never see these rows.
        new_rows = unique.join(raw.toDF().select("event_id"), "event_id", "left_anti").localCheckpoint(
            eager=True
        )
        written = new_rows.count()
        clean_upserts = 0
        if written:
            (
                raw.alias("t")
                .merge(new_rows.alias("s"), "t.event_id = s.event_id")
                .whenNotMatchedInsertAll()
                .execute()
            )
            clean_upserts = merge_into_clean(spark, tables, new_rows)
        return WriteCounts(written=written, duplicates=incoming - written, clean_upserts=clean_upserts)
    finally:
        valid.unpersist()


def merge_into_clean(spark: SparkSession, tables: LakehouseTables, new_raw: DataFrame) -> int:
    """Merge new raw ratings into clean: one row per user x movie, the latest wins.

    Ties on rated_at are broken by event_id so that the result does not depend on
    arrival order, which keeps replays and re-runs deterministic. Every rated_at here
    kept the contract's RatedAtRule (an instant, not in the future, not before the
    floor), so no rating can win this comparison for ever.
    """
    from delta.tables import DeltaTable
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy("user_id", "movie_id").orderBy(
        F.col("rated_at").desc(), F.col("event_id").desc()
    )
    latest = (
        new_raw.withColumn("_rank", F.row_number().over(order))
        .where("_rank = 1")
        .select(
            "user_id",
            "movie_id",
            "rating",
            "rated_at",
            "event_id",
            F.current_timestamp().alias("updated_at"),
        )
    )
    clean = DeltaTable.forPath(spark, tables.clean_ratings)
    newer = "s.rated_at > t.rated_at OR (s.rated_at = t.rated_at AND s.event_id > t.event_id)"
    (
        clean.alias("t")
        .merge(latest.alias("s"), "t.user_id = s.user_id AND t.movie_id = s.movie_id")
        .whenMatchedUpdateAll(condition=newer)
        .whenNotMatchedInsertAll()
        .execute()
    )
    metrics = clean.history(1).select("operationMetrics").collect()[0][0] or {}
    return int(metrics.get("numTargetRowsInserted", 0)) + int(metrics.get("numTargetRowsUpdated", 0))
