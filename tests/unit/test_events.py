"""The rating event wire format, the replay row mapping and the producer settings."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from filmrec.config import Settings
from filmrec.ingestion.contract import RatingEvent, event_id_for
from filmrec.ingestion.events import (
    InvalidEventError,
    deserialize_event,
    encode_event,
    serialize_event,
)
from filmrec.ingestion.producer import PublishTimeoutError, RatingPublisher, producer_config
from filmrec.ingestion.replay import read_events, row_to_event


def _event(**overrides: object) -> RatingEvent:
    fields: dict[str, object] = {
        "event_id": uuid.UUID("12345678-1234-4234-8234-123456789abc"),
        "user_id": 7,
        "movie_id": 42,
        "rating": 4.5,
        "rated_at": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        "source": "test",
    }
    fields.update(overrides)
    return RatingEvent.model_validate(fields)


def test_round_trip_and_key() -> None:
    event = _event()
    key, value = encode_event(event)
    assert key == b"7"
    assert deserialize_event(value) == event
    document = json.loads(value)
    assert document == {
        "schema_version": 1,
        "event_id": "12345678-1234-4234-8234-123456789abc",
        "user_id": 7,
        "movie_id": 42,
        "rating": 4.5,
        "rated_at": "2024-05-01T12:30:00Z",
        "source": "test",
    }


def test_epoch_seconds_are_accepted_for_rated_at() -> None:
    document = json.loads(serialize_event(_event()))
    document["rated_at"] = 1714566600
    assert deserialize_event(json.dumps(document)).rated_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def test_the_writer_travels_with_the_event() -> None:
    event = _event(written_by="shop-backend")
    assert json.loads(serialize_event(event))["written_by"] == "shop-backend"
    assert deserialize_event(serialize_event(event)) == event


def _mutated(**changes: object) -> str:
    document = json.loads(serialize_event(_event()))
    for name, value in changes.items():
        if value is ...:
            del document[name]
        else:
            document[name] = value
    return json.dumps(document)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("{not json", "malformed JSON"),
        ("", "malformed JSON"),
        ("[1, 2]", "not a JSON object"),
        (_mutated(event_id=...), "missing fields: event_id"),
        (_mutated(rated_at=None), "missing fields: rated_at"),
        (_mutated(source=...), "missing fields: source"),
        (_mutated(rating=7.0), "invalid fields: rating"),
        (_mutated(rating=3.3), "invalid fields: rating"),
        (_mutated(user_id=0), "invalid fields: user_id"),
        (_mutated(movie_id="abc"), "invalid fields: movie_id"),
        (_mutated(event_id="not-a-uuid"), "invalid fields: event_id"),
        (_mutated(schema_version=2), "invalid fields: schema_version"),
        (_mutated(colour="red"), "invalid fields: colour"),
        (_mutated(rated_at="yesterday"), "invalid fields: rated_at"),
        (_mutated(rated_at="9999-12-31T23:59:59Z"), "invalid fields: rated_at"),
        (_mutated(rated_at="2024-05-01T12:30:00"), "invalid fields: rated_at"),
        (_mutated(rated_at=0), "invalid fields: rated_at"),
        (_mutated(written_by="not a name"), "invalid fields: written_by"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(payload: str, reason: str) -> None:
    with pytest.raises(InvalidEventError, match=reason):
        deserialize_event(payload)


def test_replay_rows_get_content_event_ids() -> None:
    event = row_to_event(["1", "31", "2.5", "1260759144"])
    assert event is not None
    assert str(event.event_id) == event_id_for(user_id=1, movie_id=31, rating=2.5, rated_at_epoch=1260759144)
    assert event.rated_at == datetime.fromtimestamp(1260759144, UTC)
    assert row_to_event(["1", "31", "2.5", "1260759144"]) == event  # replays dedupe


@pytest.mark.parametrize(
    "row", [["1", "31", "7.0", "1260759144"], ["x", "31", "2.5", "1"], ["1", "31"], ["1", "2", "3", "t"]]
)
def test_replay_rows_breaking_the_contract_are_skipped(row: list[str]) -> None:
    assert row_to_event(row) is None


def test_read_events_skips_header_and_honours_limit(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,9.0,964982704\n\n1,6,4.0,964982705\n"
    )
    assert [e is not None for e in read_events(path)] == [True, False, True]
    assert len(list(read_events(path, limit=2))) == 2


def test_producer_is_durable_and_bounded() -> None:
    config = producer_config(Settings(KAFKA_BOOTSTRAP_SERVERS="k:9092"), delivery_timeout_s=2.5)
    assert config["bootstrap.servers"] == "k:9092"
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    assert config["retries"] > 0
    assert config["delivery.timeout.ms"] == 2500


def test_publish_fails_fast_when_no_broker_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """No broker: publish gives up at its own deadline, counted in polls, not waited for.

    The publisher's clock is the test's: each poll of librdkafka (real, against a port
    where nothing listens) advances it by the poll's own timeout, so the deadline is
    reached after exactly timeout_s / 0.05 polls, however slow the machine is.
    """
    import socket
    from types import SimpleNamespace

    from filmrec.ingestion import producer

    with socket.socket() as sock:  # a port that is free, so nothing answers there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # librdkafka's own delivery timeout far beyond the publish timeout: the outcome is
    # the publisher's deadline, whatever the broker connection attempts report.
    publisher = RatingPublisher(Settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}"), delivery_timeout_s=300)
    clock = [1000.0]
    polls: list[float] = []

    class CountedPolls:
        def __init__(self, real: object) -> None:
            self.real = real

        def __getattr__(self, name: str) -> object:
            return getattr(self.real, name)

        def poll(self, timeout: float) -> int:
            polls.append(timeout)
            clock[0] += timeout
            return int(self.real.poll(0))  # type: ignore[attr-defined]

    monkeypatch.setattr(producer, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    real = publisher._producer
    publisher._producer = CountedPolls(real)  # type: ignore[assignment]
    with pytest.raises(PublishTimeoutError, match=r"within 1\.0s") as raised:
        publisher.publish(_event(), timeout_s=1.0)
    assert raised.value.event_id == "12345678-1234-4234-8234-123456789abc"
    # Short polls that add up to the timeout, then the error: no wait beyond it.
    assert all(timeout <= 0.05 for timeout in polls)
    assert sum(polls) == pytest.approx(1.0) and len(polls) in (20, 21)
    publisher._producer = real
    publisher.close(timeout_s=0)
