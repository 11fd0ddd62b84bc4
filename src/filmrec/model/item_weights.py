"""A recommender scored from an item-item weight matrix (EASE), with numpy alone.

EASE (Steck, 2019) learns B, one weight per pair of items, so that a user's row of
the interaction matrix times B reconstructs it: score(u, j) = Σ_i x_ui · B_ij, with
B_jj = 0. The row x_u is the user's ratings mapped by `input_scale` (the mapping the
Gram matrix was computed with). Scoring needs only the user's ratings, so a rating
the model has not seen changes the scores at once: fold-in is exact, and a new user
with a few ratings is scored like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from filmrec.model import top_k
from filmrec.model.quantized_weights import QuantizedWeights
from filmrec.model.recommender import Recommendations, Recommender, Strategy

# binary: every rating counts 1; rating: a rating counts stars / 5 (a 5 weighs twice a 2.5).
InputScale = Literal["binary", "rating"]
INPUT_SCALES: tuple[InputScale, ...] = ("binary", "rating")
MAX_STARS = 5.0

ITEM_WEIGHTS_ARTIFACTS = {"item_weights": "item_weights.npz"}


def input_values(ratings: npt.NDArray[np.floating], scale: InputScale) -> npt.NDArray[np.float32]:
    """A user's row of the interaction matrix from star ratings (training uses the same)."""
    values = np.asarray(ratings, dtype=np.float32)
    if scale == "binary":
        return np.ones_like(values)
    return values / np.float32(MAX_STARS)


@dataclass(kw_only=True)
class ItemWeightsRecommender(Recommender):
    """Scores from an (items, items) weight matrix B: scores = x_u @ B.

    Build one from a float matrix with `QuantizedWeights.from_dense`."""

    family: ClassVar[str] = "ease"
    family_artifacts: ClassVar[dict[str, str]] = ITEM_WEIGHTS_ARTIFACTS

    weights: QuantizedWeights
    input_scale: InputScale = "binary"
    # Each trained rating's row multiplier (its input times its row's scale), beside
    # rated_indices: fixed by the model, so a request does not compute them again.
    _trained_row_weights: npt.NDArray[np.float32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = self.item_ids.shape[0]
        if self.weights.n_items != n:
            raise ValueError(f"weights must be ({n}, {n}) for {n} items, not {self.weights.values.shape}")
        super().__post_init__()
        assert self.rated_values is not None  # set by Recommender.__post_init__
        self._trained_row_weights = self.weights.row_weights(
            self.rated_indices, input_values(self.rated_values, self.input_scale)
        )

    @property
    def can_fold_in(self) -> bool:
        return True

    def _trained_scores(self, user_index: int) -> npt.NDArray[np.float32]:
        return self._history_scores(*self._rated_history(user_index))

    def _history_scores(
        self, items: npt.NDArray[np.int32], values: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        return self.weights.scores(items, input_values(values, self.input_scale))

    def _best_trained(
        self, user_index: int, k: int, candidates: npt.NDArray[np.bool_] | None
    ) -> Recommendations:
        span = self._rated_slice(user_index)
        items = self.rated_indices[span]
        top, scores = self.weights.best_weighted(
            items, self._trained_row_weights[span], exclude=items, k=k, candidates=candidates
        )
        return Recommendations(self.item_ids[top], scores, "model")

    def _best_of_history(
        self,
        items: npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        k: int,
        candidates: npt.NDArray[np.bool_] | None,
        strategy: Strategy,
    ) -> Recommendations:
        # Scores and cut in one compiled call (QuantizedWeights.best): the computed
        # request's largest step, without a full score row handed back to Python.
        inputs = input_values(values, self.input_scale)
        top, scores = self.weights.best(items, inputs, exclude=items, k=k, candidates=candidates)
        return Recommendations(self.item_ids[top], scores, strategy)

    def _batch_scores(self, user_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        assert self.rated_values is not None  # set in __post_init__
        starts = self.rated_indptr[user_indices]
        lengths = self.rated_indptr[user_indices + 1] - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # Positions of every batch user's ratings in the rated CSR, in batch order.
        take = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        inputs = input_values(self.rated_values[take], self.input_scale)
        return self.weights.batch_scores(indptr, self.rated_indices[take], inputs)

    def _similarity(self, item_index: int) -> npt.NDArray[np.float32]:
        """B's row: how much having this movie raises every other movie's score."""
        return self.weights.row(item_index)

    def _contributions(
        self,
        items: npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        targets: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        # EASE's score is a sum of per-item terms x_ui·B_ij: the terms themselves.
        terms: npt.NDArray[np.float32] = (
            self.weights.block(items, targets) * input_values(values, self.input_scale)[:, np.newaxis]
        ).T
        return terms

    def _family_arrays(self) -> dict[str, dict[str, Any] | npt.NDArray[Any]]:
        return {
            "item_weights": {
                "values": self.weights.values,
                "scales": self.weights.scales,
                "input_scale": np.array(self.input_scale),
            }
        }

    @classmethod
    def load(cls, paths: Mapping[str, str | Path]) -> ItemWeightsRecommender:
        """Read the artifacts written by `save` (by artifact name, as MLflow hands them)."""
        stored = np.load(paths["item_weights"], allow_pickle=False)
        by_name: dict[str, InputScale] = {name: name for name in INPUT_SCALES}
        scale = by_name.get(str(stored["input_scale"]))
        if scale is None:
            raise ValueError(f"unknown input scale {stored['input_scale']!r} in the model artifacts")
        if "values" in stored:
            weights = QuantizedWeights(stored["values"], stored["scales"])
        else:  # logged before the weights were quantised: float32 "weights"
            weights = QuantizedWeights.from_dense(stored["weights"])
        weights.warm_up()
        top_k.warm_up()
        return cls(**cls._shared_fields(paths), weights=weights, input_scale=scale)
