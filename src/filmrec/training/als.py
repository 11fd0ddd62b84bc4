"""Fitting Spark MLlib ALS and turning its factors into the served model format."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from filmrec.model.fold_in import FoldInConfig
from filmrec.model.recommender import FactorRecommender
from filmrec.training.factor_models import assemble
from filmrec.training.params import ALSParams

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def preference_strength(params: ALSParams) -> Column:
    """The value ALS fits: the rating itself, or a strength derived from it (implicit).

    model.fold_in.preference_strength is its numpy twin: the two must stay equal.
    """
    from pyspark.sql import functions as F

    if not params.implicit_prefs or params.confidence == "rating":
        return F.col("rating").cast("float")
    if params.confidence == "binary":
        return F.lit(1.0).cast("float")
    return F.log1p(F.col("rating")).cast("float")


def fit_als(ratings: DataFrame, params: ALSParams, *, ratings_pdf: pd.DataFrame) -> FactorRecommender:
    """Fit ALS on `ratings` (Spark) and return the numpy model.

    `ratings_pdf` is the same data in pandas: it supplies each user's rated movies and
    the popularity ranking that the served model carries beside the factors.
    """
    from pyspark.ml.recommendation import ALS

    data = ratings.select(
        ratings["user_id"].cast("int").alias("user_id"),
        ratings["movie_id"].cast("int").alias("movie_id"),
        preference_strength(params).alias("strength"),
    )
    estimator = ALS(
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        implicitPrefs=params.implicit_prefs,
        alpha=params.alpha,
        nonnegative=params.nonnegative,
        seed=params.seed,
        userCol="user_id",
        itemCol="movie_id",
        ratingCol="strength",
        coldStartStrategy="drop",
        # Checkpoints cut the lineage every few iterations (see build_spark).
        checkpointInterval=5,
    )
    fitted = estimator.fit(data)
    users: pd.DataFrame = fitted.userFactors.toPandas()
    items: pd.DataFrame = fitted.itemFactors.toPandas()
    return assemble(
        ratings=ratings_pdf,
        user_ids=users["id"].to_numpy(dtype=np.int64),
        user_factors=np.array(users["features"].tolist(), dtype=np.float32).reshape(len(users), params.rank),
        item_ids=items["id"].to_numpy(dtype=np.int64),
        item_factors=np.array(items["features"].tolist(), dtype=np.float32).reshape(len(items), params.rank),
        fold_in=fold_in_params(params),
    )


def fold_in_params(params: ALSParams) -> FoldInConfig | None:
    """What fold-in must repeat of this fit; None where it cannot (non-negative ALS uses NNLS)."""
    if params.nonnegative:
        return None
    return FoldInConfig(
        implicit_prefs=params.implicit_prefs,
        alpha=params.alpha,
        reg_param=params.reg_param,
        confidence=params.confidence,
    )
