"""Top-k evaluation under the fixed protocol, on the numpy model that is served.

Candidates are every movie the user did not rate in train; relevant items are all of
the user's test movies; metrics are averaged over users with at least one test item
(above `max_users` of them, over a seeded sample: see EvaluationProtocol.max_users).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from filmrec.model.recommender import FactorRecommender, Recommender

BATCH_USERS = 1024
SAMPLE_SEED = 20240601


def sample_users(users: list[int], max_users: int | None) -> list[int]:
    """At most `max_users` of `users`, the same ones for the same input (sorted, seeded)."""
    if max_users is None or len(users) <= max_users:
        return users
    rng = np.random.default_rng(SAMPLE_SEED)
    chosen = rng.choice(len(users), size=max_users, replace=False)
    ordered = sorted(users)
    return [ordered[i] for i in np.sort(chosen)]


@dataclass(frozen=True)
class RankingMetrics:
    """Accuracy of the evaluated (test) users' top k, and how much of the model they see.

    scored_coverage: the share of the movies the model scores that appear in an
    evaluated user's top k. Not catalogue coverage (ListMetrics): its denominator is
    the model's own items and its users are the test users only.
    """

    ndcg_at_k: float
    precision_at_k: float
    recall_at_k: float
    map_at_k: float
    scored_coverage: float
    users: int
    k: int
    rmse: float | None = None

    def as_mlflow(self, prefix: str = "") -> dict[str, float]:
        """Metric names as logged: ndcg_at_10, precision_at_10, ... with an optional prefix."""
        values = {
            f"ndcg_at_{self.k}": self.ndcg_at_k,
            f"precision_at_{self.k}": self.precision_at_k,
            f"recall_at_{self.k}": self.recall_at_k,
            f"map_at_{self.k}": self.map_at_k,
            f"scored_coverage_at_{self.k}": self.scored_coverage,
            "users_evaluated": float(self.users),
        }
        if self.rmse is not None:
            values["rmse"] = self.rmse
        return {f"{prefix}{name}": value for name, value in values.items()}

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _discounts(k: int) -> npt.NDArray[np.float64]:
    return 1.0 / np.log2(np.arange(2, k + 2))


def user_metrics(recommended: npt.NDArray[np.int64], relevant: set[int], *, k: int) -> tuple[float, ...]:
    """nDCG, precision, recall and AP at k for one user's ranked list."""
    hits = np.fromiter(
        (int(item) in relevant for item in recommended[:k]),
        dtype=bool,
        count=min(k, len(recommended)),
    )
    discounts = _discounts(k)
    dcg = float(discounts[: hits.size][hits].sum())
    ideal = float(discounts[: min(len(relevant), k)].sum())
    n_hits = int(hits.sum())
    precision_at_rank = np.cumsum(hits) / np.arange(1, hits.size + 1)
    average_precision = float(precision_at_rank[hits].sum()) / min(len(relevant), k)
    return dcg / ideal, n_hits / k, n_hits / len(relevant), average_precision


def evaluate(
    model: Recommender,
    *,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 10,
    max_users: int | None = None,
) -> RankingMetrics:
    """Evaluate `model` on `test` (user_id, movie_id[, rating]), excluding `train` items."""
    user_position = pd.Series(np.arange(model.n_users), index=model.user_ids)
    test_movies = test["movie_id"].to_numpy()
    relevant_by_user = {
        user: set(test_movies[rows].tolist()) for user, rows in test.groupby("user_id").indices.items()
    }
    users = sample_users([u for u in relevant_by_user if u in user_position.index], max_users)
    totals = np.zeros(4)
    recommended_items: set[int] = set()
    for batch, top in _top_lists(model, train, users, k=k):
        for user, row in zip(batch, top, strict=True):
            movie_ids = model.item_ids[row]
            recommended_items.update(movie_ids.tolist())
            totals += user_metrics(movie_ids, relevant_by_user[user], k=k)
    n = max(len(users), 1)
    ndcg, precision, recall, average_precision = (totals / n).tolist()
    return RankingMetrics(
        ndcg_at_k=ndcg,
        precision_at_k=precision,
        recall_at_k=recall,
        map_at_k=average_precision,
        scored_coverage=len(recommended_items) / max(model.n_items, 1),
        users=len(users),
        k=k,
    )


def _top_lists(
    model: Recommender, train: pd.DataFrame, users: list[int], *, k: int
) -> Iterator[tuple[list[int], npt.NDArray[np.int64]]]:
    """(users, their top-k item indices) in batches, never a movie the user rated in train."""
    item_position = pd.Series(np.arange(model.n_items), index=model.item_ids)
    user_position = pd.Series(np.arange(model.n_users), index=model.user_ids)
    known_train = train[train["movie_id"].isin(item_position.index)]
    train_items = item_position.reindex(known_train["movie_id"].to_numpy()).to_numpy(dtype=np.int32)
    seen_by_user = {user: train_items[rows] for user, rows in known_train.groupby("user_id").indices.items()}
    empty = np.empty(0, dtype=np.int32)
    for start in range(0, len(users), BATCH_USERS):
        batch = users[start : start + BATCH_USERS]
        top = model.recommend_indices(
            user_position.loc[batch].to_numpy(), k=k, exclude=[seen_by_user.get(u, empty) for u in batch]
        )
        yield batch, top


@dataclass(frozen=True)
class ListMetrics:
    """What the lists look like beyond accuracy, over every user the model knows.

    catalogue_coverage: the share of the catalogue (every movie rated in train) that
    appears in someone's top k;
    novelty: the mean popularity rank of recommended movies (1 = the most rated; a
    model that wins on nDCG by recommending only blockbusters shows a low number);
    genre_diversity: the mean over lists of the mean pairwise Jaccard distance of
    the movies' genre sets (0: one genre mix throughout; 1: no genre shared).
    """

    catalogue_coverage: float
    novelty: float
    genre_diversity: float | None
    users: int
    k: int

    def as_mlflow(self, prefix: str = "") -> dict[str, float]:
        values = {
            f"catalogue_coverage_at_{self.k}": self.catalogue_coverage,
            "novelty_mean_popularity_rank": self.novelty,
        }
        if self.genre_diversity is not None:
            values[f"genre_diversity_at_{self.k}"] = self.genre_diversity
        return {f"{prefix}{name}": value for name, value in values.items()}


def list_metrics(
    model: Recommender,
    *,
    train: pd.DataFrame,
    k: int = 10,
    genres: Mapping[int, frozenset[str]] | None = None,
    max_users: int | None = None,
) -> ListMetrics:
    """Coverage, novelty and genre diversity of every known user's top k (see ListMetrics)."""
    counts = train["movie_id"].value_counts()
    # Rank 1 = most rated; ties share the best rank; unrated movies rank last.
    ranks = counts.rank(ascending=False, method="min").reindex(model.item_ids).fillna(len(counts) + 1)
    item_rank = ranks.to_numpy(dtype=np.float64)
    users = sample_users([int(u) for u in model.user_ids], max_users)
    recommended = np.zeros(model.n_items, dtype=bool)
    rank_total, slots, diversity_total, lists = 0.0, 0, 0.0, 0
    for _batch, top in _top_lists(model, train, users, k=k):
        for row in top:
            recommended[row] = True
            rank_total += float(item_rank[row].sum())
            slots += len(row)
            if genres is not None and len(row) > 1:
                diversity_total += _genre_distance(
                    [genres.get(int(m), frozenset()) for m in model.item_ids[row]]
                )
                lists += 1
    # Over the catalogue of train, not the model's own items: a family that leaves rare
    # movies out (EASE's min_item_ratings) must not look broader for it.
    catalogue = train["movie_id"].nunique()
    return ListMetrics(
        catalogue_coverage=float(recommended.sum()) / catalogue if catalogue else 0.0,
        novelty=rank_total / max(slots, 1),
        genre_diversity=diversity_total / lists if genres is not None and lists else None,
        users=len(users),
        k=k,
    )


def _genre_distance(genre_sets: list[frozenset[str]]) -> float:
    """Mean pairwise Jaccard distance of one list's genre sets."""
    total, pairs = 0.0, 0
    for i, first in enumerate(genre_sets):
        for second in genre_sets[i + 1 :]:
            union = first | second
            total += 1.0 - (len(first & second) / len(union) if union else 1.0)
            pairs += 1
    return total / pairs if pairs else 0.0


def rmse(model: FactorRecommender, test: pd.DataFrame) -> float | None:
    """Root-mean-square error of predicted ratings, over test pairs the model knows."""
    user_position = pd.Series(np.arange(model.n_users), index=model.user_ids)
    item_position = pd.Series(np.arange(model.n_items), index=model.item_ids)
    known = test[test["user_id"].isin(user_position.index) & test["movie_id"].isin(item_position.index)]
    if known.empty:
        return None
    users = model.user_factors[user_position.loc[known["user_id"]].to_numpy()]
    items = model.item_factors[item_position.loc[known["movie_id"]].to_numpy()]
    predicted = np.einsum("ij,ij->i", users, items)
    return float(np.sqrt(np.mean((predicted - known["rating"].to_numpy()) ** 2)))
