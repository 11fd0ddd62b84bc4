"""Fold-in: a user's factor vector solved from the served item factors, no retraining.

Spark's ALS computes every user vector, in its last half-iteration, from the final
item factors with one regularised least-squares solve per user. Repeating that
solve for a user's current ratings (a known user with new ones, or a brand-new user)
gives the vector the next training run would start from, in well under a
millisecond for a few hundred ratings. The solve here is Spark's, term for term
(ALS.computeFactors in mllib):

* implicit: A = VᵀV + Σ c1·v·vᵀ,  b = Σ (1 + c1)·v,  c1 = alpha·|strength|
* explicit: A = Σ v·vᵀ,           b = Σ rating·v
* then (A + reg·n·I) x = b, with n the number of ratings (ALS-WR scaling).

VᵀV is the same for every user, so it is computed once at training time and
shipped in the artifacts with the parameters the model was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Confidence = Literal["rating", "binary", "log"]
CONFIDENCES: tuple[Confidence, ...] = ("rating", "binary", "log")


def preference_strength(ratings: npt.NDArray[np.floating], confidence: Confidence) -> npt.NDArray[np.float64]:
    """The value ALS fits for each star rating: numpy twin of training.als.preference_strength."""
    values = np.asarray(ratings, dtype=np.float64)
    if confidence == "binary":
        return np.ones_like(values)
    if confidence == "log":
        return np.log1p(values)
    return values


@dataclass(frozen=True)
class FoldInConfig:
    """The training parameters that a fold-in solve must repeat."""

    implicit_prefs: bool
    alpha: float
    reg_param: float
    confidence: Confidence


@dataclass(frozen=True)
class FoldInSolver:
    """Solves user vectors against fixed item factors, as the trained ALS did."""

    item_gram: npt.NDArray[np.float64]  # VᵀV over all items, (rank, rank)
    config: FoldInConfig

    @classmethod
    def for_factors(cls, item_factors: npt.NDArray[np.floating], config: FoldInConfig) -> FoldInSolver:
        factors = np.asarray(item_factors, dtype=np.float64)
        return cls(item_gram=factors.T @ factors, config=config)

    def user_vector(
        self, item_factors: npt.NDArray[np.floating], ratings: npt.NDArray[np.floating]
    ) -> npt.NDArray[np.float32]:
        """The vector for a user who gave `ratings` to the items whose factors are given.

        `item_factors` are the rows of the rated items only, one per rating.
        """
        factors = np.asarray(item_factors, dtype=np.float64)
        rank = self.item_gram.shape[0]
        if factors.shape[0] == 0:
            return np.zeros(rank, dtype=np.float32)
        config = self.config
        strength = preference_strength(np.asarray(ratings), config.confidence)
        if config.implicit_prefs:
            c1 = config.alpha * np.abs(strength)
            positive = strength > 0
            # A rating whose strength is not positive adds confidence but no preference.
            a = self.item_gram + (factors * c1[:, np.newaxis]).T @ factors
            b = ((1.0 + c1) * positive) @ factors
            n = int(positive.sum())
        else:
            a = factors.T @ factors
            b = strength @ factors
            n = factors.shape[0]
        a = a + config.reg_param * n * np.eye(rank)
        try:
            # A is symmetric positive definite whenever reg > 0: Cholesky, as Spark does.
            lower = np.linalg.cholesky(a)
            vector = np.linalg.solve(lower.T, np.linalg.solve(lower, b))
        except np.linalg.LinAlgError:  # reg 0 with too few ratings: least squares instead
            vector = np.linalg.lstsq(a, b, rcond=None)[0]
        return vector.astype(np.float32)

    def as_arrays(self) -> dict[str, Any]:
        """What `save` writes into fold_in.npz."""
        return {
            "item_gram": self.item_gram,
            "implicit_prefs": np.array(self.config.implicit_prefs),
            "alpha": np.array(self.config.alpha),
            "reg_param": np.array(self.config.reg_param),
            "confidence": np.array(self.config.confidence),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> FoldInSolver:
        by_name: dict[str, Confidence] = {name: name for name in CONFIDENCES}
        confidence = by_name.get(str(arrays["confidence"]))
        if confidence is None:
            raise ValueError(f"unknown confidence mapping {arrays['confidence']!r} in the model artifacts")
        config = FoldInConfig(
            implicit_prefs=bool(arrays["implicit_prefs"]),
            alpha=float(arrays["alpha"]),
            reg_param=float(arrays["reg_param"]),
            confidence=confidence,
        )
        return cls(item_gram=np.asarray(arrays["item_gram"], dtype=np.float64), config=config)
