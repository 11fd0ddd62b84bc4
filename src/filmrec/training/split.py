"""The per-user stratified random split of the evaluation protocol, in Spark."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def split_per_user(ratings: DataFrame, *, test_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Hold out floor(test_fraction * n) of each user's n ratings, chosen at random.

    "Random" is a hash of (user, movie, seed) rather than rand(): it gives the same
    split whatever the partitioning, the cluster size or the Spark version.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    per_user = Window.partitionBy("user_id")
    ranked = ratings.withColumn(
        "_order",
        F.row_number().over(per_user.orderBy(F.xxhash64("user_id", "movie_id", F.lit(seed)), "movie_id")),
    ).withColumn("_n_test", F.floor(F.count(F.lit(1)).over(per_user) * F.lit(test_fraction)))
    is_test = F.col("_order") <= F.col("_n_test")
    columns = ratings.columns
    return ranked.where(~is_test).select(*columns), ranked.where(is_test).select(*columns)
