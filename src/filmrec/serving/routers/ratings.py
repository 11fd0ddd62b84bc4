from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from filmrec.contract import PositiveId, Rating, RatingEvent
from filmrec.serving import metrics
from filmrec.serving.deps import StateDep
from filmrec.serving.online_state import OnlineRating
from filmrec.serving.schemas import ErrorOut
from filmrec.serving.state import AppState

if TYPE_CHECKING:
    from filmrec.streaming.producer import RatingPublisher

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ratings", tags=["ratings"])

# Kafka must acknowledge within this many seconds, or the client gets a 503.
PUBLISH_TIMEOUT_SECONDS = 2.0
_publisher_lock = threading.Lock()


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


def _publisher(state: AppState) -> RatingPublisher:
    from filmrec.streaming.producer import RatingPublisher

    with _publisher_lock:
        if state.rating_publisher is None:
            state.rating_publisher = RatingPublisher(
                state.settings, delivery_timeout_s=PUBLISH_TIMEOUT_SECONDS
            )
    return state.rating_publisher


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RatingAcceptedOut,
    responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
def post_rating(rating: RatingIn, state: StateDep) -> RatingAcceptedOut:
    """Validate one rating and publish it to Kafka; it reaches Delta on the next ingestion."""
    from confluent_kafka import KafkaException

    from filmrec.streaming.producer import PublishError

    if not state.settings.kafka_bootstrap_servers:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="ratings cannot be accepted: no Kafka is configured (set KAFKA_BOOTSTRAP_SERVERS)",
        )
    event = RatingEvent(
        event_id=rating.event_id or uuid.uuid4(),
        user_id=rating.user_id,
        movie_id=rating.movie_id,
        rating=rating.rating,
        rated_at=rating.rated_at or datetime.now(UTC),
        source="api",
    )
    try:
        _publisher(state).publish(event, PUBLISH_TIMEOUT_SECONDS)
    except (PublishError, KafkaException) as error:  # KafkaException: a producer that cannot be built
        metrics.KAFKA_PUBLISH_FAILURES.inc()
        metrics.DEPENDENCY_UP.labels(dependency="kafka").set(0)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"Kafka did not take the rating: {error}"
        ) from error
    metrics.DEPENDENCY_UP.labels(dependency="kafka").set(1)
    _apply_online(state, event)
    return RatingAcceptedOut(event_id=event.event_id, topic=state.settings.kafka_topic)


def _apply_online(state: AppState, event: RatingEvent) -> None:
    """Read-your-writes: the poster's next request sees the rating without waiting for
    the consumer (which then finds the event_id applied and changes nothing)."""
    if state.online is None:
        return
    rating = OnlineRating.from_event(event, published_ms=int(time.time() * 1000))
    try:
        if state.online.apply(rating):
            state.visibility.applied(rating.user_id, rating.published_ms)
    except Exception as error:  # Kafka has it: the consumer applies it when the state is back
        metrics.DEPENDENCY_UP.labels(dependency="online_state").set(0)
        log.warning("online state unavailable, rating %s waits for the consumer: %s", event.event_id, error)
