"""
### Training: new ratings → the model search (EASE or ALS) on Spark → MLflow champion → serving

The DAG id keeps the platform design's word, `als_training`; what it trains is the
platform's one model, of whichever family (EASE or ALS) the search chooses.

Daily, and on demand from the UI ("Trigger DAG", with parameters) or the CLI
(`airflow dags trigger als_training`). Steps:

1. **check_new_data** compares the clean ratings Delta table (its version, and the
   rows its commits changed) with the `data_version` tag of the newest registered
   model. With fewer than `min_new_ratings` changed rows the run stops here and every
   later task is *skipped*, not failed.
2. **train_als** runs `spark/jobs/train_als.py` through spark-submit on the
   `spark_default` connection (local[*] or the standalone cluster). The job searches
   ALS and EASE hyper-parameters (Optuna; each trial a nested MLflow run) on the
   mean nDCG@10 of validation folds carved from train, keeps the family that
   validates best, evaluates it on test (protocol in filmrec.training.params), logs
   and registers a version in MLflow, and moves the `champion` alias only when it
   beats the current champion. It writes a small JSON result whose path travels by
   XCom.
3. **evaluate_and_promote** reads that result; when the new version is not the
   champion the run ends here, skipping the serving steps.
4. **sync_movie_metadata** copies Delta movies to the serving database (PostgreSQL,
   or the embedded SQLite).
5. **warm_cache** pre-computes recommendations in Redis (skipped without REDIS_URL).
6. **notify_api** waits until the API at API_URL serves the new version (without
   API_URL the API picks the champion up on its next registry poll).

Parameters: `search` (`default` or `quick`; default $FILMREC_TRAINING_SEARCH or
`default`), `trials` and `search_seconds` (the budget per model family; default
$FILMREC_TRAINING_TRIALS / $FILMREC_TRAINING_SEARCH_SECONDS or the search's own),
`force` (train even without new data), `min_new_ratings`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Param, dag, task

from filmrec.orchestration.defaults import SPARK_TASK_TIMEOUT, TRAINING_TIMEOUT, default_args
from filmrec.orchestration.operators import FilmrecSparkSubmitOperator, from_xcom

CHECK = "check_new_data"


@dag(
    dag_id="als_training",
    description="Trains the platform's model: searches EASE and ALS on Spark, registers the better in MLflow",
    schedule="@daily",  # midnight UTC; triggers on demand come from the UI or CLI
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # two trainings would race for the champion alias and the CPU
    dagrun_timeout=TRAINING_TIMEOUT * 2,
    default_args=default_args(),
    tags=["filmrec", "training", "spark", "mlflow"],
    doc_md=__doc__,
    params={
        "search": Param(
            None,
            type=["null", "string", "object"],
            description="'default', 'quick' or a SearchSpace object "
            "(null: $FILMREC_TRAINING_SEARCH or 'default')",
        ),
        "trials": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Optuna trials per model family (null: $FILMREC_TRAINING_TRIALS or the search's own)",
        ),
        "search_seconds": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            description="seconds of search per model family (null: no time limit)",
        ),
        "force": Param(False, type="boolean", description="train even when no new data arrived"),
        "min_new_ratings": Param(1, type="integer", minimum=0, description="changed rows needed to train"),
    },
)
def als_training() -> None:
    @task.short_circuit(task_id=CHECK)
    def check_new_data(
        params: dict[str, Any] | None = None, run_id: str | None = None
    ) -> dict[str, Any] | bool:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import training_gate

        return training_gate(get_settings(), params=params or {}, run_id=run_id or "manual") or False

    train = FilmrecSparkSubmitOperator(
        task_id="train_als",
        job="train_als",
        application_args=[
            "--result-path",
            from_xcom(CHECK, "result_path"),
            "--search",
            from_xcom(CHECK, "search"),
            "--trials",
            from_xcom(CHECK, "trials"),
            "--search-seconds",
            from_xcom(CHECK, "search_seconds"),
            "--data-version",
            from_xcom(CHECK, "data_version"),
        ],
        execution_timeout=TRAINING_TIMEOUT,
        retries=1,  # each attempt registers a version: one retry for a lost JVM is enough
    )

    @task.short_circuit
    def evaluate_and_promote(check: dict[str, Any]) -> dict[str, Any] | bool:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import evaluate_promotion

        summary = evaluate_promotion(get_settings(), check["result_path"])
        return summary if summary["promoted"] else False

    sync_movies = FilmrecSparkSubmitOperator(
        task_id="sync_movie_metadata",
        job="sync_movies",
        application_args=["--result-path", from_xcom(CHECK, "run_dir") + "/sync_movies.json"],
        execution_timeout=SPARK_TASK_TIMEOUT,
    )

    @task
    def warm_cache() -> dict[str, Any]:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import warm_serving_cache

        return warm_serving_cache(get_settings())

    @task
    def notify_api(promotion: dict[str, Any]) -> dict[str, Any]:
        from filmrec.config import get_settings
        from filmrec.orchestration.tasks import notify_api

        return notify_api(get_settings(), model_version=str(promotion["model_version"]))

    check = check_new_data()
    promotion = evaluate_and_promote(check)
    check >> train >> promotion >> sync_movies >> warm_cache() >> notify_api(promotion)


als_training()
