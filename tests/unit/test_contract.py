from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from filmrec.ingestion.contract import RatingEvent, event_id_for, is_half_step


def test_a_valid_event_gets_an_id_and_a_timestamp() -> None:
    event = RatingEvent(user_id=1, movie_id=2, rating=4.5)
    assert isinstance(event.event_id, uuid.UUID)
    assert event.rated_at.tzinfo is not None
    assert event.schema_version == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rating", 5.5, "between 0.5 and 5.0"),
        ("rating", 0.0, "between 0.5 and 5.0"),
        ("rating", 3.3, "multiple of 0.5"),
        ("user_id", 0, "greater than 0"),
        ("movie_id", -4, "greater than 0"),
    ],
)
def test_invalid_values_are_rejected_with_the_reason(field: str, value: float, message: str) -> None:
    payload = {"user_id": 1, "movie_id": 1, "rating": 3.0} | {field: value}
    with pytest.raises(ValidationError, match=message):
        RatingEvent(**payload)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        RatingEvent(user_id=1, movie_id=1, rating=3.0, mood="happy")


def test_content_event_ids_are_deterministic_and_distinct() -> None:
    first = event_id_for(user_id=1, movie_id=2, rating=4.0, rated_at_epoch=964982703)
    assert first == event_id_for(user_id=1, movie_id=2, rating=4.0, rated_at_epoch=964982703)
    assert first != event_id_for(user_id=1, movie_id=2, rating=4.5, rated_at_epoch=964982703)
    assert uuid.UUID(first)


@pytest.mark.parametrize(("value", "expected"), [(0.5, True), (4.0, True), (3.5, True), (3.25, False)])
def test_half_steps(value: float, expected: bool) -> None:
    assert is_half_step(value) is expected
