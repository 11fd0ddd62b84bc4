from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from filmrec.serving.metrics import IngestionStatusCollector

pytestmark = pytest.mark.unit


def test_the_ingestion_status_file_becomes_metrics(tmp_path: Path) -> None:
    status = tmp_path / "ingestion.json"
    registry = CollectorRegistry()
    registry.register(IngestionStatusCollector(status))
    assert b"filmrec_ingestion" not in generate_latest(registry)  # no run yet: no series

    status.write_text(
        json.dumps(
            {
                "lag": 7,
                "last_success_at": "2026-01-02T03:04:05+00:00",
                "totals": {"written": 98, "quarantined": 2},
            }
        )
    )
    text = generate_latest(registry).decode()
    assert 'filmrec_ingestion_events_total{outcome="written"} 98.0' in text
    assert 'filmrec_ingestion_events_total{outcome="quarantined"} 2.0' in text
    assert "filmrec_ingestion_lag_messages 7.0" in text
    assert "filmrec_ingestion_last_success_timestamp_seconds 1.767323045e+09" in text
