"""The rating contract shared by CSV loads, Kafka events and the API.

One definition of what a valid rating is, so every entry point rejects the same rows
for the same reasons: the pydantic model below (the API, the API's consumer, the
producers) and the Spark column rules of `filmrec.ingestion.validation` and
`filmrec.ingestion.kafka_ingest` (CSV loads, the Kafka ingestion job) both read the
constants and the `RatedAtRule` defined here.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

if TYPE_CHECKING:
    from filmrec.config import Settings

RATING_MIN = 0.5
RATING_MAX = 5.0
RATING_STEP = 0.5
EVENT_SCHEMA_VERSION: Final = 1
# Ids are PostgreSQL integers: 1 to 2**31 - 1.
MAX_ID: Final = 2**31 - 1
SOURCE_MAX_LENGTH: Final = 64
# An event id on the wire: a UUID in its canonical form (lower-case hex, hyphenated).
# Other spellings of the same UUID would be other strings in Delta's dedup key.
EVENT_ID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# The name of the API key that wrote a rating (serving/api_keys.py names keys with it);
# never the key itself.
WRITER_NAME_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}$"
# A rating time written as text must end in its UTC offset (RFC 3339: `Z` or `±hh:mm`;
# `±hhmm` is read too). Without one the same text is a different instant on every host.
# Unix seconds (digits only, MovieLens's form) are UTC by definition.
UTC_OFFSET_SUFFIX: Final = r"([Zz]|[+-][0-9]{2}:?[0-9]{2})$"
EPOCH_SECONDS_PATTERN: Final = r"^[0-9]+$"


class QuarantineReason(StrEnum):
    MALFORMED_LINE = "malformed_line"
    INVALID_USER_ID = "invalid_user_id"
    INVALID_MOVIE_ID = "invalid_movie_id"
    UNPARSABLE_RATING = "unparsable_rating"
    RATING_OUT_OF_RANGE = "rating_out_of_range"
    RATING_NOT_HALF_STEP = "rating_not_half_step"
    UNPARSABLE_TIMESTAMP = "unparsable_timestamp"
    RATED_AT_WITHOUT_OFFSET = "rated_at_without_offset"
    RATED_AT_BEFORE_FLOOR = "rated_at_before_floor"
    RATED_AT_IN_FUTURE = "rated_at_in_future"
    INVALID_EVENT = "invalid_event"


def is_half_step(value: float) -> bool:
    return float(value * 2).is_integer()


def _check_rating(value: float) -> float:
    if not RATING_MIN <= value <= RATING_MAX:
        raise ValueError(f"rating must be between {RATING_MIN} and {RATING_MAX}, got {value}")
    if not is_half_step(value):
        raise ValueError(f"rating must be a multiple of {RATING_STEP}, got {value}")
    return value


Rating = Annotated[float, AfterValidator(_check_rating)]
PositiveId = Annotated[int, Field(gt=0, le=MAX_ID)]


@dataclass(frozen=True)
class RatedAtRule:
    """When a rating can have been made: an instant with a UTC offset, not before
    `floor` (MovieLens starts in 1995) and at most `future_skew` ahead of now.

    "The latest rating wins" compares rated_at (in Delta and in the online state), so
    a time far in the future would win for ever, and a time without an offset would
    be read in the host's zone by one reader and in UTC by another. One rule, checked
    by the pydantic contract (`check`) and by Spark (`filmrec.ingestion.validation`).
    """

    floor: datetime
    future_skew: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> RatedAtRule:
        return cls(floor=settings.rated_at_floor, future_skew=settings.rated_at_max_future_skew)

    @classmethod
    def current(cls) -> RatedAtRule:
        """The rule of this process's settings (read once, see config.get_settings)."""
        from filmrec.config import get_settings

        return cls.from_settings(get_settings())

    def latest(self, now: datetime) -> datetime:
        return now + self.future_skew

    def violation(self, value: datetime, *, now: datetime | None = None) -> QuarantineReason | None:
        """Which part of the rule `value` breaks; None when it is a valid rating time."""
        if value.tzinfo is None or value.utcoffset() is None:
            return QuarantineReason.RATED_AT_WITHOUT_OFFSET
        try:
            if value < self.floor:
                return QuarantineReason.RATED_AT_BEFORE_FLOOR
            if value > self.latest(now or datetime.now(UTC)):
                return QuarantineReason.RATED_AT_IN_FUTURE
        except OverflowError:  # year 1 or 9999 with an offset: out of range in UTC
            return (
                QuarantineReason.RATED_AT_BEFORE_FLOOR
                if value.year < self.floor.year
                else QuarantineReason.RATED_AT_IN_FUTURE
            )
        return None

    def describe(self) -> str:
        minutes = self.future_skew.total_seconds() / 60
        floor = self.floor.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return f"not before {floor} and at most {minutes:g} minutes ahead of the server's clock"

    def check(self, value: datetime) -> datetime:
        """`value` if it keeps the rule; else a ValueError saying which part it breaks."""
        reason = self.violation(value)
        if reason is QuarantineReason.RATED_AT_WITHOUT_OFFSET:
            raise ValueError("rated_at needs a UTC offset (Z or +hh:mm)")
        if reason is not None:
            raise ValueError(f"rated_at must be {self.describe()} ({reason.value})")
        return value


def _check_rated_at(value: datetime) -> datetime:
    return RatedAtRule.current().check(value)


# A rating time as every entry point accepts it (see RatedAtRule).
RatedAt = Annotated[datetime, AfterValidator(_check_rated_at)]


def _canonical_event_id(value: object) -> object:
    """The wire's spelling only, read as the ingestion job reads it (spaces trimmed, any
    case): a UUID with braces, a urn: prefix or without hyphens is refused, not rewritten."""
    if not isinstance(value, str):
        return value
    text = value.strip(" ")
    if not re.fullmatch(EVENT_ID_PATTERN, text.lower()):
        raise ValueError("event_id must be a UUID in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
    return text


def event_id_for(*, user_id: int, movie_id: int, rating: float, rated_at_epoch: int) -> str:
    """The id a rating without an event id gets: a UUID-shaped SHA-256 of its content.

    Loading or replaying the same row twice therefore yields the same id, and the
    lakehouse deduplicates it. `filmrec.ingestion.validation.content_event_id` is
    the Spark twin of this function; a unit test keeps them equal.
    """
    digest = hashlib.sha256(f"{user_id}|{movie_id}|{rating:.1f}|{rated_at_epoch}".encode()).hexdigest()
    return str(uuid.UUID(hex=digest[:32]))


class RatingEvent(BaseModel):
    """A rating event as it travels on the Kafka topic (JSON, keyed by user_id)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = EVENT_SCHEMA_VERSION
    event_id: Annotated[uuid.UUID, BeforeValidator(_canonical_event_id)] = Field(default_factory=uuid.uuid4)
    user_id: PositiveId
    movie_id: PositiveId
    rating: Rating
    rated_at: RatedAt = Field(default_factory=lambda: datetime.now(UTC))
    source: str = Field(default="api", min_length=1, max_length=SOURCE_MAX_LENGTH)
    # The name of the API key that published it (POST /ratings); absent for CSV loads,
    # replays and producers without a key. Left out of the JSON when absent.
    written_by: str | None = Field(
        default=None, pattern=WRITER_NAME_PATTERN, exclude_if=lambda value: value is None
    )
