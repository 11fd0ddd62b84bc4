"""The top-k cut (model/top_k.py): best first, ties to the lower index, exclusions never back."""

from __future__ import annotations

import numpy as np
import pytest

from filmrec.model.top_k import top_k_excluding, top_k_rows


def _expected(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """The rule itself, spelled with a sort: score descending, then index ascending."""
    index = np.flatnonzero(allowed & ~np.isnan(scores))
    return index[np.lexsort((index, -scores[index]))][:k]


def test_a_known_row() -> None:
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.7, 0.9], dtype=np.float32)
    # Three tied at 0.9: the lower indices first; item 2 excluded.
    assert top_k_excluding(scores, exclude=np.array([2], dtype=np.int32), k=3).tolist() == [1, 5, 4]
    assert top_k_excluding(scores, exclude=np.array([], dtype=np.int32), k=0).tolist() == []
    candidates = np.array([True, False, True, True, False, False])
    assert top_k_excluding(
        scores, exclude=np.array([2], dtype=np.int32), k=5, candidates=candidates
    ).tolist() == [0, 3]


@pytest.mark.parametrize("seed", range(40))
def test_random_rows_follow_the_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    scores = rng.integers(0, 5, n).astype(np.float32)  # few values: many ties
    scores[rng.random(n) < 0.1] = -np.inf
    scores[rng.random(n) < 0.05] = np.nan
    exclude = rng.choice(n, int(rng.integers(0, n)), replace=False).astype(np.int32)
    candidates = rng.random(n) < 0.7 if seed % 2 else None
    k = int(rng.integers(1, 15))
    allowed = np.ones(n, dtype=bool) if candidates is None else candidates.copy()
    allowed[exclude] = False
    got = top_k_excluding(scores, exclude=exclude, k=k, candidates=candidates)
    np.testing.assert_array_equal(got, _expected(scores, allowed, k))


def test_rows_cut_as_single_rows_do() -> None:
    # Evaluation (top_k_rows) and serving (top_k_excluding) share the loop, so the ties.
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, (6, 30)).astype(np.float32)
    scores[:, 5] = -np.inf  # e.g. a rated movie: last, but still a row entry
    rows = top_k_rows(scores, k=30)
    none = np.array([], dtype=np.int32)
    for row, user_scores in zip(rows, scores, strict=True):
        np.testing.assert_array_equal(row, top_k_excluding(user_scores, exclude=none, k=30))
        assert row[-1] == 5
    assert top_k_rows(scores, k=50).shape == (6, 30)
    assert top_k_rows(scores, k=0).shape == (6, 0)
