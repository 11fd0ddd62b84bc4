"""The model families a training run can fit, behind one interface.

Each family turns an Optuna trial into validated hyper-parameters and fits the served
numpy model from Spark data. The training job and the search only see this
interface, so a third family is one more subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from filmrec.training.params import ALSParams, EASEParams, Family, SearchSpace

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from pyspark.sql import DataFrame

    from filmrec.model.recommender import Recommender
    from filmrec.training.ease import ItemGram


@dataclass(frozen=True)
class FitData:
    """Ratings to fit on, in Spark and pandas; `key` names them ("fold-0", "train", "all")."""

    key: str
    spark: DataFrame
    pdf: pd.DataFrame


class FamilyTrainer(ABC):
    name: ClassVar[Family]

    @abstractmethod
    def suggest(self, trial: optuna.Trial, space: SearchSpace) -> BaseModel:
        """The trial's hyper-parameters, drawn from `space`."""

    @abstractmethod
    def start_points(self, space: SearchSpace) -> list[dict[str, Any]]:
        """Known good points the search tries first, as Optuna parameter dicts."""

    @abstractmethod
    def fit(self, data: FitData, params: BaseModel) -> Recommender:
        """The served model fitted on `data`."""

    @abstractmethod
    def parse(self, params: dict[str, Any]) -> BaseModel:
        """Validated hyper-parameters from a dict (an MLflow run's, a job's result)."""


class ALSTrainer(FamilyTrainer):
    name: ClassVar[Family] = "als"

    def suggest(self, trial: optuna.Trial, space: SearchSpace) -> ALSParams:
        als = space.als
        implicit = trial.suggest_categorical("implicit_prefs", als.implicit_prefs)
        confidence = trial.suggest_categorical("confidence", als.confidences)
        return ALSParams(
            rank=trial.suggest_int("rank", *als.rank, log=True),
            reg_param=trial.suggest_float("reg_param", *als.reg_param, log=True),
            alpha=trial.suggest_float("alpha", *als.alpha, log=True),
            # Explicit ALS fits the rating itself: no confidence mapping applies.
            confidence=confidence if implicit else "rating",
            max_iter=trial.suggest_int("max_iter", *als.max_iter),
            implicit_prefs=implicit,
        )

    def start_points(self, space: SearchSpace) -> list[dict[str, Any]]:
        fields = ("rank", "reg_param", "alpha", "confidence", "max_iter", "implicit_prefs")
        return [{name: getattr(point, name) for name in fields} for point in space.als_start]

    def fit(self, data: FitData, params: BaseModel) -> Recommender:
        from filmrec.training.als import fit_als

        assert isinstance(params, ALSParams)
        return fit_als(data.spark, params, ratings_pdf=data.pdf)

    def parse(self, params: dict[str, Any]) -> ALSParams:
        return ALSParams.model_validate(params)


class EASETrainer(FamilyTrainer):
    """EASE; Gram matrices are kept per (data, input scale, min ratings): a trial that
    changes only the penalty re-solves without another Spark job."""

    name: ClassVar[Family] = "ease"
    _CACHED_GRAMS = 4  # each is 8·n² bytes

    def __init__(self, *, max_items: int) -> None:
        self.max_items = max_items
        self._grams: OrderedDict[tuple[str, str, int], ItemGram] = OrderedDict()

    def suggest(self, trial: optuna.Trial, space: SearchSpace) -> EASEParams:
        ease = space.ease
        return EASEParams(
            reg_param=trial.suggest_float("reg_param", *ease.reg_param, log=True),
            input_scale=trial.suggest_categorical("input_scale", ease.input_scales),
            min_item_ratings=trial.suggest_categorical("min_item_ratings", ease.min_item_ratings),
            dropout=trial.suggest_float("dropout", *ease.dropout),
        )

    def start_points(self, space: SearchSpace) -> list[dict[str, Any]]:
        return [point.model_dump() for point in space.ease_start]

    def gram(self, data: FitData, params: EASEParams) -> ItemGram:
        from filmrec.training.ease import item_gram

        key = (data.key, params.input_scale, params.min_item_ratings)
        if key in self._grams:
            self._grams.move_to_end(key)
            return self._grams[key]
        gram = item_gram(
            data.spark,
            input_scale=params.input_scale,
            min_item_ratings=params.min_item_ratings,
            max_items=self.max_items,
        )
        self._grams[key] = gram
        while len(self._grams) > self._CACHED_GRAMS:
            self._grams.popitem(last=False)
        return gram

    def fit(self, data: FitData, params: BaseModel) -> Recommender:
        from filmrec.training.ease import ease_from_gram

        assert isinstance(params, EASEParams)
        return ease_from_gram(self.gram(data, params), params, ratings_pdf=data.pdf)

    def parse(self, params: dict[str, Any]) -> EASEParams:
        return EASEParams.model_validate(params)


def trainers(families: tuple[Family, ...], *, ease_max_items: int) -> list[FamilyTrainer]:
    """One trainer per family asked for, in that order."""
    by_name: dict[Family, FamilyTrainer] = {
        "als": ALSTrainer(),
        "ease": EASETrainer(max_items=ease_max_items),
    }
    return [by_name[name] for name in families]
