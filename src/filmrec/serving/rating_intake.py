"""POST /ratings behind the route: validate, publish to Kafka, apply to the online state.

The event goes to Kafka first; only once Kafka has acknowledged it is it applied to
the online state, so the poster's next request sees it (read-your-writes) without
waiting for the API's consumer, which then finds the event_id applied and changes
nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from filmrec.config import Settings
from filmrec.ingestion.contract import RatingEvent
from filmrec.serving import metrics
from filmrec.serving.online_state import OnlineRating, OnlineStateStore, VisibilityTracker
from filmrec.serving.schemas import RatingIn

if TYPE_CHECKING:
    from filmrec.ingestion.producer import RatingPublisher

log = logging.getLogger(__name__)

# Kafka must acknowledge within this many seconds, or the client gets a 503.
PUBLISH_TIMEOUT_SECONDS = 2.0


class RatingsUnavailableError(RuntimeError):
    """The rating could not be published; the message says why (the API answers 503)."""


class RatingIntake:
    def __init__(
        self, settings: Settings, online: OnlineStateStore | None, visibility: VisibilityTracker
    ) -> None:
        self.settings = settings
        self.online = online
        self.visibility = visibility
        self.topic = settings.kafka_topic
        self._publisher: RatingPublisher | None = None
        self._lock = threading.Lock()

    def _publisher_for(self) -> RatingPublisher:
        from filmrec.ingestion.producer import RatingPublisher

        with self._lock:  # built on the first rating: no producer threads for read-only APIs
            if self._publisher is None:
                self._publisher = RatingPublisher(self.settings, delivery_timeout_s=PUBLISH_TIMEOUT_SECONDS)
            return self._publisher

    def accept(self, rating: RatingIn, *, written_by: str | None = None) -> RatingEvent:
        """Publish `rating`, recording `written_by` (the name of the API key that sent it,
        never the key); raise RatingsUnavailableError when Kafka cannot take it."""
        from confluent_kafka import KafkaException

        from filmrec.ingestion.producer import PublishError

        if not self.settings.kafka_bootstrap_servers:
            raise RatingsUnavailableError(
                "ratings cannot be accepted: no Kafka is configured (set KAFKA_BOOTSTRAP_SERVERS)"
            )
        event = RatingEvent(
            event_id=rating.event_id or uuid.uuid4(),
            user_id=rating.user_id,
            movie_id=rating.movie_id,
            rating=rating.rating,
            rated_at=rating.rated_at or datetime.now(UTC),
            source="api",
            written_by=written_by,
        )
        try:
            self._publisher_for().publish(event, PUBLISH_TIMEOUT_SECONDS)
        except (PublishError, KafkaException) as error:  # KafkaException: a producer that cannot be built
            metrics.KAFKA_PUBLISH_FAILURES.inc()
            metrics.DEPENDENCY_UP.labels(dependency="kafka").set(0)
            raise RatingsUnavailableError(f"Kafka did not take the rating: {error}") from error
        metrics.DEPENDENCY_UP.labels(dependency="kafka").set(1)
        self._apply_online(event)
        return event

    def _apply_online(self, event: RatingEvent) -> None:
        if self.online is None:
            return
        rating = OnlineRating.from_event(event, published_ms=int(time.time() * 1000))
        try:
            if self.online.apply(rating):
                self.visibility.applied(rating.user_id, rating.published_ms)
        except Exception as error:  # Kafka has it: the consumer applies it when the state is back
            metrics.DEPENDENCY_UP.labels(dependency="online_state").set(0)
            log.warning(
                "online state unavailable, rating %s waits for the consumer: %s", event.event_id, error
            )

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
