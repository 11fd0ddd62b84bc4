"""Request and response bodies of the API, named by role."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from filmrec.ingestion.contract import PositiveId, Rating


class MovieOut(BaseModel):
    movie_id: int
    title: str | None
    year: int | None
    genres: list[str]


class ScoredMovieOut(MovieOut):
    score: float


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


class RatingIn(BaseModel):
    """One rating from a client; `event_id` lets a client retry without double counting."""

    model_config = ConfigDict(extra="forbid")

    user_id: PositiveId
    movie_id: PositiveId
    rating: Rating
    rated_at: datetime | None = None
    event_id: uuid.UUID | None = None


class RatingAcceptedOut(BaseModel):
    event_id: uuid.UUID
    topic: str
    status: str = Field(
        default="accepted",
        description="published to Kafka: in this user's next recommendations, and in Delta after ingestion",
    )


class ErrorOut(BaseModel):
    detail: str | list[dict[str, object]] = Field(description="What was wrong with the request")
