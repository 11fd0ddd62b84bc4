"""The lakehouse tables: where they live and what they hold.

Delta tables are the source of truth; PostgreSQL and Redis are serving copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructField, StructType


@dataclass(frozen=True)
class LakehouseTables:
    """Paths of every Delta table under one lakehouse root."""

    root: Path

    @property
    def raw_ratings(self) -> str:
        return str(self.root / "raw_ratings")

    @property
    def clean_ratings(self) -> str:
        return str(self.root / "clean_ratings")

    @property
    def movies(self) -> str:
        return str(self.root / "movies")

    @property
    def quarantine(self) -> str:
        return str(self.root / "quarantine")

    @property
    def checkpoints(self) -> Path:
        """Streaming checkpoints live beside the tables they write."""
        return self.root / "_checkpoints"

    @property
    def status(self) -> Path:
        """Small JSON status files that jobs leave for monitoring."""
        return self.root / "_status"

    @property
    def ingestion_status(self) -> Path:
        """What the last Kafka -> Delta run did; the API re-exposes it as metrics."""
        return self.status / "ingestion.json"


def raw_ratings_schema() -> StructType:
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("event_id", T.StringType(), False),
            T.StructField("user_id", T.LongType(), False),
            T.StructField("movie_id", T.LongType(), False),
            T.StructField("rating", T.DoubleType(), False),
            T.StructField("rated_at", T.TimestampType(), False),
            T.StructField("source", T.StringType(), False),
            T.StructField("ingested_at", T.TimestampType(), False),
            # The name of the API key that wrote the rating (never the key); null for CSV
            # loads, replays, and rows written before the column existed.
            T.StructField("written_by", T.StringType(), True),
        ]
    )


def clean_ratings_schema() -> StructType:
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("user_id", T.LongType(), False),
            T.StructField("movie_id", T.LongType(), False),
            T.StructField("rating", T.DoubleType(), False),
            T.StructField("rated_at", T.TimestampType(), False),
            T.StructField("event_id", T.StringType(), False),
            T.StructField("updated_at", T.TimestampType(), False),
        ]
    )


def movies_schema() -> StructType:
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("movie_id", T.LongType(), False),
            T.StructField("title", T.StringType(), False),
            T.StructField("year", T.IntegerType(), True),
            T.StructField("genres", T.ArrayType(T.StringType(), False), False),
            T.StructField("imdb_id", T.StringType(), True),
            T.StructField("tmdb_id", T.LongType(), True),
            T.StructField("updated_at", T.TimestampType(), False),
        ]
    )


def quarantine_schema() -> StructType:
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("quarantine_id", T.StringType(), False),
            T.StructField("source", T.StringType(), False),
            T.StructField("payload", T.StringType(), True),
            T.StructField("reason", T.StringType(), False),
            T.StructField("topic", T.StringType(), True),
            T.StructField("partition", T.IntegerType(), True),
            T.StructField("offset", T.LongType(), True),
            T.StructField("quarantined_at", T.TimestampType(), False),
        ]
    )


def ensure_table(spark: SparkSession, path: str, schema: StructType) -> None:
    """Create an empty Delta table at `path` unless one is there already; add the
    columns a newer schema has to a table made before them (`missing_columns`)."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        spark.createDataFrame([], schema).write.format("delta").mode("ignore").save(path)
        return
    added = missing_columns(DeltaTable.forPath(spark, path).toDF().schema, schema)
    if added:
        columns = ", ".join(f"`{field.name}` {field.dataType.simpleString()}" for field in added)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")


class SchemaEvolutionError(RuntimeError):
    """A table lacks a column that cannot be added in place (a required one)."""


def missing_columns(existing: StructType, wanted: StructType) -> list[StructField]:
    """The fields of `wanted` that `existing` lacks, in order. Only nullable columns are
    added in place (old rows read null); a missing required column is an error, not a
    guess. Merges insert by name, so every writer then has the column to fill."""
    have = {field.name.lower() for field in existing.fields}
    added = [field for field in wanted.fields if field.name.lower() not in have]
    required = [field.name for field in added if not field.nullable]
    if required:
        raise SchemaEvolutionError(
            f"the table lacks required column(s) {', '.join(required)}: it predates them; "
            "migrate it by hand or load it again"
        )
    return added


def ensure_all_tables(spark: SparkSession, tables: LakehouseTables) -> None:
    ensure_table(spark, tables.raw_ratings, raw_ratings_schema())
    ensure_table(spark, tables.clean_ratings, clean_ratings_schema())
    ensure_table(spark, tables.movies, movies_schema())
    ensure_table(spark, tables.quarantine, quarantine_schema())


def table_version(spark: SparkSession, path: str) -> int:
    """The latest Delta version of a table: what a training run records it read."""
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])


def read_table(spark: SparkSession, path: str, *, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)
