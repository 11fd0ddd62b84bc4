"""The recommender contract, run against the popularity baseline (no JVM needed)."""

from __future__ import annotations

import pandas as pd

from filmrec.model.recommender import FactorRecommender
from filmrec.training.factor_models import popularity_model
from tests.recommender_contract import RecommenderContract


class TestPopularityContract(RecommenderContract):
    # Group A is larger, so popularity serves group B users badly: a low floor.
    min_ndcg = 0.3

    def fit(self, train: pd.DataFrame) -> FactorRecommender:
        return popularity_model(train)
