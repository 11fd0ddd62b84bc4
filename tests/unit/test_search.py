"""The hyper-parameter search on a fake family: budget, nested runs, pruning, skipping."""

from __future__ import annotations

from typing import Any, ClassVar

import mlflow
import pytest
from pydantic import BaseModel

from filmrec.model.recommender import Recommender
from filmrec.training.ease import CatalogueTooLarge
from filmrec.training.factor_models import popularity_model
from filmrec.training.families import FamilyTrainer, FitData
from filmrec.training.params import EvaluationProtocol, Family, SearchBudget, SearchSpace
from filmrec.training.search import ValidationFold, search_family
from tests.recommender_contract import tiny_matrix


class Knob(BaseModel):
    knob: float


class FakeTrainer(FamilyTrainer):
    """A family whose validation score is known: popularity, or nothing above knob 0.5."""

    name: ClassVar[Family] = "ease"

    def __init__(self, *, too_large: bool = False) -> None:
        self.too_large = too_large
        self.fits: list[float] = []

    def suggest(self, trial: Any, space: SearchSpace) -> Knob:
        return Knob(knob=trial.suggest_float("knob", 0.0, 1.0))

    def start_points(self, space: SearchSpace) -> list[dict[str, Any]]:
        return [{"knob": 0.25}]

    def fit(self, data: FitData, params: BaseModel) -> Recommender:
        assert isinstance(params, Knob)
        if self.too_large:
            raise CatalogueTooLarge("EASE skipped: too many movies for the test")
        self.fits.append(params.knob)
        train = data.pdf if params.knob <= 0.5 else data.pdf.iloc[:0]
        return popularity_model(train if not train.empty else data.pdf.iloc[:1])

    def parse(self, params: dict[str, Any]) -> Knob:
        return Knob.model_validate(params)


@pytest.fixture
def folds() -> list[ValidationFold]:
    train, test = tiny_matrix()
    # Spark is not needed by the fake family: FitData.spark is never read.
    return [ValidationFold(FitData(f"fold-{i}", None, train), test) for i in range(3)]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One tracking database for the module: creating one costs seconds."""
    root = tmp_path_factory.mktemp("mlflow")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    yield mlflow.create_experiment("search-test", artifact_location=str(root / "artifacts"))
    mlflow.set_tracking_uri(None)


def test_trials_are_nested_runs_with_their_fold_scores(folds: list[ValidationFold], tracking: str) -> None:
    space = SearchSpace(budget=SearchBudget(trials=4), folds=3)
    with mlflow.start_run(experiment_id=tracking) as parent:
        outcome = search_family(FakeTrainer(), folds, space, EvaluationProtocol(k=3))
    assert isinstance(outcome.best_params, Knob) and outcome.best_params.knob <= 0.5
    assert len(outcome.trials) == 4 and outcome.trials[0]["params"] == {"knob": 0.25}
    children = mlflow.search_runs(
        [tracking], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list"
    )
    assert len(children) == 4
    for child in children:
        assert child.data.tags["model_family"] == "ease" and "knob" in child.data.params
        assert child.data.tags["optuna_state"] in {"COMPLETE", "PRUNED"}
    complete = [t for t in outcome.trials if t["state"] == "COMPLETE"]
    assert all(len(t["fold_scores"]) == 3 for t in complete)


def test_a_catalogue_too_large_skips_the_family_with_its_reason(
    folds: list[ValidationFold], tracking: str
) -> None:
    with mlflow.start_run(experiment_id=tracking):
        outcome = search_family(
            FakeTrainer(too_large=True), folds, SearchSpace(folds=3), EvaluationProtocol(k=3)
        )
    assert outcome.best_params is None
    assert outcome.skipped_reason == "EASE skipped: too many movies for the test"
