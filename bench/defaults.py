"""The evidence behind the default search's choices, on the protocol's validation folds only.

    python -m bench.defaults [--out bench/results/defaults.json]

training/params.py's DEFAULT_SEARCH fixes EASE's input scale, its catalogue (movies
with at least 10 ratings) and its two start points. Each choice is justified here by
the mean nDCG@10 over the validation folds the search itself scores trials on: the
protocol's train part (per-user split, seed 42), split again per user with seeds 43
and 44 (EvaluationProtocol.validation_seed + fold). The protocol's test part is never
read, and no other split is: the peer bench's splits (bench/peers.py) stay unseen.

A few minutes on 2 cores (one Spark session, EASE solves of 2,269 and 4,980 movies).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.provenance import write_results
from filmrec.training.params import DEFAULT_SEARCH, EASEParams, EvaluationProtocol

# The alternatives params.py's comment weighs against the default, one change each.
_DEFAULT = DEFAULT_SEARCH.ease_start[0]
CANDIDATES: dict[str, EASEParams] = {
    "default start (dropout 0.3)": _DEFAULT,
    "plain EASE (dropout 0)": _DEFAULT.model_copy(update={"dropout": 0.0}),
    "movies rated >= 3 times": _DEFAULT.model_copy(update={"min_item_ratings": 3}),
    "binary input": _DEFAULT.model_copy(update={"input_scale": "binary"}),
}


def validation_scores(
    candidates: dict[str, EASEParams], *, folds: int = DEFAULT_SEARCH.folds
) -> dict[str, dict[str, Any]]:
    """Each candidate's nDCG@10 on every validation fold of the protocol split, and the mean."""
    import pandas as pd

    from bench.training import bench_settings
    from filmrec.config import get_settings
    from filmrec.data.movielens import MovieLensFiles, find_bundled_dir
    from filmrec.lakehouse.spark_session import build_spark
    from filmrec.training.evaluation import evaluate
    from filmrec.training.families import EASETrainer, FitData
    from filmrec.training.split import split_per_user

    protocol = EvaluationProtocol()
    settings = bench_settings(Path("var/bench-defaults").resolve(), get_settings().jars_dir)
    files = MovieLensFiles.in_directory(find_bundled_dir())
    ratings = pd.read_csv(files.ratings).rename(columns={"userId": "user_id", "movieId": "movie_id"})
    spark = build_spark(app_name="filmrec-bench-defaults", settings=settings)
    frame = spark.createDataFrame(ratings[["user_id", "movie_id", "rating"]])
    # The protocol's train part; its test part is dropped here, unread.
    train, _test = split_per_user(frame, test_fraction=protocol.test_fraction, seed=protocol.split_seed)
    train = train.cache()
    trainer = EASETrainer(max_items=settings.ease_max_items)
    scores: dict[str, list[float]] = {name: [] for name in candidates}
    for fold in range(folds):
        fit, validation = split_per_user(
            train, test_fraction=protocol.test_fraction, seed=protocol.validation_seed + fold
        )
        fit = fit.cache()
        data = FitData(f"fold-{fold}", fit, fit.toPandas())
        held = validation.toPandas()
        for name, params in candidates.items():
            model = trainer.fit(data, params)
            scores[name].append(
                evaluate(
                    model, train=data.pdf, test=held, k=protocol.k, max_users=protocol.max_users
                ).ndcg_at_k
            )
        fit.unpersist()
    spark.stop()
    return {
        name: {
            "params": candidates[name].model_dump(),
            "validation_ndcg_at_10_by_fold": [round(score, 4) for score in fold_scores],
            "mean_validation_ndcg_at_10": round(sum(fold_scores) / len(fold_scores), 4),
        }
        for name, fold_scores in scores.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/defaults.json"))
    args = parser.parse_args(argv)
    protocol = EvaluationProtocol()
    candidates = validation_scores(CANDIDATES)
    report: dict[str, Any] = {
        "protocol": protocol.version,
        "evidence": (
            f"validation folds of the protocol's train part (split seed {protocol.split_seed}, validation "
            f"seeds {protocol.validation_seed}..{protocol.validation_seed + DEFAULT_SEARCH.folds - 1}); "
            "the test part is never read"
        ),
        "candidates": candidates,
    }
    write_results(args.out, report)
    for name, row in candidates.items():
        print(
            f"{name:<32} {row['mean_validation_ndcg_at_10']:.4f}"
            f"  folds {row['validation_ndcg_at_10_by_fold']}"
        )
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
