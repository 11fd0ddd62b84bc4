"""The rating event on the wire: JSON value, user_id key (see CONNECTIONS.md).

Keying by user_id keeps one user's ratings in one partition, in order, which is what
"the latest rating wins" needs when the same user re-rates a movie quickly.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from filmrec.ingestion.contract import RatingEvent

# Fields a message must carry explicitly. The model has defaults for event_id and
# rated_at (for the API), but on the wire a missing event_id would get a fresh UUID
# on every read and break deduplication, so the ingestion job rejects it too.
WIRE_REQUIRED_FIELDS = ("event_id", "user_id", "movie_id", "rating", "rated_at", "source")
# Optional: schema_version (1 when absent) and written_by (the API key's name, only on
# ratings the API took).
WIRE_FIELDS = ("schema_version", *WIRE_REQUIRED_FIELDS, "written_by")


class InvalidEventError(ValueError):
    """A message that is not a valid rating event; `reason` is short and loggable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def event_key(event: RatingEvent) -> bytes:
    return str(event.user_id).encode()


def serialize_event(event: RatingEvent) -> bytes:
    """Compact JSON; datetimes in ISO-8601 with their offset (UTC: `Z`)."""
    return event.model_dump_json().encode()


def encode_event(event: RatingEvent) -> tuple[bytes, bytes]:
    """(key, value) as they go to Kafka."""
    return event_key(event), serialize_event(event)


def deserialize_event(payload: bytes | str) -> RatingEvent:
    """Parse and validate one message value, with the same rules as the ingestion job."""
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidEventError(f"malformed JSON: {error}") from error
    if not isinstance(document, dict):
        raise InvalidEventError("malformed event: not a JSON object")
    missing = [field for field in WIRE_REQUIRED_FIELDS if document.get(field) is None]
    if missing:
        raise InvalidEventError(f"missing fields: {', '.join(missing)}")
    try:
        return RatingEvent.model_validate(document)
    except ValidationError as error:
        fields = sorted({".".join(str(part) for part in item["loc"]) for item in error.errors()})
        raise InvalidEventError(f"invalid fields: {', '.join(fields)}") from error
