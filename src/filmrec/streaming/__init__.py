"""Kafka streaming: the rating event wire format, producers, the broker and ingestion."""
