"""A rating intake that accepts everything: for tests where Kafka is not under test."""

from __future__ import annotations

import uuid

from filmrec.ingestion.contract import RatingEvent
from filmrec.serving.schemas import RatingIn


class AcceptAll:
    """Only the layers in front of the intake (keys, limits, validation) decide the answer."""

    topic = "ratings"

    def __init__(self) -> None:
        self.accepted: list[RatingEvent] = []

    def accept(self, rating: RatingIn, *, written_by: str | None = None) -> RatingEvent:
        event = RatingEvent(event_id=uuid.uuid4(), user_id=rating.user_id, movie_id=rating.movie_id,
                            rating=rating.rating, source="api", written_by=written_by)  # fmt: skip
        self.accepted.append(event)
        return event
