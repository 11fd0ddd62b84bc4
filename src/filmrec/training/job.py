"""The training job: Delta clean ratings -> searched ALS and EASE -> MLflow run -> registry.

Steps, each timed and logged:
1. read clean ratings at a pinned Delta version (recorded as the data version);
2. split per user (75/25, seed 42), and carve validation folds out of train;
3. search each family's hyper-parameters (Optuna, nested MLflow runs) on the mean
   validation nDCG@10 over the folds, never on test;
4. the family with the best validation score wins; every family's best and the
   popularity baseline are fitted on train and scored on test, for the record;
5. refit the winner on all ratings, log it as the pyfunc, register and tag it;
6. move the `champion` alias only if the version beats the current champion.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from filmrec.config import Settings, get_settings
from filmrec.lakehouse.tables import LakehouseTables, read_table, table_version
from filmrec.model.recommender import FactorRecommender, Recommender
from filmrec.model.registry import (
    PROMOTION_METRIC,
    TAG_DATA_VERSION,
    TAG_MODEL_FAMILY,
    TAG_PROTOCOL,
    PromotionDecision,
    configure_mlflow,
    ensure_experiment,
    promote_if_better,
)
from filmrec.training.evaluation import ListMetrics, RankingMetrics, evaluate, list_metrics, rmse
from filmrec.training.factor_models import popularity_model
from filmrec.training.families import FamilyTrainer, FitData, trainers
from filmrec.training.params import DEFAULT_SEARCH, ALSParams, EvaluationProtocol, SearchSpace
from filmrec.training.search import SearchOutcome, ValidationFold, search_family
from filmrec.training.split import split_per_user

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from pydantic import BaseModel
    from pyspark.sql import DataFrame, SparkSession

    from filmrec.model.pyfunc import LoggedRecommender


log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    run_id: str
    model_version: str
    data_version: int
    family: str
    params: dict[str, Any]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    promotion: dict[str, Any]
    families: dict[str, dict[str, Any]] = field(default_factory=dict)
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

    all: FitData
    train: FitData
    test_pdf: pd.DataFrame
    folds: list[ValidationFold]
    cached: list[DataFrame]

    def unpersist(self) -> None:
        for frame in self.cached:
            frame.unpersist()


def _read_and_split(
    spark: SparkSession, tables: LakehouseTables, protocol: EvaluationProtocol, version: int, *, folds: int
) -> _Splits:
    """Clean ratings at `version`, split per user, with validation folds carved from train."""
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
    train = train.cache()
    cached = [ratings, train]
    validation_folds = []
    for fold in range(folds):
        fit_part, validation = split_per_user(
            train, test_fraction=protocol.test_fraction, seed=protocol.validation_seed + fold
        )
        fit_part = fit_part.cache()
        cached.append(fit_part)
        validation_folds.append(
            ValidationFold(FitData(f"fold-{fold}", fit_part, fit_part.toPandas()), validation.toPandas())
        )
    return _Splits(
        all=FitData("all", ratings, all_pdf),
        train=FitData("train", train, train.toPandas()),
        test_pdf=test.toPandas(),
        folds=validation_folds,
        cached=cached,
    )


def _movie_genres(spark: SparkSession, tables: LakehouseTables) -> dict[int, frozenset[str]] | None:
    """Genres by movie id from the lakehouse's movies table (None when it has none)."""
    try:
        rows = read_table(spark, tables.movies).select("movie_id", "genres").collect()
    except Exception as error:  # the table is optional for training: diversity is then omitted
        log.warning("no movie genres for the diversity metric: %s", error)
        return None
    return {int(row["movie_id"]): frozenset(row["genres"] or ()) for row in rows} or None


@dataclass
class _FamilyReport:
    """One family's search outcome and its chosen parameters scored on test."""

    outcome: SearchOutcome
    trainer: FamilyTrainer
    test: RankingMetrics | None = None
    lists: ListMetrics | None = None

    def summary(self) -> dict[str, Any]:
        report = self.outcome.summary()
        if self.test is not None:
            report["test"] = self.test.as_mlflow()
        if self.lists is not None:
            report["lists"] = self.lists.as_mlflow()
        return report


def _evaluate_on_test(
    trainer: FamilyTrainer,
    params: BaseModel,
    splits: _Splits,
    protocol: EvaluationProtocol,
    genres: dict[int, frozenset[str]] | None,
) -> tuple[RankingMetrics, ListMetrics]:
    """A family's chosen parameters, fitted on train, scored on test (and its lists described)."""
    model = trainer.fit(splits.train, params)
    metrics, lists = _scored_on_test(model, splits, protocol, genres)
    if isinstance(params, ALSParams) and not params.implicit_prefs:
        assert isinstance(model, FactorRecommender)  # explicit feedback is ALS's alone
        metrics = dataclasses.replace(metrics, rmse=rmse(model, splits.test_pdf))
    return metrics, lists


def _baseline(
    splits: _Splits, protocol: EvaluationProtocol, genres: dict[int, frozenset[str]] | None
) -> tuple[RankingMetrics, ListMetrics]:
    return _scored_on_test(popularity_model(splits.train.pdf), splits, protocol, genres)


def _scored_on_test(
    model: Recommender,
    splits: _Splits,
    protocol: EvaluationProtocol,
    genres: dict[int, frozenset[str]] | None,
) -> tuple[RankingMetrics, ListMetrics]:
    train = splits.train.pdf
    metrics = evaluate(model, train=train, test=splits.test_pdf, k=protocol.k, max_users=protocol.max_users)
    lists = list_metrics(model, train=train, k=protocol.k, genres=genres, max_users=protocol.max_users)
    return metrics, lists


def _register_and_promote(
    client: MlflowClient,
    settings: Settings,
    *,
    logged: LoggedRecommender,
    run_id: str,
    version: int,
    protocol: EvaluationProtocol,
    family: str,
    metrics: dict[str, float],
    baseline_metrics: dict[str, float],
) -> tuple[str, PromotionDecision]:
    """Register the logged model, tag the version, move `champion` only if it is better.

    The artifacts' hash is a tag of the registration itself: the version never exists
    without it (the API refuses to serve one that lacks it).
    """
    from filmrec.model.pyfunc import register_recommender

    registered_version = register_recommender(logged, settings.model_name)
    version_tags = {
        TAG_PROTOCOL: protocol.version,
        TAG_DATA_VERSION: str(version),
        "run_id": run_id,
        TAG_MODEL_FAMILY: family,
    }
    version_tags |= {name: f"{value:.6f}" for name, value in metrics.items()}
    version_tags |= {
        f"baseline_popularity_{name}": f"{value:.6f}" for name, value in baseline_metrics.items()
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(settings.model_name, registered_version, key, value)
    decision = promote_if_better(
        client,
        name=settings.model_name,
        alias=settings.champion_alias,
        version=registered_version,
        metric=metrics[PROMOTION_METRIC],
        protocol=protocol.version,
    )
    return registered_version, decision


def _search_all(
    family_trainers: list[FamilyTrainer],
    splits: _Splits,
    space: SearchSpace,
    protocol: EvaluationProtocol,
    clock: _Stopwatch,
) -> list[_FamilyReport]:
    """Every family's search, inside the active (parent) run; skipped families are kept."""
    import mlflow

    reports = []
    for trainer in family_trainers:
        with clock.step(f"search_{trainer.name}"):
            outcome = search_family(trainer, splits.folds, space, protocol)
        reports.append(_FamilyReport(outcome, trainer))
        if outcome.skipped_reason:
            mlflow.set_tag(f"{trainer.name}_skipped", outcome.skipped_reason[:5000])
            continue
        mlflow.log_metric(
            f"{trainer.name}_best_validation_ndcg_at_{protocol.k}", outcome.best_validation_ndcg
        )
        mlflow.log_metric(f"{trainer.name}_best_trial", float(outcome.best_trial or 0))
        mlflow.log_metric(f"{trainer.name}_search_seconds", outcome.seconds)
    return reports


def train_and_register(
    spark: SparkSession,
    *,
    settings: Settings | None = None,
    search: SearchSpace = DEFAULT_SEARCH,
    protocol: EvaluationProtocol | None = None,
    data_version: int | None = None,
) -> TrainingResult:
    """Run the whole training job (the steps in the module docstring); return what it logged and decided."""
    import mlflow

    from filmrec.model.pyfunc import log_recommender

    settings = settings or get_settings()
    protocol = protocol or EvaluationProtocol()
    if not search.families:
        raise ValueError("the search names no model family")
    tables = LakehouseTables(settings.lakehouse_path)
    client = configure_mlflow(settings)
    experiment_id = ensure_experiment(settings)
    clock = _Stopwatch()
    total_start = time.perf_counter()

    with clock.step("read"):
        version = data_version if data_version is not None else table_version(spark, tables.clean_ratings)
    with clock.step("split"):
        splits = _read_and_split(spark, tables, protocol, version, folds=search.folds)
    genres = _movie_genres(spark, tables)
    family_trainers = trainers(search.families, ease_max_items=settings.ease_max_items)

    with mlflow.start_run(experiment_id=experiment_id) as run:
        run_id = run.info.run_id
        mlflow.log_params({f"protocol_{k}": v for k, v in protocol.model_dump().items()})
        mlflow.log_params(
            {
                "data_version": version,
                "search_trials": search.budget.trials,
                "search_seconds": search.budget.seconds,
            }
        )
        mlflow.log_dict(search.model_dump(mode="json"), "search_space.json")
        search_start = time.perf_counter()
        reports = _search_all(family_trainers, splits, search, protocol, clock)
        mlflow.log_metric("search_wall_seconds", time.perf_counter() - search_start)
        contenders = [report for report in reports if report.outcome.best_params is not None]
        if not contenders:
            raise RuntimeError(
                "no model family produced a model: "
                + "; ".join(f"{r.trainer.name}: {r.outcome.skipped_reason}" for r in reports)
            )
        with clock.step("evaluate"):
            for report in contenders:
                assert report.outcome.best_params is not None
                report.test, report.lists = _evaluate_on_test(
                    report.trainer, report.outcome.best_params, splits, protocol, genres
                )
            baseline, baseline_lists = _baseline(splits, protocol, genres)
        # The winner is chosen on validation, like its parameters; test only reports.
        winner = max(contenders, key=lambda report: report.outcome.best_validation_ndcg)
        assert winner.outcome.best_params is not None and winner.test is not None and winner.lists
        with clock.step("refit"):
            final = winner.trainer.fit(splits.all, winner.outcome.best_params)

        metrics = winner.test.as_mlflow()
        baseline_metrics = baseline.as_mlflow()
        mlflow.log_params(winner.outcome.best_params.model_dump())
        mlflow.log_metrics(metrics | winner.lists.as_mlflow())
        mlflow.log_metrics(
            {
                f"baseline_popularity_{k}": v
                for k, v in (baseline_metrics | baseline_lists.as_mlflow()).items()
            }
        )
        mlflow.log_metric(f"validation_ndcg_at_{protocol.k}", winner.outcome.best_validation_ndcg)
        for report in contenders:
            assert report.test is not None
            mlflow.log_metrics(
                {f"{report.trainer.name}_test_{k}": v for k, v in report.test.as_mlflow().items()}
            )
        mlflow.log_metrics(
            {"n_ratings": len(splits.all.pdf), "n_users": final.n_users, "n_items": final.n_items}
        )
        families: dict[str, dict[str, Any]] = {r.trainer.name: r.summary() for r in reports}
        mlflow.log_dict(
            {"families": families, "trials": {r.trainer.name: r.outcome.trials for r in reports}},
            "search.json",
        )
        mlflow.set_tags(
            {
                TAG_PROTOCOL: protocol.version,
                TAG_DATA_VERSION: str(version),
                TAG_MODEL_FAMILY: winner.trainer.name,
            }
        )
        with clock.step("log_model"):
            logged = log_recommender(final, input_user_id=int(final.user_ids[0]))
        clock.seconds["total"] = round(time.perf_counter() - total_start, 3)
        mlflow.log_metrics({f"seconds_{name}": value for name, value in clock.seconds.items()})

    model_version, decision = _register_and_promote(
        client,
        settings,
        logged=logged,
        run_id=run_id,
        version=version,
        protocol=protocol,
        family=winner.trainer.name,
        metrics=metrics | winner.lists.as_mlflow(),
        baseline_metrics=baseline_metrics | baseline_lists.as_mlflow(),
    )
    splits.unpersist()
    result = TrainingResult(
        run_id=run_id,
        model_version=model_version,
        data_version=version,
        family=winner.trainer.name,
        params=winner.outcome.best_params.model_dump(),
        metrics=metrics | winner.lists.as_mlflow(),
        baseline_metrics=baseline_metrics | baseline_lists.as_mlflow(),
        promotion=asdict(decision),
        families=families,
        timings=clock.seconds,
    )
    log.info("training result: %s", json.dumps(result.as_dict(), default=str))
    return result
