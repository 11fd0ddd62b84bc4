"""Loading MovieLens-format CSV files (ratings.csv, movies.csv, links.csv) into Delta.

Every line ends up somewhere: valid ratings in raw (then clean), everything else in
quarantine with the reason. Loading the same file again adds nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filmrec.ingestion.contract import QuarantineReason, RatedAtRule
from filmrec.ingestion.validation import content_event_id, validate_ratings
from filmrec.lakehouse.ratings import append_quarantine, write_ratings
from filmrec.lakehouse.tables import LakehouseTables, ensure_all_tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RATINGS_FIELDS = 4  # userId,movieId,rating,timestamp
NO_GENRES = "(no genres listed)"


@dataclass(frozen=True)
class LoadReport:
    source: str
    read: int
    written: int
    duplicates: int
    quarantined: int
    clean_upserts: int = 0

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def _quarantine_rows(frame: DataFrame, *, source: str) -> DataFrame:
    """Shape rejected rows (with `payload` and `reason`) as quarantine rows."""
    from pyspark.sql import functions as F

    return frame.select(
        F.sha2(F.concat_ws("|", F.lit(source), F.col("payload")), 256).alias("quarantine_id"),
        F.lit(source).alias("source"),
        F.col("payload"),
        F.col("reason"),
        F.lit(None).cast("string").alias("topic"),
        F.lit(None).cast("int").alias("partition"),
        F.lit(None).cast("long").alias("offset"),
        F.current_timestamp().alias("quarantined_at"),
    )


def load_ratings_csv(
    spark: SparkSession, tables: LakehouseTables, path: Path, *, rule: RatedAtRule | None = None
) -> LoadReport:
    """Load a MovieLens ratings.csv (userId,movieId,rating,timestamp); `rule`: when a
    rating can have been made (default: the settings')."""
    from pyspark.sql import functions as F

    ensure_all_tables(spark, tables)
    source = f"csv:{path.name}"
    lines = (
        spark.read.text(str(path))
        .where(F.trim("value") != "")
        # The header may appear once per file; it is not data.
        .where(~F.lower(F.trim("value")).startswith("userid,"))
        .withColumnRenamed("value", "payload")
    )
    # F.get, not [i]: under ANSI mode an index past a short line raises instead of giving null.
    fields = F.split("payload", ",", -1)
    parsed = lines.withColumn("_n", F.size(fields)).select(
        "payload",
        "_n",
        F.get(fields, 0).alias("user_id_raw"),
        F.get(fields, 1).alias("movie_id_raw"),
        F.get(fields, 2).alias("rating_raw"),
        F.get(fields, 3).alias("rated_at_raw"),
    )
    checked = (
        validate_ratings(parsed, rule)
        .withColumn(
            "reason",
            F.when(
                F.col("_n") != RATINGS_FIELDS,
                F.concat(
                    F.lit(f"{QuarantineReason.MALFORMED_LINE.value}: expected {RATINGS_FIELDS} fields, got "),
                    F.col("_n").cast("string"),
                ),
            ).otherwise(F.col("reason")),
        )
        .persist()
    )
    try:
        read, quarantined = _count_and_quarantine(spark, tables, checked, source=source)
        valid = checked.where(F.col("reason").isNull()).select(
            content_event_id(
                user_id=F.col("user_id"),
                movie_id=F.col("movie_id"),
                rating=F.col("rating"),
                rated_at=F.col("rated_at"),
            ).alias("event_id"),
            "user_id",
            "movie_id",
            "rating",
            "rated_at",
            F.lit(source).alias("source"),
            F.current_timestamp().alias("ingested_at"),
            F.lit(None).cast("string").alias("written_by"),  # no API key wrote a CSV row
        )
        counts = write_ratings(spark, tables, valid)
    finally:
        checked.unpersist()
    return LoadReport(
        source=source,
        read=read,
        written=counts.written,
        duplicates=counts.duplicates,
        quarantined=quarantined,
        clean_upserts=counts.clean_upserts,
    )


def _count_and_quarantine(
    spark: SparkSession, tables: LakehouseTables, checked: DataFrame, *, source: str
) -> tuple[int, int]:
    """(rows read, rows quarantined): every row with a `reason` goes to quarantine."""
    from pyspark.sql import functions as F

    read = checked.count()
    rejected = _quarantine_rows(checked.where(F.col("reason").isNotNull()), source=source)
    return read, append_quarantine(spark, tables, rejected)


def _read_quoted_csv(spark: SparkSession, path: Path, columns: list[str]) -> DataFrame:
    from pyspark.sql import types as T

    schema = T.StructType(
        [T.StructField(name, T.StringType()) for name in columns]
        + [T.StructField("_corrupt_record", T.StringType())]
    )
    return (
        spark.read.option("header", "true")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
        .option("enforceSchema", "false")
        .schema(schema)
        .csv(str(path))
        .cache()  # Spark refuses queries on only the corrupt-record column of an uncached read
    )


MOVIE_COLUMNS = ("title", "year", "genres", "imdb_id", "tmdb_id")
YEAR_IN_TITLE = r"\((\d{4})\)\s*$"


def _typed_movies(raw: DataFrame) -> DataFrame:
    """movies.csv rows typed: the year parsed from the title ("Heat (1995)"), genres an array,
    and the reason a row is rejected (null when it is fine)."""
    from pyspark.sql import functions as F

    title = F.trim(F.col("title"))
    typed = raw.select(
        F.coalesce(F.col("_corrupt_record"), F.concat_ws(",", "movieId", "title", "genres")).alias("payload"),
        F.trim("movieId").try_cast("long").alias("movie_id"),
        F.trim(F.regexp_replace(title, YEAR_IN_TITLE, "")).alias("title"),
        F.regexp_extract(title, YEAR_IN_TITLE, 1).try_cast("int").alias("year"),
        F.when(F.trim("genres") == NO_GENRES, F.array().cast("array<string>"))
        .otherwise(F.split(F.trim("genres"), r"\|"))
        .alias("genres"),
        F.col("_corrupt_record"),
    )
    reason = (
        F.when(F.col("_corrupt_record").isNotNull(), F.lit(QuarantineReason.MALFORMED_LINE.value))
        .when(
            F.col("movie_id").isNull() | (F.col("movie_id") <= 0),
            F.lit(QuarantineReason.INVALID_MOVIE_ID.value),
        )
        .when(F.col("title").isNull() | (F.col("title") == ""), F.lit("missing_title"))
    )
    return typed.withColumn("reason", reason)


def _with_links(spark: SparkSession, movies: DataFrame, links_path: Path | None) -> DataFrame:
    """The IMDb and TMDB ids from links.csv (null without it)."""
    from pyspark.sql import functions as F

    if links_path is None:
        return movies.withColumn("imdb_id", F.lit(None).cast("string")).withColumn(
            "tmdb_id", F.lit(None).cast("long")
        )
    links = (
        _read_quoted_csv(spark, links_path, ["movieId", "imdbId", "tmdbId"])
        .select(
            F.trim("movieId").try_cast("long").alias("movie_id"),
            F.when(F.trim("imdbId") != "", F.concat(F.lit("tt"), F.trim("imdbId"))).alias("imdb_id"),
            F.trim("tmdbId").try_cast("long").alias("tmdb_id"),
        )
        .where("movie_id IS NOT NULL")
        .dropDuplicates(["movie_id"])
    )
    return movies.join(links, "movie_id", "left")


def _merge_changed_movies(spark: SparkSession, tables: LakehouseTables, movies: DataFrame) -> int:
    """MERGE only the movies that are new or changed, so a re-run commits nothing; return how many."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    target = DeltaTable.forPath(spark, tables.movies)
    changed = " OR ".join(f"NOT (t.{column} <=> s.{column})" for column in MOVIE_COLUMNS)
    pending = (
        movies.alias("s")
        .join(target.toDF().alias("t"), F.col("s.movie_id") == F.col("t.movie_id"), "left")
        .where(f"t.movie_id IS NULL OR {changed}")
        .select("s.*")
        .localCheckpoint(eager=True)
    )
    written = pending.count()
    if written:
        (
            target.alias("t")
            .merge(pending.alias("s"), "t.movie_id = s.movie_id")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
    return written


def load_movies_csv(
    spark: SparkSession, tables: LakehouseTables, movies_path: Path, links_path: Path | None = None
) -> LoadReport:
    """Load movies.csv (movieId,title,genres), enriched with links.csv ids when given.

    Steps: type and check each row, quarantine the rejected ones, join the links,
    MERGE what is new or changed (a movie already in the table is updated only when
    something about it changed).
    """
    from pyspark.sql import functions as F

    ensure_all_tables(spark, tables)
    source = f"csv:{movies_path.name}"
    checked = _typed_movies(_read_quoted_csv(spark, movies_path, ["movieId", "title", "genres"])).persist()
    try:
        read, quarantined = _count_and_quarantine(spark, tables, checked, source=source)
        valid = checked.where(F.col("reason").isNull()).dropDuplicates(["movie_id"])
        movies = _with_links(spark, valid, links_path).select(
            "movie_id", *MOVIE_COLUMNS, F.current_timestamp().alias("updated_at")
        )
        written = _merge_changed_movies(spark, tables, movies)
    finally:
        checked.unpersist()
    return LoadReport(
        source=source,
        read=read,
        written=written,
        duplicates=read - quarantined - written,
        quarantined=quarantined,
    )
