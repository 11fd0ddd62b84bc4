"""Peer recommenders on one split, run in the peers' own virtualenv (bench/peers.py makes it).

    .venv-peers/bin/python bench/peer_models.py --train T.parquet --test U.parquet --out R.json

LensKit's EASE and ImplicitMF and a popularity ranking, each tuned the way filmrec
tunes itself: on a validation split carved from train (never the test users' held-out
ratings), then refitted on the whole train part. Writes every test user's top 10 per
model and the chosen parameters; bench/peers.py scores them with filmrec's own metric
code, so every model is held to one yardstick. LensKit's top-N pipeline leaves out a
user's training items, as filmrec does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EASE_PENALTIES = (50.0, 100.0, 200.0, 500.0, 1000.0)
IMPLICIT_MF = ({"embedding_size": 64, "regularization": 0.1}, {"embedding_size": 128, "regularization": 0.1})
K = 10


def per_user_split(ratings: pd.DataFrame, *, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """floor(fraction * n) of each user's n ratings held out at random, by a seeded shuffle.

    Plain pandas, so both sides use it: this file runs in the peers' virtualenv
    (no filmrec there), bench/peers.py imports it in filmrec's.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ratings))
    shuffled = ratings.iloc[order]
    position = shuffled.groupby("user_id").cumcount()
    n_test = np.floor(shuffled.groupby("user_id")["movie_id"].transform("size") * fraction)
    held_out = position < n_test
    return shuffled[~held_out], shuffled[held_out]


def ndcg(recs: dict[int, list[int]], test: pd.DataFrame) -> float:
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    relevant = test.groupby("user_id")["movie_id"].apply(set)
    total = 0.0
    for user, items in recs.items():
        hits = np.array([item in relevant[user] for item in items[:K]], dtype=bool)
        total += discounts[: hits.size][hits].sum() / discounts[: min(len(relevant[user]), K)].sum()
    return total / max(len(recs), 1)


def top_lists(scorer: Any, train: pd.DataFrame, users: list[int]) -> dict[int, list[int]]:
    from lenskit import recommend
    from lenskit.data import from_interactions_df
    from lenskit.pipeline import topn_pipeline

    pipeline = topn_pipeline(scorer, n=K)
    pipeline.train(from_interactions_df(train, user_col="user_id", item_col="movie_id", rating_col="rating"))
    return {user: [int(i) for i in recommend(pipeline, user, K).ids()] for user in users}


def tuned(
    name: str, make: Any, grid: tuple[Any, ...], train: pd.DataFrame, test_users: list[int]
) -> dict[str, Any]:
    """Pick the grid point with the best validation nDCG, refit on train, list the test users."""
    fit, validation = per_user_split(train, fraction=0.25, seed=43)
    validation_users = sorted(validation["user_id"].unique().tolist())
    scores = {}
    for point in grid:
        scores[json.dumps(point)] = ndcg(top_lists(make(point), fit, validation_users), validation)
    best = json.loads(max(scores, key=scores.__getitem__))
    start = time.perf_counter()
    lists = top_lists(make(best), train, test_users)
    return {
        "name": name,
        "params": best,
        "validation_ndcg": scores,
        "fit_and_list_seconds": round(time.perf_counter() - start, 1),
        "lists": {str(user): items for user, items in lists.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import lenskit
    from lenskit.als import ImplicitMFConfig, ImplicitMFScorer
    from lenskit.basic import PopScorer
    from lenskit.knn.ease import EASEConfig, EASEScorer

    train, test = pd.read_parquet(args.train), pd.read_parquet(args.test)
    users = sorted(test["user_id"].unique().tolist())
    models = [
        tuned(
            "lenskit-ease", lambda p: EASEScorer(EASEConfig(regularization=p)), EASE_PENALTIES, train, users
        ),
        tuned(
            "lenskit-implicit-mf",
            lambda p: ImplicitMFScorer(ImplicitMFConfig(**p)),
            IMPLICIT_MF,
            train,
            users,
        ),
        tuned("lenskit-popular", lambda _p: PopScorer(), (None,), train, users),
    ]
    args.out.write_text(json.dumps({"lenskit": lenskit.__version__, "models": models}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
