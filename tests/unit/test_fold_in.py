"""Fold-in against a known answer: a reference ALS written the textbook (dense) way.

The reference solves every user's equations with the full confidence matrix C_u over
all items (Hu, Koren and Volinsky 2008, with Spark's reg·n scaling); the served
fold-in uses the sparse VᵀV form. Folding a training user's own ratings back in must
reproduce the vector the last ALS half-step gave them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from filmrec.model.fold_in import FoldInConfig, FoldInSolver
from filmrec.model.recommender import FactorRecommender
from filmrec.training.factor_models import assemble
from tests.recommender_contract import RecommenderContract, tiny_matrix
from tests.reference_als import reference_als, reference_model


@pytest.mark.parametrize("confidence", ["binary", "rating", "log"])
def test_folding_a_training_user_back_in_reproduces_their_vector(confidence: str) -> None:
    train, _ = tiny_matrix()
    config = FoldInConfig(implicit_prefs=True, alpha=2.0, reg_param=0.1, confidence=confidence)  # type: ignore[arg-type]
    users, items, user_f, item_f = reference_als(train, config, rank=3)
    model = assemble(
        ratings=train,
        user_ids=users,
        user_factors=user_f,
        item_ids=items,
        item_factors=item_f,
        fold_in=config,
    )
    for position, user in enumerate(users):
        folded = model.fold_in_vector(int(user))
        np.testing.assert_allclose(folded, user_f[position], rtol=1e-3, atol=1e-4)


def test_explicit_fold_in_solves_the_regularised_least_squares() -> None:
    rng = np.random.default_rng(1)
    factors = rng.normal(size=(6, 3))
    ratings = np.array([4.0, 2.5, 5.0, 1.0, 3.5, 4.5])
    config = FoldInConfig(implicit_prefs=False, alpha=1.0, reg_param=0.2, confidence="rating")
    solver = FoldInSolver.for_factors(factors, config)
    expected = np.linalg.solve(factors.T @ factors + 0.2 * 6 * np.eye(3), factors.T @ ratings)
    np.testing.assert_allclose(solver.user_vector(factors, ratings), expected, rtol=1e-5)


def test_newer_online_ratings_override_the_trained_ones() -> None:
    train, _ = tiny_matrix()
    config = FoldInConfig(implicit_prefs=True, alpha=2.0, reg_param=0.1, confidence="rating")
    model = reference_model(train, config=config, rank=3, iterations=3)
    stray = int(train[(train["user_id"] == 1) & (train["rating"] == 2.0)]["movie_id"].iloc[0])
    # Re-rating the stray movie 5 stars moves the vector; rating it 2.0 again does not.
    assert not np.allclose(model.fold_in_vector(1, {stray: 5.0}), model.fold_in_vector(1))
    np.testing.assert_allclose(model.fold_in_vector(1, {stray: 2.0}), model.fold_in_vector(1), rtol=1e-6)


def test_contains_rating_compares_with_the_trained_rating_time() -> None:
    train, _ = tiny_matrix()
    train = train.assign(rated_at=pd.Timestamp("2024-01-01", tz="UTC"))
    config = FoldInConfig(implicit_prefs=True, alpha=1.0, reg_param=0.1, confidence="binary")
    model = reference_model(train, config=config, rank=2, iterations=2)
    trained_ms = int(pd.Timestamp("2024-01-01", tz="UTC").timestamp() * 1000)
    movie = int(train[train["user_id"] == 1]["movie_id"].iloc[0])
    assert model.contains_rating(1, movie, rated_at_ms=trained_ms)
    assert model.contains_rating(1, movie, rated_at_ms=trained_ms - 1)
    assert not model.contains_rating(1, movie, rated_at_ms=trained_ms + 1)
    assert not model.contains_rating(999, movie, rated_at_ms=0)
    unrated = int(model.item_ids[~np.isin(model.item_ids, train[train["user_id"] == 1]["movie_id"])][0])
    assert not model.contains_rating(1, unrated, rated_at_ms=0)


class TestReferenceALSContract(RecommenderContract):
    """The contract for a factor model that folds in (no JVM: the reference ALS)."""

    min_ndcg = 0.9

    def fit(self, train: pd.DataFrame) -> FactorRecommender:
        return reference_model(train, rank=2, iterations=20)
