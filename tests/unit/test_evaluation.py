from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from filmrec.training.evaluation import evaluate, user_metrics
from filmrec.training.factor_models import assemble


def test_user_metrics_by_hand() -> None:
    # Hits at ranks 1 and 3 of 3, with 4 relevant items.
    ndcg, precision, recall, average_precision = user_metrics(np.array([10, 11, 12]), {10, 12, 98, 99}, k=3)
    dcg = 1 + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg == pytest.approx(dcg / ideal)
    assert precision == pytest.approx(2 / 3)
    assert recall == pytest.approx(2 / 4)
    assert average_precision == pytest.approx((1 / 1 + 2 / 3) / 3)


def test_evaluate_excludes_train_items_and_counts_scored_coverage() -> None:
    # One user, three items; the model prefers item 1 but the user rated it in train.
    model = assemble(
        ratings=pd.DataFrame({"user_id": [1], "movie_id": [1], "rating": [5.0]}),
        user_ids=np.array([1]),
        user_factors=np.array([[1.0]], dtype=np.float32),
        item_ids=np.array([1, 2, 3]),
        item_factors=np.array([[3.0], [2.0], [1.0]], dtype=np.float32),
    )
    train = pd.DataFrame({"user_id": [1], "movie_id": [1], "rating": [5.0]})
    test = pd.DataFrame({"user_id": [1], "movie_id": [2], "rating": [4.0]})
    metrics = evaluate(model, train=train, test=test, k=1)
    assert metrics.ndcg_at_k == pytest.approx(1.0)
    assert metrics.precision_at_k == pytest.approx(1.0)
    assert metrics.scored_coverage == pytest.approx(1 / 3)
    assert metrics.as_mlflow()["ndcg_at_1"] == pytest.approx(1.0)
