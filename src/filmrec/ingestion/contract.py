"""The rating contract shared by CSV loads, Kafka events and the API.

One definition of what a valid rating is, so every entry point rejects the same rows
for the same reasons.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

RATING_MIN = 0.5
RATING_MAX = 5.0
RATING_STEP = 0.5
EVENT_SCHEMA_VERSION: Final = 1


class QuarantineReason(StrEnum):
    MALFORMED_LINE = "malformed_line"
    INVALID_USER_ID = "invalid_user_id"
    INVALID_MOVIE_ID = "invalid_movie_id"
    UNPARSABLE_RATING = "unparsable_rating"
    RATING_OUT_OF_RANGE = "rating_out_of_range"
    RATING_NOT_HALF_STEP = "rating_not_half_step"
    UNPARSABLE_TIMESTAMP = "unparsable_timestamp"
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
PositiveId = Annotated[int, Field(gt=0, lt=2**31)]


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
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    user_id: PositiveId
    movie_id: PositiveId
    rating: Rating
    rated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: str = Field(default="api", min_length=1, max_length=64)
