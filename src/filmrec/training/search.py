"""The hyper-parameter search: Optuna (TPE) on the mean of several validation folds.

Every trial is a nested MLflow run under the training run, with its parameters, its
nDCG@k on each validation fold and their mean. A trial whose first folds already
score below the median of earlier trials at the same fold is pruned (Optuna's
MedianPruner): with ALS fits costing a minute each, that is most of the saving.
The test split is never seen here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from filmrec.training.evaluation import evaluate
from filmrec.training.families import FamilyTrainer, FitData
from filmrec.training.params import EvaluationProtocol, SearchSpace

if TYPE_CHECKING:
    import optuna
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationFold:
    """Fit on `fit`, score on `validation`: both carved from train."""

    fit: FitData
    validation: pd.DataFrame


@dataclass
class SearchOutcome:
    family: str
    best_params: BaseModel | None
    best_validation_ndcg: float
    best_trial: int | None
    seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    skipped_reason: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "best_params": self.best_params.model_dump() if self.best_params else None,
            "best_validation_ndcg": round(self.best_validation_ndcg, 6),
            "best_trial": self.best_trial,
            "search_seconds": round(self.seconds, 1),
            "trials": len(self.trials),
            "pruned": sum(1 for trial in self.trials if trial["state"] == "PRUNED"),
            "skipped_reason": self.skipped_reason,
        }


def search_family(
    trainer: FamilyTrainer,
    folds: Sequence[ValidationFold],
    space: SearchSpace,
    protocol: EvaluationProtocol,
) -> SearchOutcome:
    """Search one family within the space's budget; trials log as nested MLflow runs.

    Call it inside the training run (an active MLflow run): the trials nest under it.
    """
    import mlflow
    import optuna

    from filmrec.training.ease import CatalogueTooLarge

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"filmrec-{trainer.name}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=space.seed),
        # Prune only against completed trials at the same fold, after two of them.
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    for point in trainer.start_points(space):
        study.enqueue_trial(point, skip_if_exists=True)
    trials: list[dict[str, Any]] = []
    skipped: list[str] = []
    parent = mlflow.active_run()
    # Nested runs go to the active experiment, not the parent's, unless told.
    experiment_id = parent.info.experiment_id if parent else None

    def objective(trial: optuna.Trial) -> float:
        params = trainer.suggest(trial, space)
        with mlflow.start_run(
            run_name=f"{trainer.name}-trial-{trial.number}", nested=True, experiment_id=experiment_id
        ):
            mlflow.set_tags({"model_family": trainer.name, "optuna_trial": str(trial.number)})
            mlflow.log_params(params.model_dump())
            scores: list[float] = []
            record: dict[str, Any] = {"trial": trial.number, "params": params.model_dump()}
            try:
                for step, fold in enumerate(folds):
                    model = trainer.fit(fold.fit, params)
                    score = evaluate(
                        model,
                        train=fold.fit.pdf,
                        test=fold.validation,
                        k=protocol.k,
                        max_users=protocol.max_users,
                    ).ndcg_at_k
                    scores.append(score)
                    mlflow.log_metric(f"validation_ndcg_at_{protocol.k}", score, step=step)
                    mean = sum(scores) / len(scores)
                    trial.report(mean, step)
                    if step + 1 < len(folds) and trial.should_prune():
                        record |= {"state": "PRUNED", "fold_scores": scores}
                        mlflow.set_tag("optuna_state", "PRUNED")
                        raise optuna.TrialPruned(f"mean {mean:.4f} after {step + 1} folds")
            except CatalogueTooLarge as error:
                skipped.append(str(error))
                record |= {"state": "FAIL", "reason": str(error)}
                mlflow.set_tag("optuna_state", "FAIL")
                raise
            finally:
                trials.append(record)
            mean = sum(scores) / len(scores)
            mlflow.log_metric(f"mean_validation_ndcg_at_{protocol.k}", mean)
            mlflow.set_tag("optuna_state", "COMPLETE")
            record |= {"state": "COMPLETE", "fold_scores": scores, "mean_validation_ndcg": mean}
            log.info("%s trial %d %s: mean validation nDCG %.4f", trainer.name, trial.number, params, mean)
            return mean

    start = time.perf_counter()
    study.optimize(
        objective,
        n_trials=space.trials_for(trainer.name),
        timeout=space.budget.seconds,
        catch=(CatalogueTooLarge,),
        gc_after_trial=True,
    )
    seconds = time.perf_counter() - start
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        reason = skipped[0] if skipped else "no trial completed within the budget"
        log.warning("%s: %s", trainer.name, reason)
        return SearchOutcome(trainer.name, None, float("-inf"), None, seconds, trials, reason)
    best = study.best_trial
    best_params = next(trainer.parse(record["params"]) for record in trials if record["trial"] == best.number)
    return SearchOutcome(
        family=trainer.name,
        best_params=best_params,
        best_validation_ndcg=float(best.value or 0.0),
        best_trial=best.number,
        seconds=seconds,
        trials=trials,
    )
