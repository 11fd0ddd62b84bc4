"""Ingestion: how ratings enter the lakehouse, by both routes, under one contract.

* the contract (contract.py): the rating event, its validation rules, content ids;
* the CSV route (csv_load.py) and the Kafka route: the wire format (events.py),
  producers (producer.py, replay.py), topics (topics.py) and the Structured
  Streaming job (kafka_ingest.py) with its checkpoint lock and status file;
* validation and quarantine rules shared by both routes (validation.py).
"""
