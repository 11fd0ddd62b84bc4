"""A reference implicit ALS in plain numpy, written the textbook (dense) way.

Every user's equations are solved with the full confidence matrix C_u over all items
(Hu, Koren and Volinsky 2008, with Spark's reg·n scaling), users last as in Spark.
The served fold-in uses the sparse VᵀV form; tests compare the two, and the API's
route tests use it as a small model that needs no JVM.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from filmrec.model.fold_in import FoldInConfig, preference_strength
from filmrec.model.recommender import FactorRecommender
from filmrec.serving.loaded_model import LoadedModel
from filmrec.training.factor_models import assemble
from tests.recommender_contract import tiny_matrix


def _dense_solve(fixed: np.ndarray, prefs: np.ndarray, conf: np.ndarray, config: FoldInConfig) -> np.ndarray:
    """One side of implicit ALS: each row's x = (FᵀCF + reg·n·I)⁻¹ FᵀCp, C dense."""
    rank = fixed.shape[1]
    out = np.zeros((prefs.shape[0], rank))
    for row in range(prefs.shape[0]):
        c = np.diag(conf[row])
        n = int((prefs[row] > 0).sum())
        a = fixed.T @ c @ fixed + config.reg_param * n * np.eye(rank)
        out[row] = np.linalg.solve(a, fixed.T @ c @ prefs[row])
    return out


def reference_als(
    ratings: pd.DataFrame, config: FoldInConfig, *, rank: int, iterations: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user ids, item ids, user factors, item factors), users solved last as in Spark."""
    users = np.sort(ratings["user_id"].unique())
    items = np.sort(ratings["movie_id"].unique())
    r = np.zeros((len(users), len(items)))
    r[np.searchsorted(users, ratings["user_id"]), np.searchsorted(items, ratings["movie_id"])] = ratings[
        "rating"
    ]
    strength = np.where(r > 0, preference_strength(r, config.confidence), 0.0)
    prefs = (strength > 0).astype(float)
    conf = 1.0 + config.alpha * strength
    rng = np.random.default_rng(0)
    user_f = rng.normal(scale=0.1, size=(len(users), rank))
    item_f = np.zeros((len(items), rank))
    for _ in range(iterations):
        item_f = _dense_solve(user_f, prefs.T, conf.T, config)
        user_f = _dense_solve(item_f, prefs, conf, config)
    return users, items, user_f.astype(np.float32), item_f.astype(np.float32)


def reference_model(
    ratings: pd.DataFrame, *, config: FoldInConfig | None = None, rank: int = 2, iterations: int = 20
) -> FactorRecommender:
    """The served model format fitted by the reference ALS (rating-scaled confidence by default)."""
    config = config or FoldInConfig(implicit_prefs=True, alpha=1.0, reg_param=0.1, confidence="rating")
    users, items, user_f, item_f = reference_als(ratings, config, rank=rank, iterations=iterations)
    return assemble(
        ratings=ratings,
        user_ids=users,
        user_factors=user_f,
        item_ids=items,
        item_factors=item_f,
        fold_in=config,
    )


def tiny_served_model() -> LoadedModel:
    """The reference model on the contract's tiny matrix, as the API holds a champion."""
    return LoadedModel(
        recommender=reference_model(tiny_matrix()[0]),
        name="tiny",
        version="7",
        run_id=None,
        metrics={},
        created_at=None,
        family="ease",
    )
