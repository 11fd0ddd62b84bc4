"""Building the served model format from training output.

Both the popularity baseline and ALS become a `FactorRecommender`, EASE an
`ItemWeightsRecommender` (training/ease.py); all share `assemble_shared`, so they are
evaluated, logged and served by the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from filmrec.model.fold_in import FoldInConfig, FoldInSolver
from filmrec.model.recommender import FactorRecommender, build_rated_csr


def _popularity(
    ratings: pd.DataFrame, item_ids: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    counts = ratings["movie_id"].value_counts().reindex(item_ids, fill_value=0).to_numpy()
    # Ties broken by movie id so the ranking is stable across runs.
    order = np.lexsort((item_ids, -counts)).astype(np.int32)
    return order, counts[order].astype(np.float32)


def assemble_shared(
    *, ratings: pd.DataFrame, user_ids: npt.NDArray[np.int64], item_ids: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """What every family carries beside its scoring arrays: ids, rated movies, popularity.

    `user_ids` and `item_ids` must be sorted. Ratings of other users or movies are left
    out. `ratings` may carry `rated_at` (kept so the API can tell which new ratings the
    model already has).
    """
    known = ratings[ratings["user_id"].isin(user_ids) & ratings["movie_id"].isin(item_ids)]
    rated = build_rated_csr(
        np.searchsorted(user_ids, known["user_id"].to_numpy()),
        np.searchsorted(item_ids, known["movie_id"].to_numpy()),
        n_users=len(user_ids),
        values=known["rating"].to_numpy(dtype=np.float32) if "rating" in known else None,
        rated_at_ms=_epoch_ms(known["rated_at"]) if "rated_at" in known else None,
    )
    popular_items, popular_scores = _popularity(ratings, item_ids)
    return {
        "user_ids": user_ids.astype(np.int64),
        "item_ids": item_ids.astype(np.int64),
        "rated_indptr": rated.indptr,
        "rated_indices": rated.indices,
        "popular_items": popular_items,
        "popular_scores": popular_scores,
        "rated_values": rated.values,
        "rated_at_ms": rated.rated_at_ms,
    }


def assemble(
    *,
    ratings: pd.DataFrame,
    user_ids: npt.NDArray[np.int64],
    user_factors: npt.NDArray[np.float32],
    item_ids: npt.NDArray[np.int64],
    item_factors: npt.NDArray[np.float32],
    fold_in: FoldInConfig | None = None,
) -> FactorRecommender:
    """A factor recommender from factors and the ratings whose items it must never recommend.

    Users and items are sorted by id; users who rated only unknown items keep no
    factors and get the popularity fallback. `fold_in` holds the training parameters
    that fold-in repeats; without it the model serves no fold-in.
    """
    user_order = np.argsort(user_ids)
    item_order = np.argsort(item_ids)
    user_ids, user_factors = user_ids[user_order], user_factors[user_order]
    item_ids, item_factors = item_ids[item_order], item_factors[item_order]
    item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
    return FactorRecommender(
        **assemble_shared(ratings=ratings, user_ids=user_ids, item_ids=item_ids),
        user_factors=np.ascontiguousarray(user_factors, dtype=np.float32),
        item_factors=item_factors,
        fold_in=FoldInSolver.for_factors(item_factors, fold_in) if fold_in else None,
    )


def _epoch_ms(rated_at: pd.Series) -> npt.NDArray[np.int64]:
    """Timestamps (naive ones read as UTC, as Spark hands them) to epoch milliseconds."""
    stamps = pd.to_datetime(rated_at, utc=True)
    # as_unit: pandas keeps whatever resolution it parsed (s, us or ns); fix it first.
    return stamps.dt.as_unit("ms").astype("int64").to_numpy(dtype=np.int64)


def popularity_model(ratings: pd.DataFrame) -> FactorRecommender:
    """The popularity baseline as a rank-1 factor model: score = number of ratings."""
    user_ids = np.sort(ratings["user_id"].unique()).astype(np.int64)
    item_ids = np.sort(ratings["movie_id"].unique()).astype(np.int64)
    counts = ratings["movie_id"].value_counts().reindex(item_ids).to_numpy(dtype=np.float32)
    return assemble(
        ratings=ratings,
        user_ids=user_ids,
        user_factors=np.ones((len(user_ids), 1), dtype=np.float32),
        item_ids=item_ids,
        item_factors=counts.reshape(-1, 1),
    )
