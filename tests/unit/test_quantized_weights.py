"""EASE's one-byte weights (model/quantized_weights.py): the sums are the dense products."""

from __future__ import annotations

import numpy as np
import pytest

from filmrec.model.quantized_weights import QuantizedWeights
from filmrec.model.top_k import top_k_excluding


def _weights(n: int = 40, seed: int = 0) -> tuple[np.ndarray, QuantizedWeights]:
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((n, n)).astype(np.float32)
    dense[3] = 0.0  # an all-zero row keeps scale 1
    return dense, QuantizedWeights.from_dense(dense)


def test_each_weight_is_within_half_a_step_of_its_row() -> None:
    dense, weights = _weights()
    step = np.abs(dense).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(weights.dense() - dense) <= step / 2 + 1e-7)
    assert weights.values.dtype == np.int8 and weights.scales[3] == 1.0
    assert np.all(weights.dense()[3] == 0)


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 16, 17, 40])
def test_a_users_scores_are_the_rows_weighted_sum(count: int) -> None:
    # Around the kernel's eight-row passes: whole passes, a remainder, none at all.
    _, weights = _weights()
    rng = np.random.default_rng(count)
    items = np.sort(rng.choice(40, count, replace=False)).astype(np.int32)
    inputs = rng.uniform(0.1, 1.0, count).astype(np.float32)
    expected = inputs @ weights.dense()[items] if count else np.zeros(40, dtype=np.float32)
    np.testing.assert_allclose(weights.scores(items, inputs), expected, rtol=1e-5, atol=1e-5)


def test_batch_scores_are_each_users_scores() -> None:
    _, weights = _weights()
    rng = np.random.default_rng(1)
    lengths = [0, 3, 8, 12, 40]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate([np.sort(rng.choice(40, n, replace=False)) for n in lengths]).astype(np.int32)
    inputs = rng.uniform(0.1, 1.0, indptr[-1]).astype(np.float32)
    batch = weights.batch_scores(indptr, items, inputs)
    for user in range(len(lengths)):
        span = slice(indptr[user], indptr[user + 1])
        np.testing.assert_allclose(
            batch[user], weights.scores(items[span], inputs[span]), rtol=1e-6, atol=1e-6
        )


def test_the_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="square int8"):
        QuantizedWeights(np.zeros((2, 3), dtype=np.int8), np.ones(2, dtype=np.float32))
    with pytest.raises(ValueError, match="one entry per row"):
        QuantizedWeights(np.zeros((2, 2), dtype=np.int8), np.ones(3, dtype=np.float32))


@pytest.mark.parametrize("with_candidates", [False, True], ids=["all", "candidates"])
def test_best_is_the_top_k_of_the_scores(with_candidates: bool) -> None:
    # The fused scores-and-cut call serves computed lists: the same items and scores as
    # scoring first and cutting with top_k_excluding.
    _, weights = _weights()
    rng = np.random.default_rng(7)
    items = np.sort(rng.choice(40, 12, replace=False)).astype(np.int32)
    inputs = rng.uniform(0.1, 1.0, 12).astype(np.float32)
    candidates = rng.random(40) < 0.6 if with_candidates else None
    scores = weights.scores(items, inputs)
    expected = top_k_excluding(scores, exclude=items, k=5, candidates=candidates)
    top, top_scores = weights.best(items, inputs, exclude=items, k=5, candidates=candidates)
    np.testing.assert_array_equal(top, expected)
    np.testing.assert_allclose(top_scores, scores[expected], rtol=1e-6)
    assert not set(top.tolist()) & set(items.tolist())
