"""The recommender contract, run against the popularity baseline and EASE (no JVM needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from filmrec.model.recommender import Recommender
from filmrec.training.ease import ItemGram, ease_from_gram
from filmrec.training.factor_models import popularity_model
from filmrec.training.params import EASEParams
from tests.recommender_contract import RecommenderContract, tiny_matrix


class TestPopularityContract(RecommenderContract):
    # Group A is larger, so popularity serves group B users badly: a low floor.
    min_ndcg = 0.3

    def fit(self, train: pd.DataFrame) -> Recommender:
        return popularity_model(train)


def dense_gram(ratings: pd.DataFrame, params: EASEParams) -> ItemGram:
    """XᵀX the textbook way (a dense X), the reference the Spark computation must equal."""
    counts = ratings["movie_id"].value_counts()
    item_ids = np.sort(counts[counts >= params.min_item_ratings].index.to_numpy()).astype(np.int64)
    kept = ratings[ratings["movie_id"].isin(item_ids)]
    users = np.sort(kept["user_id"].unique())
    x = np.zeros((len(users), len(item_ids)))
    values = np.ones(len(kept)) if params.input_scale == "binary" else kept["rating"].to_numpy() / 5.0
    x[np.searchsorted(users, kept["user_id"]), np.searchsorted(item_ids, kept["movie_id"])] = values
    return ItemGram(item_ids=item_ids, gram=x.T @ x)


class TestEASEContract(RecommenderContract):
    # Like ALS's floor: on 12 users a small penalty over-fits the one stray rating each.
    min_ndcg = 0.9

    def fit(self, train: pd.DataFrame) -> Recommender:
        params = EASEParams(reg_param=10.0, input_scale="rating", min_item_ratings=1)
        return ease_from_gram(dense_gram(train, params), params, ratings_pdf=train)


class TestEASEWithDropoutContract(TestEASEContract):
    def fit(self, train: pd.DataFrame) -> Recommender:
        params = EASEParams(reg_param=10.0, input_scale="rating", min_item_ratings=1, dropout=0.3)
        return ease_from_gram(dense_gram(train, params), params, ratings_pdf=train)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_ease_weights_match_the_closed_form(dropout: float) -> None:
    """B = I - P·diag(1/diag(P)), P = (G + Λ)⁻¹, Λ = λI + d/(1-d)·diag(G), B_jj = 0:
    solved by Cholesky here."""
    train, _ = tiny_matrix()
    params = EASEParams(reg_param=2.0, input_scale="binary", min_item_ratings=1, dropout=dropout)
    gram = dense_gram(train, params)
    model = ease_from_gram(gram, params, ratings_pdf=train)
    penalty = 2.0 + dropout / (1 - dropout) * np.diag(gram.gram)
    p = np.linalg.inv(gram.gram + np.diag(penalty))
    expected = np.eye(len(p)) - p / np.diag(p)[np.newaxis, :]
    weights = model.weights.dense()
    # Within half a quantisation step of each row (quantized_weights.py).
    step = np.abs(expected).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(weights - expected) <= step / 2 + 1e-6)
    assert np.all(np.diag(weights) == 0)


def test_ease_scores_are_the_users_row_times_the_weights() -> None:
    train, _ = tiny_matrix()
    model = TestEASEContract().fit(train)
    assert isinstance(model, Recommender)
    user_rows = train[train["user_id"] == 3]
    row = np.zeros(model.n_items, dtype=np.float32)
    row[np.searchsorted(model.item_ids, user_rows["movie_id"])] = user_rows["rating"] / 5.0
    recs = model.recommend(3, k=model.n_items)
    expected = row @ model.weights.dense()  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        recs.scores, expected[np.searchsorted(model.item_ids, recs.movie_ids)], rtol=1e-5
    )
