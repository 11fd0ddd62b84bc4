"""Rating validation as Spark column expressions.

CSV loads and the Kafka ingestion job both call `validate_ratings`, so a row is
rejected for the same reason whichever way it arrived. The rules are
`filmrec.ingestion.contract`'s, which the API uses for single events: its constants
and its RatedAtRule, expressed here as columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from filmrec.ingestion.contract import (
    EPOCH_SECONDS_PATTERN,
    MAX_ID,
    RATING_MAX,
    RATING_MIN,
    UTC_OFFSET_SUFFIX,
    QuarantineReason,
    RatedAtRule,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def fully_matches(text: Column, pattern: str) -> Column:
    """Whether the whole of `text` matches `pattern`, as Python's re.fullmatch and
    pydantic read the contract's anchored patterns: Java's `$` also matches before a
    final line break, so `rlike` alone would let "name\n" through."""
    from pyspark.sql import functions as F

    return text.rlike(pattern) & (F.regexp_extract(text, pattern, 0) == text)


def _id_column(raw: Column) -> Column:
    from pyspark.sql import functions as F

    value = F.trim(raw).try_cast("long")
    return F.when((value > 0) & (value <= MAX_ID), value)


def _timestamp_column(raw: Column) -> Column:
    """Unix seconds (as MovieLens ships them) or an ISO-8601 string."""
    from pyspark.sql import functions as F

    text = F.trim(raw)
    epoch = text.try_cast("long")
    from_epoch = F.when(text.rlike(EPOCH_SECONDS_PATTERN) & (epoch > 0), F.timestamp_seconds(epoch))
    from_iso = F.when(~text.rlike(EPOCH_SECONDS_PATTERN), F.try_to_timestamp(text))
    return F.coalesce(from_epoch, from_iso)


def _rated_at_checks(
    raw: Column, rated_at: Column, rule: RatedAtRule, now: datetime
) -> list[tuple[Column, QuarantineReason]]:
    """RatedAtRule.violation as columns (a time that parsed; an unparsable one has its own reason)."""
    from pyspark.sql import functions as F

    text = F.trim(raw)
    parsed = rated_at.isNotNull()
    return [
        (
            parsed & ~text.rlike(EPOCH_SECONDS_PATTERN) & ~text.rlike(UTC_OFFSET_SUFFIX),
            QuarantineReason.RATED_AT_WITHOUT_OFFSET,
        ),
        (parsed & (rated_at < F.lit(rule.floor)), QuarantineReason.RATED_AT_BEFORE_FLOOR),
        # `now` is the driver's, once per batch: a row is judged by when it was ingested.
        (parsed & (rated_at > F.lit(rule.latest(now))), QuarantineReason.RATED_AT_IN_FUTURE),
    ]


def validate_ratings(
    frame: DataFrame, rule: RatedAtRule | None = None, *, now: datetime | None = None
) -> DataFrame:
    """Type the raw string columns and list every rule a row breaks.

    Input columns: user_id_raw, movie_id_raw, rating_raw, rated_at_raw (strings).
    Adds user_id, movie_id (long), rating (double), rated_at (timestamp) and
    `reason`: null for a valid row, else the broken rules joined by ';'. `rule`
    defaults to the settings' (RatedAtRule.current), `now` to the driver's clock.
    """
    from pyspark.sql import functions as F

    rule = rule or RatedAtRule.current()
    rating = F.trim(F.col("rating_raw")).try_cast("double")
    typed = (
        frame.withColumn("user_id", _id_column(F.col("user_id_raw")))
        .withColumn("movie_id", _id_column(F.col("movie_id_raw")))
        .withColumn("rating", rating)
        .withColumn("rated_at", _timestamp_column(F.col("rated_at_raw")))
    )
    checks = [
        (F.col("user_id").isNull(), QuarantineReason.INVALID_USER_ID),
        (F.col("movie_id").isNull(), QuarantineReason.INVALID_MOVIE_ID),
        (F.col("rating").isNull(), QuarantineReason.UNPARSABLE_RATING),
        (
            F.col("rating").isNotNull()
            & (F.isnan("rating") | (F.col("rating") < RATING_MIN) | (F.col("rating") > RATING_MAX)),
            QuarantineReason.RATING_OUT_OF_RANGE,
        ),
        (
            F.col("rating").isNotNull()
            & ~F.isnan("rating")
            & (F.col("rating") * 2 != F.floor(F.col("rating") * 2)),
            QuarantineReason.RATING_NOT_HALF_STEP,
        ),
        (F.col("rated_at").isNull(), QuarantineReason.UNPARSABLE_TIMESTAMP),
        *_rated_at_checks(F.col("rated_at_raw"), F.col("rated_at"), rule, now or datetime.now(UTC)),
    ]
    reasons = F.array_compact(
        F.array(*[F.when(condition, F.lit(reason.value)) for condition, reason in checks])
    )
    return typed.withColumn("reason", F.when(F.size(reasons) > 0, F.array_join(reasons, ";")))


def content_event_id(*, user_id: Column, movie_id: Column, rating: Column, rated_at: Column) -> Column:
    """Spark twin of `filmrec.ingestion.contract.event_id_for`: a UUID-shaped hash of the content."""
    from pyspark.sql import functions as F

    content = F.concat_ws(
        "|",
        user_id.cast("string"),
        movie_id.cast("string"),
        F.format_string("%.1f", rating),
        F.unix_timestamp(rated_at).cast("string"),
    )
    digest = F.sha2(content, 256)
    return F.concat_ws(
        "-",
        F.substring(digest, 1, 8),
        F.substring(digest, 9, 4),
        F.substring(digest, 13, 4),
        F.substring(digest, 17, 4),
        F.substring(digest, 21, 12),
    )
