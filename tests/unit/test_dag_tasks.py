"""The logic behind the DAG tasks, without a scheduler, a JVM or a service."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from filmrec.config import Settings
from filmrec.ingestion.checkpoint_lock import CheckpointLock
from filmrec.ingestion.kafka_ingest import checkpoint_dir
from filmrec.lakehouse import delta_log
from filmrec.lakehouse.tables import LakehouseTables
from filmrec.orchestration.defaults import default_args
from filmrec.orchestration.spark_jobs import parse_search, write_result
from filmrec.orchestration.tasks import (
    checkpoint_busy_reason,
    gate_decision,
    notify_api,
    run_dir,
    skip_while_checkpoint_busy,
    warm_serving_cache,
)
from filmrec.training.params import SEARCHES
from tests.conftest import require


def _commit(table: Path, version: int, operation: str, metrics: dict[str, int]) -> None:
    """One Delta commit file, shaped as delta-spark writes them (commitInfo + an add)."""
    log_dir = table / "_delta_log"
    log_dir.mkdir(parents=True, exist_ok=True)
    actions: list[dict[str, Any]] = [
        {"commitInfo": {"operation": operation, "operationMetrics": {k: str(v) for k, v in metrics.items()}}},
        {"add": {"path": f"part-{version}.parquet", "size": 1, "dataChange": True}},
    ]
    (log_dir / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """clean_ratings as the loaders leave it: created empty, then two merges."""
    path = tmp_path / "clean_ratings"
    _commit(path, 0, "WRITE", {"numOutputRows": 0})
    _commit(path, 1, "MERGE", {"numTargetRowsInserted": 100, "numTargetRowsUpdated": 0})
    _commit(path, 2, "MERGE", {"numTargetRowsInserted": 7, "numTargetRowsUpdated": 3})
    (path / "_delta_log" / "00000000000000000002.crc").write_text("{}")  # not a commit
    return path


def test_delta_log_version_and_changed_rows(table: Path) -> None:
    assert delta_log.latest_version(table) == 2
    assert delta_log.rows_changed(table, 1) == 100
    assert delta_log.rows_changed_since(table, 1) == 10
    assert delta_log.rows_changed_since(table, 2) == 0
    assert delta_log.latest_version(table.parent / "missing") is None


def test_delta_log_cannot_tell_after_retention_or_recreation(table: Path) -> None:
    (table / "_delta_log" / "00000000000000000001.json").unlink()  # log cleanup removed it
    assert delta_log.rows_changed_since(table, 0) is None
    assert delta_log.rows_changed_since(table, 5) is None  # table recreated with fewer versions


def test_delta_log_ignores_maintenance_commits(table: Path) -> None:
    _commit(table, 3, "OPTIMIZE", {"numAddedFiles": 1, "numRemovedFiles": 2})
    assert delta_log.rows_changed_since(table, 2) == 0


def test_gate_trains_on_first_run_and_on_new_rows(table: Path) -> None:
    first = gate_decision(table, None)
    assert first.should_train and first.data_version == 2 and first.reason == "no registered model yet"
    newer = gate_decision(table, 1, min_new_rows=10)
    assert newer.should_train and newer.new_rows == 10


def test_gate_skips_without_enough_new_data(table: Path) -> None:
    same = gate_decision(table, 2)
    assert not same.should_train and same.new_rows == 0 and "nothing new" in same.reason
    few = gate_decision(table, 1, min_new_rows=11)
    assert not few.should_train and "fewer than 11" in few.reason
    assert gate_decision(table, 2, force=True).should_train


def test_gate_skips_when_there_is_no_table(tmp_path: Path) -> None:
    check = gate_decision(tmp_path / "clean_ratings", None, force=True)
    assert not check.should_train and "load data first" in check.reason


def test_gate_trains_when_the_log_cannot_tell(table: Path) -> None:
    (table / "_delta_log" / "00000000000000000001.json").unlink()
    check = gate_decision(table, 0, min_new_rows=1_000_000)
    assert check.should_train and check.new_rows is None


def test_parse_search_takes_a_name_and_a_budget() -> None:
    assert parse_search("quick") == SEARCHES["quick"]
    assert parse_search(" default ", trials=0, seconds=0) == SEARCHES["default"]  # 0: the search's own
    longer = parse_search("default", trials=25, seconds=120.0)
    assert longer.trials_for("ease") == longer.trials_for("als") == 25
    assert longer.budget.seconds == 120.0


def test_parse_search_takes_a_json_search_space() -> None:
    custom = parse_search('{"families": ["ease"], "budget": {"trials": 3}}')
    assert custom.families == ("ease",) and custom.trials_for("ease") == 3
    assert parse_search({"folds": 1}, trials=4).trials_for("als") == 4
    assert parse_search('"quick"') == SEARCHES["quick"]  # a Jinja `tojson` of the name


@pytest.mark.parametrize("bad", ["huge", "", "[]", '{"families": ["svd"]}', '{"colour": "red"}'])
def test_parse_search_rejects_unknown_names_and_bad_spaces(bad: str) -> None:
    with pytest.raises(ValueError, match=r"search must be one of|not a valid search"):
        parse_search(bad)


def test_write_result_is_atomic_json(tmp_path: Path) -> None:
    path = write_result(tmp_path / "deep" / "result.json", {"model_version": "3", "promoted": True})
    assert json.loads(path.read_text()) == {"model_version": "3", "promoted": True}
    assert not list(path.parent.glob("*.part"))


def test_run_dir_is_a_safe_path(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path)
    directory = run_dir(settings, "als_training", "manual__2026-01-01T00:00:00+00:00")
    assert directory.parent == tmp_path / "airflow" / "als_training"
    assert ":" not in directory.name and "+" not in directory.name


def test_checkpoint_free_skips_while_another_ingestion_run_holds_the_checkpoint(tmp_path: Path) -> None:
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:
        require(False, "apache-airflow (pip install -e '.[airflow]')")
    settings = Settings(_env_file=None, LAKEHOUSE_PATH=tmp_path / "lakehouse")
    assert checkpoint_busy_reason(settings) is None
    skip_while_checkpoint_busy(settings, meanwhile="nothing")  # free: the run goes on

    with CheckpointLock(checkpoint_dir(LakehouseTables(settings.lakehouse_path)), mode="continuous"):
        reason = checkpoint_busy_reason(settings)
        assert reason is not None
        assert f"pid {os.getpid()}" in reason and "mode continuous" in reason
        with pytest.raises(AirflowSkipException, match="the events wait in Kafka"):
            skip_while_checkpoint_busy(settings, meanwhile="the events wait in Kafka")
    assert checkpoint_busy_reason(settings) is None  # the probe never kept the lock


def test_default_args_retry_with_exponential_backoff() -> None:
    args = default_args(execution_timeout=timedelta(minutes=7))
    assert args["retries"] >= 1 and args["retry_exponential_backoff"] > 1
    assert args["max_retry_delay"] > args["retry_delay"]
    assert args["execution_timeout"] == timedelta(minutes=7)


def test_warm_cache_skips_without_redis(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    outcome = warm_serving_cache(Settings(_env_file=None, REDIS_URL=None))  # CI exports one
    assert outcome["warmed"] is False
    assert "embedded cache: nothing to warm" in caplog.text


def test_notify_skips_without_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without API_URL nothing is waited for; with it, notify_api is tested against the
    real API (tests/integration/test_api.py)."""
    monkeypatch.delenv("API_URL", raising=False)
    assert notify_api(Settings(_env_file=None), model_version="2")["notified"] is False
