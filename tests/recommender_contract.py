"""One contract every recommender must meet, on a tiny matrix with a known answer.

Twelve users in two taste groups rate items of their own group; each user's two
held-out items are the unrated items of their group. A recommender that learns the
structure ranks exactly those first. Subclasses supply `fit` and the nDCG floor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from filmrec.model.pyfunc import recommender_from_artifacts
from filmrec.model.recommender import Recommender
from filmrec.training.evaluation import evaluate

GROUPS = {"A": list(range(101, 107)), "B": list(range(201, 207))}


def tiny_matrix() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): users 1-8 like group A, users 9-12 group B."""
    train_rows, test_rows = [], []
    for user in range(1, 13):
        own, other = ("A", "B") if user <= 8 else ("B", "A")
        items = GROUPS[own]
        held_out = {items[user % 6], items[(user + 3) % 6]}
        for item in items:
            (test_rows if item in held_out else train_rows).append((user, item, 4.5))
        # One stray rating outside the group, so popularity alone is not the answer.
        train_rows.append((user, GROUPS[other][user % 6], 2.0))
    columns = ["user_id", "movie_id", "rating"]
    return pd.DataFrame(train_rows, columns=columns), pd.DataFrame(test_rows, columns=columns)


class RecommenderContract:
    min_ndcg: float = 0.0

    @pytest.fixture(scope="class")
    def data(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return tiny_matrix()

    @pytest.fixture(scope="class")
    def model(self, data: tuple[pd.DataFrame, pd.DataFrame]) -> Recommender:
        return self.fit(data[0])

    def fit(self, train: pd.DataFrame) -> Recommender:
        raise NotImplementedError

    def test_never_recommends_an_item_the_user_rated(self, model: Recommender, data) -> None:  # type: ignore[no-untyped-def]
        train, _ = data
        for user, rated in train.groupby("user_id")["movie_id"]:
            recs = model.recommend(int(user), k=20)
            assert recs.strategy == "model"
            assert not set(recs.movie_ids.tolist()) & set(rated.tolist())
            assert list(recs.scores) == sorted(recs.scores, reverse=True)

    def test_returns_at_most_the_unrated_items(self, model: Recommender) -> None:
        recs = model.recommend(1, k=100)
        assert len(recs.movie_ids) == model.n_items - len(model.rated_movie_ids(1))
        assert len(set(recs.movie_ids.tolist())) == len(recs.movie_ids)

    def test_unknown_user_gets_the_popular_items(self, model: Recommender) -> None:
        recs = model.recommend(999_999, k=3)
        assert recs.strategy == "popular"
        assert len(recs.movie_ids) == 3

    def test_meets_the_ndcg_floor(self, model: Recommender, data) -> None:  # type: ignore[no-untyped-def]
        train, test = data
        metrics = evaluate(model, train=train, test=test, k=3)
        assert metrics.users == 12
        assert metrics.ndcg_at_k >= self.min_ndcg

    def test_save_and_load_round_trip(self, model: Recommender, tmp_path: Path) -> None:
        loaded = recommender_from_artifacts(dict(model.save(tmp_path)))
        assert type(loaded) is type(model)
        for user in model.user_ids:
            np.testing.assert_array_equal(
                loaded.recommend(int(user), k=5).movie_ids, model.recommend(int(user), k=5).movie_ids
            )
        np.testing.assert_array_equal(loaded.popular_items, model.popular_items)

    def test_online_ratings_are_never_recommended_back(self, model: Recommender) -> None:
        # A known user rates two more of their group's items; a new user rates three.
        for user, online in ((1, {GROUPS["A"][1]: 5.0, GROUPS["A"][4]: 4.0}),
                             (999_998, {m: 5.0 for m in GROUPS["B"][:3]})):  # fmt: skip
            recs = model.recommend(user, k=model.n_items, online=online)
            assert not set(recs.movie_ids.tolist()) & set(online)
            assert not set(recs.movie_ids.tolist()) & set(model.rated_movie_ids(user).tolist())
            expected = "fold-in" if model.can_fold_in else ("model" if model.knows_user(user) else "popular")
            assert recs.strategy == expected

    def test_a_new_user_gets_their_taste_or_else_popularity(self, model: Recommender) -> None:
        """A family that folds in finds a new user's group; one that cannot says so (popular)."""
        rated = GROUPS["B"][:3]
        recs = model.recommend(999_997, k=3, online=dict.fromkeys(rated, 5.0))
        if model.can_fold_in:
            assert recs.strategy == "fold-in"
            assert set(recs.movie_ids.tolist()) == set(GROUPS["B"][3:])
        else:
            assert recs.strategy == "popular"
            assert not set(recs.movie_ids.tolist()) & set(rated)

    def test_similar_items_exclude_the_item_itself(self, model: Recommender) -> None:
        recs = model.similar(101, k=5)
        assert 101 not in recs.movie_ids
        assert len(recs.movie_ids) == 5

    def test_candidates_are_applied_before_the_top_k_cut(self, model: Recommender) -> None:
        """A filter keeps k answers when k pass it, and never lets another item through."""
        allowed = np.isin(model.item_ids, GROUPS["B"])
        recs = model.recommend(1, k=4, candidates=allowed)
        unrated_b = set(GROUPS["B"]) - set(model.rated_movie_ids(1).tolist())
        assert set(recs.movie_ids.tolist()) <= unrated_b
        assert len(recs.movie_ids) == min(4, len(unrated_b))
        new_user = model.recommend(999_996, k=3, candidates=allowed)
        assert set(new_user.movie_ids.tolist()) <= set(GROUPS["B"]) and len(new_user.movie_ids) == 3

    def test_explanations_name_a_movie_the_user_rated(self, model: Recommender) -> None:
        recs = model.recommend(1, k=3)
        reasons = model.explain(1, recs.movie_ids)
        assert set(reasons) == set(recs.movie_ids.tolist())
        assert {r.because_movie_id for r in reasons.values()} <= set(model.rated_movie_ids(1).tolist())
        online = {GROUPS["A"][1]: 5.0}
        folded = model.explain(999_995, recs.movie_ids, online=online)
        assert {r.because_movie_id for r in folded.values()} <= set(online)
        assert model.explain(999_994, recs.movie_ids) == {}  # nothing rated: nothing to explain

    def test_batch_top_lists_equal_one_user_at_a_time(self, model: Recommender) -> None:
        """recommend_indices (evaluation, warm-up) ranks like recommend (the API)."""
        users = np.array([0, 3, model.n_users - 1], dtype=np.int64)
        exclude = [model.rated_indices[model.rated_indptr[u] : model.rated_indptr[u + 1]] for u in users]
        batch = model.recommend_indices(users, k=4, exclude=exclude)
        for row, user_index in enumerate(users):
            # Every unrated item's score for this user, one user at a time: the batch's
            # picks must score what the top 4 score (ids may differ between tied items).
            every = model.recommend(int(model.user_ids[user_index]), k=model.n_items)
            score_of = dict(zip(every.movie_ids.tolist(), every.scores.tolist(), strict=True))
            picked = [score_of[int(m)] for m in model.item_ids[batch[row]]]
            np.testing.assert_allclose(picked, every.scores[:4], rtol=1e-5, atol=1e-6)
