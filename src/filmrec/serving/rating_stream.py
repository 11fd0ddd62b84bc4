"""The API's own consumer of the ratings topic: every producer's events reach scoring.

POST /ratings, the replay CLI and any other service publish to the same topic; this
consumer applies each event to the online state (serving/online_state.py), so a
rating changes that user's next /recommendations within about a poll interval,
without waiting for ingestion or retraining.

Where it starts, and why:
* in-process state (no REDIS_URL): each process holds its own state, so it reads
  every partition itself (no consumer group) from the first offset published
  within ONLINE_STATE_TTL_SECONDS, which rebuilds the state after a restart;
* Redis state (shared by replicas): the replicas form one consumer group and
  split the partitions; offsets are committed only after the events are in
  Redis, and a partition the group has never read starts at the same TTL window.
  A re-delivered event is a no-op (event_id), so a crash between applying and
  committing applies nothing twice.
Events the served model already contains (a replay of history) are skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from filmrec.config import Settings
from filmrec.ingestion.events import InvalidEventError, deserialize_event
from filmrec.ingestion.topics import bootstrap_servers
from filmrec.serving import metrics
from filmrec.serving.model_holder import ModelHolder
from filmrec.serving.online_state import OnlineRating, OnlineStateStore, rating_in_model

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message, TopicPartition

log = logging.getLogger(__name__)

ONLINE_CONSUMER_GROUP = "filmrec-api-online"
BATCH_SIZE = 500
POLL_SECONDS = 0.2
# Lag and state size are gauges: refreshed this often, not per message.
GAUGE_REFRESH_SECONDS = 5.0

# Called with (user_id, published_ms) for each event that changed a user's state.
AppliedHook = Callable[[int, int], None]


class RatingStreamConsumer:
    """A daemon thread that applies the ratings topic to the online state."""

    def __init__(
        self,
        settings: Settings,
        store: OnlineStateStore,
        holder: ModelHolder,
        *,
        on_applied: AppliedHook | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.holder = holder
        self.on_applied = on_applied
        # Shared state (Redis): replicas split the partitions in one group.
        self.shared = store.name == "redis"
        self.topic = settings.kafka_topic
        self.applied = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._gauges_at = 0.0

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ratings-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop ----------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers(self.settings),
            "client.id": "filmrec-api-online",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
            "socket.connection.setup.timeout.ms": 5000,
            "logger": logging.getLogger("filmrec.ingestion.kafka"),
        }
        # Without a group nothing is committed; librdkafka still wants a group id.
        config["group.id"] = ONLINE_CONSUMER_GROUP if self.shared else f"{ONLINE_CONSUMER_GROUP}-local"
        return config

    def _window_start_ms(self) -> int:
        return int((time.time() - self.settings.online_state_ttl_seconds) * 1000)

    def _start_offsets(self, consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Each partition at the first offset published within the TTL window."""
        from confluent_kafka import TopicPartition

        stamp = self._window_start_ms()
        query = [TopicPartition(tp.topic, tp.partition, stamp) for tp in partitions]
        found = consumer.offsets_for_times(query, timeout=10)
        # -1 (no message that recent): start at the end; nothing there is in the window.
        return [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -1) for tp in found]

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=10)
        fresh = [tp for tp in committed if tp.offset < 0]
        starts = self._start_offsets(consumer, fresh) if fresh else []
        by_partition = {tp.partition: tp for tp in starts}
        consumer.assign([by_partition.get(tp.partition, tp) for tp in committed])

    def _connect(self) -> Consumer:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(self._config())
        if self.shared:
            consumer.subscribe([self.topic], on_assign=self._on_assign)
            return consumer
        metadata = consumer.list_topics(self.topic, timeout=10)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            consumer.close()
            raise RuntimeError(f"topic {self.topic} does not exist yet")
        partitions = [TopicPartition(self.topic, p) for p in sorted(topic.partitions)]
        consumer.assign(self._start_offsets(consumer, partitions))
        return consumer

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                consumer = self._connect()
            except Exception as error:  # broker down or topic missing: retry, never crash the API
                self._failed(error)
                self._stop.wait(2.0)
                continue
            self._consumer = consumer
            self.last_error = None
            metrics.DEPENDENCY_UP.labels(dependency="ratings_stream").set(1)
            try:
                self._consume(consumer)
            except Exception as error:
                self._failed(error)
                self._stop.wait(1.0)
            finally:
                self._consumer = None
                try:
                    consumer.close()
                except Exception as error:  # closing a consumer of a dead broker may fail
                    log.debug("closing the ratings consumer: %s", error)

    def _failed(self, error: Exception) -> None:
        self.last_error = f"{type(error).__name__}: {error}"[:500]
        metrics.DEPENDENCY_UP.labels(dependency="ratings_stream").set(0)
        log.warning("ratings consumer: %s (retrying)", self.last_error)

    def _consume(self, consumer: Consumer) -> None:
        while not self._stop.is_set():
            # poll() returns on the first message; consume() would wait out its whole
            # timeout for a full batch, which is latency a quiet topic should not pay.
            first = consumer.poll(POLL_SECONDS)
            messages = [first, *consumer.consume(num_messages=BATCH_SIZE - 1, timeout=0)] if first else []
            for message in messages:
                if self._stop.is_set():
                    # Stopped mid-batch: leave the rest uncommitted, as a crash would;
                    # the next consumer re-reads it and the applied ones are no-ops.
                    return
                if message.error() is not None:
                    log.debug("ratings consumer: %s", message.error())
                    continue
                self._apply(message)
            if messages and self.shared:
                # After the events are in Redis: a crash before this re-delivers them,
                # and re-delivered events are no-ops.
                consumer.commit(asynchronous=False)
            self._refresh_gauges(consumer)

    def _apply(self, message: Message) -> None:
        try:
            event = deserialize_event(message.value() or b"")
        except InvalidEventError:
            # Ingestion quarantines it with the reason; scoring just skips it.
            metrics.ONLINE_EVENTS.labels(outcome="invalid").inc()
            return
        _kind, published_ms = message.timestamp()
        rating = OnlineRating.from_event(event, published_ms=published_ms if published_ms > 0 else 0)
        model = self.holder.current
        if model is not None and rating_in_model(model.recommender, rating):
            metrics.ONLINE_EVENTS.labels(outcome="in_model").inc()
            return
        version = self.store.apply(rating)
        if not version:
            metrics.ONLINE_EVENTS.labels(outcome="duplicate_or_older").inc()
            return
        self.applied += 1
        metrics.ONLINE_EVENTS.labels(outcome="applied").inc()
        if self.on_applied is not None:
            self.on_applied(rating.user_id, rating.published_ms)

    def _refresh_gauges(self, consumer: Consumer) -> None:
        # Not per batch: lag asks the broker for every partition's watermarks, and the
        # Redis state's size walks every user, so under a steady stream they would
        # cost more than applying the events.
        now = time.monotonic()
        if now - self._gauges_at < GAUGE_REFRESH_SECONDS:
            return
        self._gauges_at = now
        metrics.ONLINE_CONSUMER_LAG.set(consumer_lag(consumer))
        users, ratings = self.store.size()
        metrics.ONLINE_STATE_USERS.set(users)
        metrics.ONLINE_STATE_RATINGS.set(ratings)


def consumer_lag(consumer: Consumer) -> int:
    """Messages in the assigned partitions that this consumer has not read yet."""
    lag = 0
    assignment = consumer.assignment()
    if not assignment:
        return 0
    for position in consumer.position(assignment):
        low, high = consumer.get_watermark_offsets(position, timeout=2, cached=False)
        current = position.offset if position.offset >= 0 else low
        lag += max(0, high - current)
    return lag
