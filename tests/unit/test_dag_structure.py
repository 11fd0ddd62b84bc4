"""Every DAG imports with no error, has the expected shape and follows the house rules.

The DagBag is filled in a separate interpreter with its own AIRFLOW_HOME: importing
Airflow configures it process-wide, and the check that parsing imports no heavy
library (Spark, MLflow, Kafka) needs a clean `sys.modules`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "airflow" / "dags"
HEAVY_MODULES = ("pyspark", "delta", "mlflow", "confluent_kafka", "redis", "pandas", "filmrec.training")

_PARSE = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=sys.argv[1])
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "file": dag.fileloc,
            "schedule": getattr(dag.timetable, "expression", None) or type(dag.timetable).__name__,
            "delta": getattr(dag.timetable, "delta", None) and dag.timetable.delta.total_seconds(),
            "tags": sorted(dag.tags),
            "doc_md": dag.doc_md or "",
            "max_active_runs": dag.max_active_runs,
            "catchup": dag.catchup,
            "params": sorted(dag.params.keys()),
            "tasks": {
                t.task_id: {
                    "downstream": sorted(t.downstream_task_ids),
                    "type": type(t).__name__,
                    "retries": t.retries,
                    "backoff": float(t.retry_exponential_backoff or 0),
                    "timeout": t.execution_timeout and t.execution_timeout.total_seconds(),
                    "conn_id": getattr(t, "_conn_id", None),
                }
                for t in dag.tasks
            },
        }
    heavy = sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[2].split(","))))
    print("DAGBAG-JSON " + json.dumps({"errors": bag.import_errors, "dags": dags, "heavy": heavy}))
    """
)


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    try:
        import airflow  # noqa: F401
    except ImportError:
        require(False, "apache-airflow (pip install -e '.[airflow]')")
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", _PARSE, str(DAGS), ",".join(HEAVY_MODULES)],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("DAGBAG-JSON ")]
    assert done.returncode == 0 and lines, f"DagBag failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("DAGBAG-JSON "))


def _edges(dag: dict[str, Any]) -> set[tuple[str, str]]:
    return {(task_id, down) for task_id, task in dag["tasks"].items() for down in task["downstream"]}


def test_every_dag_imports_without_errors(dagbag: dict[str, Any]) -> None:
    assert dagbag["errors"] == {}
    assert set(dagbag["dags"]) == {"als_training", "ratings_ingestion", "bootstrap_movielens"}
    assert {Path(dag["file"]).name for dag in dagbag["dags"].values()} == {
        path.name for path in DAGS.glob("*.py")
    }


def test_parsing_imports_no_heavy_library(dagbag: dict[str, Any]) -> None:
    # Heavy imports belong inside the task callables: the DAG processor re-parses
    # every file every minute on a 2-core box.
    assert dagbag["heavy"] == []


def test_training_dag_structure(dagbag: dict[str, Any]) -> None:
    dag = dagbag["dags"]["als_training"]
    assert _edges(dag) == {
        ("check_new_data", "train_als"),
        ("check_new_data", "evaluate_and_promote"),  # reads the result path from its XCom
        ("train_als", "evaluate_and_promote"),
        ("evaluate_and_promote", "sync_movie_metadata"),
        ("evaluate_and_promote", "notify_api"),  # gets the promoted version
        ("sync_movie_metadata", "warm_cache"),
        ("warm_cache", "notify_api"),
    }
    tasks = dag["tasks"]
    assert (
        tasks["check_new_data"]["type"]
        == tasks["evaluate_and_promote"]["type"]
        == "_ShortCircuitDecoratedOperator"
    )
    assert tasks["train_als"]["type"] == "FilmrecSparkSubmitOperator"
    assert tasks["train_als"]["conn_id"] == "spark_default"
    assert dag["schedule"] == "0 0 * * *" and dag["max_active_runs"] == 1 and not dag["catchup"]
    assert dag["params"] == ["force", "min_new_ratings", "search", "search_seconds", "trials"]


def test_ingestion_dag_structure(dagbag: dict[str, Any]) -> None:
    dag = dagbag["dags"]["ratings_ingestion"]
    assert _edges(dag) == {
        ("kafka_configured", "checkpoint_free"),
        ("checkpoint_free", "ingest_ratings"),
        ("kafka_configured", "report_ingestion"),
        ("ingest_ratings", "report_ingestion"),
    }
    assert dag["delta"] == 15 * 60
    assert dag["max_active_runs"] == 1 and not dag["catchup"]
    assert dag["tasks"]["ingest_ratings"]["type"] == "FilmrecSparkSubmitOperator"
    assert "one ingestion mode per deployment at a time; the lock enforces it" in dag["doc_md"].lower()


def test_bootstrap_dag_structure(dagbag: dict[str, Any]) -> None:
    dag = dagbag["dags"]["bootstrap_movielens"]
    assert _edges(dag) == {
        ("locate_movielens", "load_movies"),
        ("locate_movielens", "replay_ratings"),
        ("load_movies", "choose_ratings_route"),
        ("choose_ratings_route", "load_ratings"),
        ("choose_ratings_route", "replay_ratings"),
        ("replay_ratings", "checkpoint_free"),
        ("checkpoint_free", "ingest_replayed_ratings"),
    }
    assert dag["schedule"] == "NullTimetable"  # one-off: triggered by hand
    assert dag["params"] == ["data_dir"]


@pytest.mark.parametrize("dag_id", ["als_training", "ratings_ingestion", "bootstrap_movielens"])
def test_house_rules(dagbag: dict[str, Any], dag_id: str) -> None:
    dag = dagbag["dags"][dag_id]
    assert "filmrec" in dag["tags"] and len(dag["tags"]) >= 3
    assert dag["doc_md"].strip().startswith("###")  # the module docstring, shown in the UI
    for task_id, task in dag["tasks"].items():
        assert task["retries"] >= 1, task_id
        assert task["backoff"] > 1, task_id
        assert task["timeout"] and task["timeout"] > 0, task_id
