"""A champion that scores more of the catalogue, for the model path's second row.

The default search keeps EASE to the movies with at least 10 ratings (training/
params.py: 2,269 of the bundled 9,742); a champion of every movie with at least 3
(4,980) reads about five times the weight bytes per computed request. The bench
serves both, so the README can say what the catalogue choice costs.

The variant is fitted with the training job's own EASE trainer (the same Gram code,
the same input rule) on every bundled rating, with the served champion's EASE
parameters but `min_item_ratings`, and registered as the champion of a model name of
its own in the bench's MLflow store, so the bench's champion is untouched.
"""

from __future__ import annotations

from typing import Any

from filmrec.config import Settings


def register_catalogue_variant(
    settings: Settings, ease_params: dict[str, Any] | None, *, min_item_ratings: int
) -> str:
    """Fit, register and alias the variant; return the MODEL_NAME that serves it."""
    import pandas as pd

    from bench.realtime import _register
    from filmrec.data.movielens import MovieLensFiles, find_bundled_dir
    from filmrec.lakehouse.spark_session import build_spark
    from filmrec.training.families import EASETrainer, FitData
    from filmrec.training.params import DEFAULT_SEARCH, EASEParams

    base = ease_params or DEFAULT_SEARCH.ease_start[0].model_dump()
    params = EASEParams.model_validate(base | {"min_item_ratings": min_item_ratings})
    files = MovieLensFiles.in_directory(find_bundled_dir())
    ratings = pd.read_csv(files.ratings).rename(columns={"userId": "user_id", "movieId": "movie_id"})
    ratings = ratings[["user_id", "movie_id", "rating"]]
    spark = build_spark(app_name="filmrec-bench-catalogue", settings=settings)
    data = FitData(key="all", spark=spark.createDataFrame(ratings), pdf=ratings)
    model = EASETrainer(max_items=settings.ease_max_items).fit(data, params)
    model_name = f"{settings.model_name}-min{min_item_ratings}"
    _register(settings.model_copy(update={"model_name": model_name}), model)
    return model_name
