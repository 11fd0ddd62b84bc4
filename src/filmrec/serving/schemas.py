"""Request and response bodies of the API, named by role."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from filmrec.config import Settings
from filmrec.ingestion.contract import (
    RATING_MAX,
    RATING_MIN,
    RATING_STEP,
    PositiveId,
    RatedAt,
    RatedAtRule,
    Rating,
)

# The contract's rule (ingestion/contract.py validates it) stated in the OpenAPI document,
# so clients and the fuzzer see the range and the half steps the server enforces.
DocumentedRating = Annotated[
    Rating,
    Field(
        description=f"{RATING_MIN} to {RATING_MAX} stars in steps of {RATING_STEP}",
        json_schema_extra={"minimum": RATING_MIN, "maximum": RATING_MAX, "multipleOf": RATING_STEP},
    ),
]


class MovieOut(BaseModel):
    movie_id: int
    title: str | None
    year: int | None
    genres: list[str]


class ExplanationOut(BaseModel):
    """The user's rated movie that contributed most to a recommendation."""

    movie_id: int
    title: str | None = Field(description="None when the metadata database is down")
    weight: float = Field(
        description="How much it contributed: its cosine with the recommended movie (ALS), "
        "or its term in the score (EASE)"
    )


class ScoredMovieOut(MovieOut):
    score: float
    # Left out of the body unless asked for (explain=true): a list without explanations
    # is byte for byte what it was before they existed, cached entries included.
    because: ExplanationOut | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="With explain=true: why it was recommended (absent for a user with no ratings)",
    )


class MovieSearchOut(BaseModel):
    """One page of GET /movies: best matches first, `total` over every page."""

    q: str | None
    genre: str | None
    limit: int
    offset: int
    total: int
    items: list[MovieOut]


class GenresOut(BaseModel):
    genres: list[str]


class RecommendationsOut(BaseModel):
    user_id: int
    k: int
    strategy: Literal["model", "fold-in", "popular"] = Field(
        description=(
            "model: the trained user vector; fold-in: a vector solved now from the user's ratings, "
            "including ones the model has not seen yet; popular: a user with no usable ratings"
        )
    )
    source: Literal["model", "cache"]
    model_version: str
    items: list[ScoredMovieOut]


class SimilarMoviesOut(BaseModel):
    movie_id: int
    k: int
    model_version: str
    items: list[ScoredMovieOut]


class ModelOut(BaseModel):
    name: str
    version: str
    family: str | None = Field(
        description="the model family the training search chose for this version (als, ease)"
    )
    run_id: str | None
    metrics: dict[str, float]
    created_at: datetime | None
    loaded_at: datetime
    n_users: int
    n_items: int


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class DependencyOut(BaseModel):
    name: str
    status: Literal["up", "down", "not_configured"]
    kind: str
    latency_ms: float | None = None
    detail: str | None = None


class ReadyOut(BaseModel):
    status: Literal["ready", "degraded", "not_ready"]
    model_loaded: bool
    model_version: str | None
    dependencies: list[DependencyOut]


# RFC 3339's date-time, what the document's `format: date-time` promises: the offset
# is part of the grammar. Digits only would be read as Unix seconds, a bare date as a
# local midnight: the body takes exactly the documented form.
RFC3339_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339_text(value: object) -> object:
    if not isinstance(value, str) or not RFC3339_DATE_TIME.fullmatch(value):
        raise ValueError("rated_at must be an RFC 3339 date-time string with its UTC offset")
    return value


def _rated_at_description() -> str:
    # The document is built once, from the defaults; the server checks the settings'.
    rule = RatedAtRule.from_settings(Settings.model_construct())
    return (
        "When the user rated the movie (default: now), as an RFC 3339 date-time "
        f"with its UTC offset (e.g. 2024-05-01T12:30:00Z), {rule.describe()}; the floor and the skew are "
        "FILMREC_RATED_AT_FLOOR and FILMREC_RATED_AT_MAX_FUTURE_SECONDS (defaults shown). "
        "Outside them: 422. The latest rated_at of a user and a movie wins."
    )


DocumentedRatedAt = Annotated[
    RatedAt, BeforeValidator(_rfc3339_text), Field(description=_rated_at_description())
]


class RatingIn(BaseModel):
    """One rating from a client; `event_id` lets a client retry without double counting."""

    model_config = ConfigDict(extra="forbid")

    user_id: PositiveId
    movie_id: PositiveId
    rating: DocumentedRating
    rated_at: DocumentedRatedAt | None = None
    event_id: uuid.UUID | None = None


class RatingAcceptedOut(BaseModel):
    event_id: uuid.UUID
    topic: str
    status: str = Field(
        default="accepted",
        description="published to Kafka: in this user's next recommendations, and in Delta after ingestion",
    )


class ErrorOut(BaseModel):
    """Every error but 422: what went wrong, in a sentence."""

    detail: str = Field(description="What went wrong, for a human")


class ValidationErrorItemOut(BaseModel):
    """One problem with the request, as pydantic reports it."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="Where: ['query', 'k'], ['body', 'rating'], ...")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. less_than_equal")
    input: Any = Field(default=None, description="The value that was rejected")
    ctx: dict[str, Any] | None = None


class ValidationErrorOut(BaseModel):
    """422: every problem of the request, in one line and one by one."""

    detail: str = Field(
        description="Every problem in one line, e.g. `k: Input should be less than or equal to 100`"
    )
    errors: list[ValidationErrorItemOut]
