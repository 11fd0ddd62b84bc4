"""The DAGs, run for real: `airflow dags test` on a SQLite Airflow, local Spark through
spark-submit, a Delta lakehouse and a local MLflow registry, all under a tmp dir.

One scenario, in order (each test builds on the state the previous one left):
bootstrap a slice of MovieLens -> train (registers v1 and promotes it) -> train again
with no new data (skips) -> force a deliberately bad model (registers v2, champion
stays v1). The slice (first 80 users, ~12k ratings) keeps it to minutes on 2 cores.
"""

from __future__ import annotations

import csv
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.local_airflow import DagRunOutcome, LocalAirflow
from tests.conftest import require

# Each DAG run starts one or two JVMs through spark-submit: on a busy 2-core box a
# training run took 15 minutes, beyond the suite's 900 s default.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2700)]

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "data" / "ml-latest-small"
SLICE_USERS = 80
# Explicit-feedback ALS of rank 1 after one iteration: it ranks by predicted star
# rating, which puts obscure well-rated films first - far below the quick search's
# implicit model on nDCG@10 (and below popularity, as published for explicit ALS).
BAD_SEARCH = {
    "families": ["als"],
    "als": {"rank": [1, 1], "max_iter": [1, 1], "confidences": ["rating"], "implicit_prefs": [False]},
    "als_start": [{"rank": 1, "max_iter": 1, "reg_param": 0.1, "implicit_prefs": False}],
    "budget": {"trials": 1},
    "folds": 1,
}
TRAINING_TASKS = (
    "check_new_data",
    "train_als",
    "evaluate_and_promote",
    "sync_movie_metadata",
    "warm_cache",
    "notify_api",
)


def _slice(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    with (BUNDLED / "ratings.csv").open() as source, (target / "ratings.csv").open("w", newline="") as out:
        reader, writer = csv.reader(source), csv.writer(out)
        writer.writerow(next(reader))
        writer.writerows(row for row in reader if int(row[0]) <= SLICE_USERS)
    for name in ("movies.csv", "links.csv"):
        shutil.copy(BUNDLED / name, target / name)
    return target


@pytest.fixture(scope="module")
def local_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    require(shutil.which("java") is not None, "`java` 17+ (install openjdk-17-jre-headless)")
    airflow_bin = Path(sys.executable).parent / "airflow"
    require(airflow_bin.exists(), "the airflow CLI (pip install -e '.[airflow]')")
    require(
        (Path(sys.executable).parent / "spark-submit").exists(), "spark-submit (pip install -e '.[spark]')"
    )
    local = LocalAirflow(
        tmp_path_factory.mktemp("airflow-dags"), extra_env={"FILMREC_TRAINING_SEARCH": "quick"}
    )
    local.migrate()
    yield local


def _assert_states(outcome: DagRunOutcome, expected: dict[str, str]) -> None:
    actual = {task: outcome.task_states.get(task) for task in expected}
    assert actual == expected, (
        f"{outcome.dag_id} tasks {outcome.task_states}; log {outcome.log_path}:\n{outcome.tail()}"
    )


def _registry(local: LocalAirflow):  # type: ignore[no-untyped-def]
    from filmrec.config import Settings
    from filmrec.model.registry import configure_mlflow

    # The DAG runs use the embedded MLflow store (LocalAirflow drops service URLs); so
    # must this check, even where CI exports MLFLOW_TRACKING_URI for other tests.
    settings = Settings(
        _env_file=None,
        FILMREC_VAR_DIR=local.root / "var",
        LAKEHOUSE_PATH=local.root / "lakehouse",
        MLFLOW_TRACKING_URI=None,
    )
    return settings, configure_mlflow(settings)


def _champion(local: LocalAirflow) -> str | None:
    from filmrec.model.registry import champion_version

    settings, client = _registry(local)
    champion = champion_version(client, name=settings.model_name, alias=settings.champion_alias)
    return str(champion.version) if champion else None


def _versions(local: LocalAirflow) -> dict[str, dict[str, str]]:
    settings, client = _registry(local)
    return {
        str(v.version): dict(v.tags) for v in client.search_model_versions(f"name = '{settings.model_name}'")
    }


def test_connections_file_imports(local_airflow: LocalAirflow) -> None:
    log = local_airflow.root / "connections-import.log"
    config = REPO / "airflow" / "config" / "connections.yaml"
    assert local_airflow.airflow("connections", "import", "--overwrite", str(config), log_path=log) == 0, (
        log.read_text()
    )
    text = log.read_text()
    for conn_id in ("spark_default", "postgres_default", "kafka_default", "mlflow_default", "redis_default"):
        assert conn_id in text, text


def test_bootstrap_loads_the_data_directly_without_kafka(local_airflow: LocalAirflow) -> None:
    data_dir = _slice(local_airflow.root / "movielens-slice")
    outcome = local_airflow.dags_test("bootstrap_movielens", {"data_dir": str(data_dir)})
    _assert_states(
        outcome,
        {
            "locate_movielens": "success",
            "load_movies": "success",
            "choose_ratings_route": "success",
            "load_ratings": "success",
            "replay_ratings": "skipped",
            "ingest_replayed_ratings": "skipped",
        },
    )
    from filmrec.lakehouse import delta_log
    from filmrec.metadata.store import MovieStore

    assert delta_log.rows_changed_since(local_airflow.root / "lakehouse" / "clean_ratings", 0) > 10_000
    assert MovieStore.from_url(f"sqlite:///{local_airflow.root / 'var' / 'filmrec.db'}").count() > 9_000


def test_training_registers_and_promotes_on_a_fresh_registry(local_airflow: LocalAirflow) -> None:
    outcome = local_airflow.dags_test("als_training")
    _assert_states(outcome, dict.fromkeys(TRAINING_TASKS, "success"))
    assert outcome.returncode == 0
    versions = _versions(local_airflow)
    assert list(versions) == ["1"]
    from filmrec.lakehouse import delta_log

    assert versions["1"]["data_version"] == str(
        delta_log.latest_version(local_airflow.root / "lakehouse" / "clean_ratings")
    )
    assert _champion(local_airflow) == "1"
    print(f"\nals_training on {SLICE_USERS} users (quick search): {outcome.seconds:.1f}s wall time")


def test_second_run_without_new_data_skips_training(local_airflow: LocalAirflow) -> None:
    outcome = local_airflow.dags_test("als_training")
    _assert_states(outcome, {"check_new_data": "success", **dict.fromkeys(TRAINING_TASKS[1:], "skipped")})
    assert outcome.state == "success"
    assert list(_versions(local_airflow)) == ["1"]


def test_a_worse_model_is_registered_but_does_not_move_the_champion(local_airflow: LocalAirflow) -> None:
    outcome = local_airflow.dags_test("als_training", {"force": True, "search": BAD_SEARCH})
    _assert_states(
        outcome,
        {
            "check_new_data": "success",
            "train_als": "success",
            "evaluate_and_promote": "success",
            "sync_movie_metadata": "skipped",
            "warm_cache": "skipped",
            "notify_api": "skipped",
        },
    )
    versions = _versions(local_airflow)
    assert sorted(versions) == ["1", "2"]
    assert float(versions["2"]["ndcg_at_10"]) < float(versions["1"]["ndcg_at_10"])  # the premise holds
    assert _champion(local_airflow) == "1"
