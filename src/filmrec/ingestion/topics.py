"""Create the ratings topic with the configured partition count if it is missing."""

from __future__ import annotations

import argparse
import sys

from filmrec.config import Settings, get_settings

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"  # the broker `make kafka-up` starts


def bootstrap_servers(settings: Settings) -> str:
    return settings.kafka_bootstrap_servers or DEFAULT_BOOTSTRAP_SERVERS


def ensure_topic(
    settings: Settings,
    *,
    topic: str | None = None,
    partitions: int | None = None,
    replication_factor: int = 1,
    timeout_s: float = 15.0,
) -> bool:
    """Create `topic` unless it exists; return True when it was created.

    An existing topic is never altered: adding partitions would move users to other
    partitions and break per-user ordering, so a mismatch is only reported.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = topic or settings.kafka_topic
    partitions = partitions or settings.kafka_partitions
    admin = AdminClient({"bootstrap.servers": bootstrap_servers(settings)})
    metadata = admin.list_topics(timeout=timeout_s)
    existing = metadata.topics.get(topic)
    if existing is not None and existing.error is None:
        if len(existing.partitions) != partitions:
            print(
                f"topic {topic} has {len(existing.partitions)} partitions, configured {partitions}; "
                "left unchanged",
                file=sys.stderr,
            )
        return False
    future = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )[topic]
    try:
        future.result(timeout=timeout_s)
    except KafkaException as error:
        # Another producer (or broker auto-creation) may have won the race.
        if error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create the ratings topic if it is missing.")
    parser.add_argument("--topic", default=None)
    parser.add_argument("--partitions", type=int, default=None)
    args = parser.parse_args(argv)
    settings = get_settings()
    created = ensure_topic(settings, topic=args.topic, partitions=args.partitions)
    topic = args.topic or settings.kafka_topic
    print(f"topic {topic} {'created' if created else 'exists'} on {bootstrap_servers(settings)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
