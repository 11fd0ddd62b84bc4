"""The training job: Delta clean ratings -> tuned ALS -> MLflow run -> registry.

Steps, each timed and logged:
1. read clean ratings at a pinned Delta version (recorded as the data version);
2. split per user (75/25, seed 42), and carve a validation split out of train;
3. pick hyper-parameters on validation nDCG@10, never on test;
4. evaluate the chosen ALS and the popularity baseline on test;
5. refit on all ratings, log that as the pyfunc, register and tag the version;
6. move the `champion` alias only if the version beats the current champion.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from filmrec.config import Settings, get_settings
from filmrec.lakehouse.tables import LakehouseTables, read_table, table_version
from filmrec.model.registry import (
    PROMOTION_METRIC,
    TAG_DATA_VERSION,
    TAG_PROTOCOL,
    PromotionDecision,
    configure_mlflow,
    ensure_experiment,
    promote_if_better,
)
from filmrec.training.als import fit_als
from filmrec.training.evaluation import RankingMetrics, evaluate, rmse
from filmrec.training.factor_models import popularity_model
from filmrec.training.params import DEFAULT_GRID, ALSParams, EvaluationProtocol
from filmrec.training.split import split_per_user

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    run_id: str
    model_version: str
    data_version: int
    params: dict[str, Any]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    promotion: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ndcg_ratio(self) -> float:
        baseline = self.baseline_metrics.get(PROMOTION_METRIC, 0.0)
        return self.metrics[PROMOTION_METRIC] / baseline if baseline else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ndcg_ratio_vs_popularity": self.ndcg_ratio}


class _Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        log.info("training: %s ...", name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        log.info("training: %s done in %.1fs", name, self.seconds[name])


@dataclass
class _Splits:
    """The protocol's splits, in Spark (for fitting) and pandas (for evaluation)."""

    ratings: DataFrame
    train: DataFrame
    fit_part: DataFrame
    all_pdf: pd.DataFrame
    train_pdf: pd.DataFrame
    test_pdf: pd.DataFrame
    fit_pdf: pd.DataFrame
    validation_pdf: pd.DataFrame


def _read_and_split(
    spark: SparkSession, tables: LakehouseTables, protocol: EvaluationProtocol, version: int
) -> _Splits:
    """Clean ratings at `version`, split per user, with a validation split carved from train."""
    ratings = (
        read_table(spark, tables.clean_ratings, version=version)
        # rated_at travels into the model: the API compares new ratings with it.
        .select("user_id", "movie_id", "rating", "rated_at")
        .cache()
    )
    all_pdf: pd.DataFrame = ratings.toPandas()
    if all_pdf.empty:
        raise ValueError(f"clean ratings at version {version} are empty: load data first")
    train, test = split_per_user(ratings, test_fraction=protocol.test_fraction, seed=protocol.split_seed)
    fit_part, validation = split_per_user(
        train, test_fraction=protocol.test_fraction, seed=protocol.validation_seed
    )
    train, fit_part = train.cache(), fit_part.cache()
    return _Splits(
        ratings=ratings,
        train=train,
        fit_part=fit_part,
        all_pdf=all_pdf,
        train_pdf=train.toPandas(),
        test_pdf=test.toPandas(),
        fit_pdf=fit_part.toPandas(),
        validation_pdf=validation.toPandas(),
    )


def _tune(
    splits: _Splits, grid: Sequence[ALSParams], protocol: EvaluationProtocol
) -> tuple[ALSParams, float, list[dict[str, Any]]]:
    """The configuration with the best validation nDCG (never test), its score, every trial."""
    tuning: list[dict[str, Any]] = []
    best_params, best_ndcg = grid[0], float("-inf")
    for params in grid:
        candidate = fit_als(splits.fit_part, params, ratings_pdf=splits.fit_pdf)
        score = evaluate(candidate, train=splits.fit_pdf, test=splits.validation_pdf, k=protocol.k).ndcg_at_k
        tuning.append({"params": params.label(), "validation_ndcg_at_10": round(score, 6)})
        log.info("tuning %s: validation nDCG@%d = %.4f", params.label(), protocol.k, score)
        if score > best_ndcg:
            best_params, best_ndcg = params, score
    return best_params, best_ndcg, tuning


def _evaluate_on_test(
    splits: _Splits, params: ALSParams, protocol: EvaluationProtocol
) -> tuple[RankingMetrics, RankingMetrics]:
    """The chosen ALS and the popularity baseline, both fitted on train, scored on test."""
    chosen = fit_als(splits.train, params, ratings_pdf=splits.train_pdf)
    model_metrics = evaluate(chosen, train=splits.train_pdf, test=splits.test_pdf, k=protocol.k)
    if not params.implicit_prefs:
        model_metrics = dataclasses.replace(model_metrics, rmse=rmse(chosen, splits.test_pdf))
    baseline = evaluate(
        popularity_model(splits.train_pdf), train=splits.train_pdf, test=splits.test_pdf, k=protocol.k
    )
    return model_metrics, baseline


def _register_and_promote(
    client: MlflowClient,
    settings: Settings,
    *,
    model_uri: str,
    run_id: str,
    version: int,
    protocol: EvaluationProtocol,
    metrics: dict[str, float],
    baseline_metrics: dict[str, float],
) -> tuple[str, PromotionDecision]:
    """Register the logged model, tag the version, move `champion` only if it is better."""
    import mlflow

    registered = mlflow.register_model(model_uri, settings.model_name)
    version_tags = {TAG_PROTOCOL: protocol.version, TAG_DATA_VERSION: str(version), "run_id": run_id}
    version_tags |= {name: f"{value:.6f}" for name, value in metrics.items()}
    version_tags |= {f"baseline_popularity_{PROMOTION_METRIC}": f"{baseline_metrics[PROMOTION_METRIC]:.6f}"}
    for key, value in version_tags.items():
        client.set_model_version_tag(settings.model_name, registered.version, key, value)
    decision = promote_if_better(
        client,
        name=settings.model_name,
        alias=settings.champion_alias,
        version=str(registered.version),
        metric=metrics[PROMOTION_METRIC],
        protocol=protocol.version,
    )
    return str(registered.version), decision


def train_and_register(
    spark: SparkSession,
    *,
    settings: Settings | None = None,
    grid: Sequence[ALSParams] = DEFAULT_GRID,
    protocol: EvaluationProtocol | None = None,
    data_version: int | None = None,
) -> TrainingResult:
    """Run the whole training job (the steps in the module docstring); return what it logged and decided."""
    import mlflow

    from filmrec.model.pyfunc import log_recommender

    settings = settings or get_settings()
    protocol = protocol or EvaluationProtocol()
    if not grid:
        raise ValueError("the hyper-parameter grid is empty")
    tables = LakehouseTables(settings.lakehouse_path)
    client = configure_mlflow(settings)
    experiment_id = ensure_experiment(settings)
    clock = _Stopwatch()
    total_start = time.perf_counter()

    with clock.step("read"):
        version = data_version if data_version is not None else table_version(spark, tables.clean_ratings)
    with clock.step("split"):
        splits = _read_and_split(spark, tables, protocol, version)
    with clock.step("tune"):
        best_params, best_ndcg, tuning = _tune(splits, grid, protocol)
    with clock.step("evaluate"):
        model_metrics, baseline = _evaluate_on_test(splits, best_params, protocol)
    with clock.step("refit"):
        final = fit_als(splits.ratings, best_params, ratings_pdf=splits.all_pdf)

    metrics = model_metrics.as_mlflow()
    baseline_metrics = baseline.as_mlflow()
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(best_params.model_dump() | {"grid_size": len(grid)})
        mlflow.log_params({f"protocol_{k}": v for k, v in protocol.model_dump().items()})
        mlflow.log_param("data_version", version)
        mlflow.log_metrics(metrics)
        mlflow.log_metrics(baseline.as_mlflow(prefix="baseline_popularity_"))
        mlflow.log_metric("validation_ndcg_at_10", best_ndcg)
        mlflow.log_metrics(
            {"n_ratings": len(splits.all_pdf), "n_users": final.n_users, "n_items": final.n_items}
        )
        mlflow.log_dict({"tuning": tuning}, "tuning.json")
        mlflow.set_tags(
            {TAG_PROTOCOL: protocol.version, TAG_DATA_VERSION: str(version), "model_family": "als"}
        )
        with clock.step("log_model"):
            model_uri = log_recommender(final, input_user_id=int(final.user_ids[0]))
        clock.seconds["total"] = round(time.perf_counter() - total_start, 3)
        mlflow.log_metrics({f"seconds_{name}": value for name, value in clock.seconds.items()})
        run_id = run.info.run_id

    model_version, decision = _register_and_promote(
        client,
        settings,
        model_uri=model_uri,
        run_id=run_id,
        version=version,
        protocol=protocol,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
    )
    splits.ratings.unpersist()
    result = TrainingResult(
        run_id=run_id,
        model_version=model_version,
        data_version=version,
        params=best_params.model_dump(),
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        promotion=asdict(decision),
        timings=clock.seconds,
    )
    log.info("training result: %s", json.dumps(result.as_dict(), default=str))
    return result
