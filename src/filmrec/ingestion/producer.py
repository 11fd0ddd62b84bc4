"""Kafka producers for rating events: acks=all, idempotent, retried, time-bounded.

Both the replay CLI and the API's POST /ratings publish through `make_producer`, so
they share one delivery guarantee. Idempotence stops broker-side duplicates from
retries; the event_id stops duplicates from client-side re-sends (the lakehouse
deduplicates on it).
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from filmrec.config import Settings, get_settings
from filmrec.ingestion.contract import RatingEvent
from filmrec.ingestion.events import encode_event
from filmrec.ingestion.topics import bootstrap_servers

if TYPE_CHECKING:
    from confluent_kafka import Message, Producer

DEFAULT_DELIVERY_TIMEOUT_S = 5.0
KAFKA_LOGGER = logging.getLogger("filmrec.ingestion.kafka")


class PublishError(RuntimeError):
    """Kafka did not take the event; the API answers 503."""

    def __init__(self, message: str, *, event_id: str) -> None:
        super().__init__(message)
        self.event_id = event_id


class PublishTimeoutError(PublishError):
    """No delivery report within the timeout (typically: the broker is down)."""


def producer_config(
    settings: Settings, *, delivery_timeout_s: float, client_id: str = "filmrec"
) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap_servers(settings),
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        # Retries are unbounded in number but bounded in time by delivery.timeout.ms:
        # an event is either acknowledged or reported failed within that time.
        "retries": 2_147_483_647,
        "retry.backoff.ms": 100,
        "delivery.timeout.ms": max(1, int(delivery_timeout_s * 1000)),
        "socket.connection.setup.timeout.ms": max(1000, int(delivery_timeout_s * 1000)),
        "linger.ms": 5,
        "compression.type": "lz4",
        # librdkafka logs through Python logging instead of raw stderr lines; failures
        # the caller must act on surface as delivery reports anyway.
        "logger": KAFKA_LOGGER,
    }


def make_producer(
    settings: Settings | None = None,
    *,
    delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
    client_id: str = "filmrec",
    **overrides: Any,
) -> Producer:
    from confluent_kafka import Producer

    config = producer_config(
        settings or get_settings(), delivery_timeout_s=delivery_timeout_s, client_id=client_id
    )
    config.update(overrides)
    return Producer(config)


class RatingPublisher:
    """Publishes single events and waits for the broker's acknowledgement.

    Thread-safe: the underlying librdkafka producer is, and each call waits for its
    own delivery report, whichever thread's poll() happens to serve it.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        topic: str | None = None,
        delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
    ) -> None:
        settings = settings or get_settings()
        self.topic = topic or settings.kafka_topic
        self.delivery_timeout_s = delivery_timeout_s
        self._producer = make_producer(
            settings, delivery_timeout_s=delivery_timeout_s, client_id="filmrec-api"
        )

    def publish(self, event: RatingEvent, timeout_s: float | None = None) -> None:
        """Return once Kafka has acknowledged the event; raise PublishError otherwise.

        After a timeout the event may still be delivered later (until the producer's
        delivery timeout): a client that retries with the same event_id is safe,
        because ingestion deduplicates on it.
        """
        from confluent_kafka import KafkaException

        event_id = str(event.event_id)
        timeout_s = self.delivery_timeout_s if timeout_s is None else timeout_s
        delivered = threading.Event()
        errors: list[object] = []

        def on_delivery(error: object, _message: Message) -> None:
            if error is not None:
                errors.append(error)
            delivered.set()

        key, value = encode_event(event)
        try:
            self._producer.produce(self.topic, key=key, value=value, on_delivery=on_delivery)
        except BufferError as error:
            raise PublishError("the local Kafka queue is full", event_id=event_id) from error
        except KafkaException as error:
            raise PublishError(f"Kafka rejected the event: {error}", event_id=event_id) from error

        deadline = time.monotonic() + timeout_s
        while not delivered.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishTimeoutError(
                    f"Kafka did not acknowledge event {event_id} within {timeout_s:.1f}s",
                    event_id=event_id,
                )
            # Short polls: another thread may serve our callback meanwhile.
            self._producer.poll(min(remaining, 0.05))
        if errors:
            raise PublishError(f"Kafka delivery failed: {errors[0]}", event_id=event_id)

    def close(self, timeout_s: float = 5.0) -> int:
        """Flush what is queued; return how many messages were still undelivered."""
        return int(self._producer.flush(timeout_s))


@lru_cache(maxsize=1)
def default_publisher() -> RatingPublisher:
    """The process-wide publisher, created on first use (never at import)."""
    settings = get_settings()
    return RatingPublisher(settings, delivery_timeout_s=max(settings.dependency_timeout_seconds, 2.0))


def publish_event(
    event: RatingEvent, *, publisher: RatingPublisher | None = None, timeout_s: float | None = None
) -> None:
    """Publish one event (for POST /ratings); raises PublishError when Kafka cannot take it."""
    (publisher or default_publisher()).publish(event, timeout_s)
