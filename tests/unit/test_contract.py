from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from filmrec.config import Settings, get_settings
from filmrec.ingestion.contract import (
    MAX_ID,
    QuarantineReason,
    RatedAtRule,
    RatingEvent,
    event_id_for,
    is_half_step,
)


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


# -- when a rating can have been made (RatedAtRule) -------------------------------------
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RULE = RatedAtRule(floor=datetime(1995, 1, 1, tzinfo=UTC), future_skew=timedelta(minutes=5))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (NOW, None),
        (NOW + timedelta(minutes=5), None),  # the skew is allowed
        (datetime(1995, 1, 1, tzinfo=UTC), None),  # the floor itself
        (datetime(2026, 6, 1, 14, 4, tzinfo=timezone(timedelta(hours=2))), None),  # 12:04 UTC
        (NOW + timedelta(minutes=5, seconds=1), QuarantineReason.RATED_AT_IN_FUTURE),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), QuarantineReason.RATED_AT_IN_FUTURE),
        (datetime(1994, 12, 31, 23, 59, 59, tzinfo=UTC), QuarantineReason.RATED_AT_BEFORE_FLOOR),
        (datetime(1970, 1, 1, tzinfo=UTC), QuarantineReason.RATED_AT_BEFORE_FLOOR),
        (datetime(2020, 1, 1), QuarantineReason.RATED_AT_WITHOUT_OFFSET),
        # Out of range once in UTC: still an answer, not an OverflowError.
        (
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59))),
            QuarantineReason.RATED_AT_BEFORE_FLOOR,
        ),
        (
            datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=23))),
            QuarantineReason.RATED_AT_IN_FUTURE,
        ),
    ],
)
def test_the_rated_at_rule(value: datetime, reason: QuarantineReason | None) -> None:
    assert RULE.violation(value, now=NOW) is reason


def test_the_rule_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RatedAtRule.current() == RULE  # the defaults
    monkeypatch.setenv("FILMREC_RATED_AT_FLOOR", "2000-01-01T00:00:00Z")
    monkeypatch.setenv("FILMREC_RATED_AT_MAX_FUTURE_SECONDS", "60")
    get_settings.cache_clear()
    assert RatedAtRule.current() == RatedAtRule(datetime(2000, 1, 1, tzinfo=UTC), timedelta(seconds=60))
    with pytest.raises(ValidationError, match="rated_at_before_floor"):
        RatingEvent(user_id=1, movie_id=1, rating=3.0, rated_at=datetime(1999, 1, 1, tzinfo=UTC))


def test_a_floor_without_an_offset_is_refused_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILMREC_RATED_AT_FLOOR", "1995-01-01T00:00:00")
    with pytest.raises(ValidationError, match="timezone"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("rated_at", "message"),
    [
        ("9999-12-31T23:59:59Z", "rated_at_in_future"),
        ("1990-01-01T00:00:00Z", "rated_at_before_floor"),
        ("2020-01-01T00:00:00", "needs a UTC offset"),
        (datetime(2020, 1, 1), "needs a UTC offset"),
    ],
)
def test_events_break_the_rated_at_rule_with_the_reason(rated_at: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RatingEvent(user_id=1, movie_id=1, rating=3.0, rated_at=rated_at)


def test_event_ids_are_read_in_the_wire_form_only() -> None:
    canonical = "12345678-1234-4234-8234-123456789abc"
    assert (
        str(RatingEvent(event_id=f" {canonical.upper()} ", user_id=1, movie_id=1, rating=3.0).event_id)
        == canonical
    )
    for spelling in (canonical.replace("-", ""), f"{{{canonical}}}", f"urn:uuid:{canonical}"):
        with pytest.raises(ValidationError, match="event_id must be a UUID"):
            RatingEvent(event_id=spelling, user_id=1, movie_id=1, rating=3.0)


def test_the_writer_is_a_key_name_and_absent_from_the_json_without_one() -> None:
    event = RatingEvent(user_id=1, movie_id=1, rating=3.0, written_by="shop-backend")
    assert '"written_by":"shop-backend"' in event.model_dump_json()
    assert "written_by" not in RatingEvent(user_id=1, movie_id=1, rating=3.0).model_dump_json()
    for bad in ("", "two words", "x" * 65, "name\n"):
        with pytest.raises(ValidationError, match="written_by"):
            RatingEvent(user_id=1, movie_id=1, rating=3.0, written_by=bad)


def test_ids_stop_at_postgresql_integers() -> None:
    assert RatingEvent(user_id=MAX_ID, movie_id=1, rating=3.0).user_id == 2**31 - 1
    with pytest.raises(ValidationError, match="user_id"):
        RatingEvent(user_id=MAX_ID + 1, movie_id=1, rating=3.0)
