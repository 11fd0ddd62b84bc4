from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from filmrec.ingestion.ingest_status import RunState, RunStatus
from filmrec.serving.metrics import IngestionStatusCollector


def test_the_ingestion_status_file_becomes_metrics(tmp_path: Path) -> None:
    status = tmp_path / "ingestion.json"
    registry = CollectorRegistry()
    registry.register(IngestionStatusCollector(status))
    assert b"filmrec_ingestion" not in generate_latest(registry)  # no run yet: no series

    # A file from before continuous mode: the series it can back, running 0 for both modes.
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
    assert 'filmrec_ingestion_running{mode="continuous"} 0.0' in text
    assert 'filmrec_ingestion_running{mode="available_now"} 0.0' in text
    assert "filmrec_ingestion_batches_total" not in text
    assert "filmrec_ingestion_batch_duration_seconds" not in text


def test_a_running_continuous_job_after_a_batch(tmp_path: Path) -> None:
    status = tmp_path / "ingestion.json"
    registry = CollectorRegistry()
    registry.register(IngestionStatusCollector(status))
    run = RunStatus(status, mode="continuous")  # written as the job writes it
    batch_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    run.publish(
        state=RunState.RUNNING,
        counts={"read": 12, "written": 10, "duplicates": 1, "quarantined": 1, "batches": 3, "lag": 4},
        success=True,
        last_batch_seconds=2.5,
        last_batch_at=batch_at.isoformat(),
    )
    text = generate_latest(registry).decode()
    assert 'filmrec_ingestion_running{mode="continuous"} 1.0' in text
    assert 'filmrec_ingestion_running{mode="available_now"} 0.0' in text
    assert "filmrec_ingestion_batches_total 3.0" in text
    assert "filmrec_ingestion_batch_duration_seconds 2.5" in text
    assert f"filmrec_ingestion_last_batch_timestamp_seconds {batch_at.timestamp():.9e}" in text
    assert "filmrec_ingestion_lag_messages 4.0" in text
    assert 'filmrec_ingestion_events_total{outcome="read"} 12.0' in text
    assert 'outcome="batches"' not in text  # batches are their own counter, not an outcome

    run.publish(state=RunState.STOPPED)
    text = generate_latest(registry).decode()
    assert 'filmrec_ingestion_running{mode="continuous"} 0.0' in text
