"""Fitting EASE: the item-item Gram matrix on Spark, the closed-form solve on the driver.

EASE (Steck, 2019): with X the users × movies matrix (each rating mapped by the input
scale) and G = XᵀX, the weights are B = I − P·diag(1/diag(P)) with P = (G + λI)⁻¹,
i.e. B_ij = −P_ij / P_jj and B_jj = 0.

The Gram matrix is a sum over users of x_uᵀx_u, so each Spark partition of the
ratings (partitioned by user, one per core) contributes its own users' sum, computed
as sparse block products into a dense total, and the driver adds the partitions' sums. The solve is one dense
Cholesky inverse: memory (8·n² bytes, twice) and time (n³) grow with the number of
movies, not of ratings, so above `max_items` movies the job skips EASE with a
logged reason instead of running out of memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from filmrec.model.item_weights import MAX_STARS, InputScale, ItemWeightsRecommender
from filmrec.model.quantized_weights import QuantizedWeights
from filmrec.training.factor_models import assemble_shared
from filmrec.training.params import EASEParams

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

# Rows per sparse block inside a partition: bounds a worker's memory on big partitions
# (a block's product holds ~40M non-zeros at 1M rows of a 10k-movie catalogue, 0.5 GB).
# Large, because adding a block's product into the dense total costs a pass of random
# writes over it: at 200k rows, 1M ratings took 42 s, at 1M rows 6 s.
_BLOCK_ROWS = 1_000_000


class CatalogueTooLarge(ValueError):
    """EASE would need more memory than allowed: the family is skipped, with this reason."""


@dataclass(frozen=True)
class ItemGram:
    """XᵀX over the movies with enough ratings, in movie-id order."""

    item_ids: npt.NDArray[np.int64]
    gram: npt.NDArray[np.float64]


def gram_bytes(n_items: int) -> int:
    """Peak driver memory of the solve: the Gram matrix and its inverse, float64."""
    return 2 * 8 * n_items * n_items


# Rows of the dense Gram per message back to the driver: bounded messages (~80 MB at
# 10k movies) whatever the catalogue size.
_CHUNK_ROWS = 1000


def _partition_gram(
    rows: Iterable[tuple[int, int, float]], n_items: int
) -> Iterator[tuple[int, npt.NDArray[np.float64]]]:
    """One partition's Σ x_uᵀx_u as dense row chunks (runs on the executors).

    The sum is kept dense: past a few thousand users the Gram of a popular catalogue
    is mostly non-zero, and adding sparse block products to a sparse total costs a
    pass over the total per block. A worker holds 8·n² bytes (0.8 GB at 10k movies).
    """
    import scipy.sparse as sp

    total = np.zeros((n_items, n_items), dtype=np.float64)

    def flush(users: list[int], items: list[int], values: list[float]) -> None:
        _codes, user_index = np.unique(np.asarray(users, dtype=np.int64), return_inverse=True)
        x = sp.csr_matrix(
            (np.asarray(values, dtype=np.float64), (user_index, np.asarray(items, dtype=np.int64))),
            shape=(len(_codes), n_items),
        )
        product = x.T @ x
        # XᵀX is symmetric, so its compressed columns (scipy gives CSC here) are its
        # rows: no conversion. Into the dense total (pairs are unique in the product).
        assert isinstance(product, sp.csr_matrix | sp.csc_matrix)
        flat = np.repeat(np.arange(n_items, dtype=np.int64) * n_items, np.diff(product.indptr))
        total.reshape(-1)[flat + product.indices] += product.data

    users: list[int] = []
    items: list[int] = []
    values: list[float] = []
    last_user = None
    seen = False
    for user, item, value in rows:
        # Rows arrive sorted by user: a block ends only between users, so no user's
        # products are split across blocks.
        if len(users) >= _BLOCK_ROWS and user != last_user:
            flush(users, items, values)
            users, items, values = [], [], []
        users.append(user)
        items.append(item)
        values.append(value)
        last_user = user
        seen = True
    if users:
        flush(users, items, values)
    if seen:
        for start in range(0, n_items, _CHUNK_ROWS):
            yield start, total[start : start + _CHUNK_ROWS]


def item_gram(
    ratings: DataFrame, *, input_scale: InputScale, min_item_ratings: int, max_items: int
) -> ItemGram:
    """XᵀX on Spark for the movies with at least `min_item_ratings` ratings."""
    from pyspark.sql import functions as F

    counts = ratings.groupBy("movie_id").count().where(F.col("count") >= min_item_ratings)
    item_ids = np.sort(
        np.array([row["movie_id"] for row in counts.select("movie_id").collect()], dtype=np.int64)
    )
    n_items = len(item_ids)
    if n_items > max_items:
        raise CatalogueTooLarge(
            f"EASE skipped: {n_items} movies have >= {min_item_ratings} ratings, above "
            f"FILMREC_EASE_MAX_ITEMS={max_items} (the solve would need "
            f"{gram_bytes(n_items) / 2**30:.1f} GiB on the driver)"
        )
    if n_items == 0:
        raise CatalogueTooLarge(f"EASE skipped: no movie has >= {min_item_ratings} ratings")
    spark = ratings.sparkSession
    index = spark.createDataFrame(
        pd.DataFrame({"movie_id": item_ids, "_item": np.arange(n_items, dtype=np.int32)})
    )
    # The Spark twin of model.item_weights.input_values: the two must stay equal.
    value = F.lit(1.0) if input_scale == "binary" else F.col("rating").cast("double") / F.lit(MAX_STARS)
    rows = (
        ratings.join(F.broadcast(index), "movie_id")
        .select(F.col("user_id").cast("long"), "_item", value.alias("_value"))
        # One partition per core: each sends its dense sum back, so more partitions
        # would only mean more n² messages.
        .repartition(spark.sparkContext.defaultParallelism, "user_id")
        .sortWithinPartitions("user_id")
    )
    gram = np.zeros((n_items, n_items), dtype=np.float64)
    parts = rows.rdd.map(tuple).mapPartitions(lambda part: _partition_gram(part, n_items))
    for start, chunk in parts.toLocalIterator():
        gram[start : start + chunk.shape[0]] += chunk
    return ItemGram(item_ids=item_ids, gram=gram)


def solve_weights(
    gram: npt.NDArray[np.float64], reg_param: float, dropout: float = 0.0
) -> npt.NDArray[np.float32]:
    """B from G: (G + Λ)⁻¹ by Cholesky (G + Λ is symmetric positive definite), then scaled.

    Λ = λI + dropout/(1 − dropout)·diag(G): plain EASE at dropout 0 (EASEParams.dropout).
    """
    from scipy.linalg import lapack

    a = gram.copy()
    a[np.diag_indices_from(a)] += reg_param + dropout / (1.0 - dropout) * np.diag(gram)
    factor, info = lapack.dpotrf(a, lower=False, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"G + Λ (λ={reg_param}, dropout {dropout}) is not positive definite (potrf info {info})"
        )
    inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"inverting G + Λ (λ={reg_param}, dropout {dropout}) failed (potri info {info})"
        )
    # potri fills the upper triangle only.
    inverse = np.triu(inverse) + np.triu(inverse, 1).T
    weights = inverse / -np.diag(inverse)[np.newaxis, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32)


def ease_from_gram(
    gram: ItemGram, params: EASEParams, *, ratings_pdf: pd.DataFrame
) -> ItemWeightsRecommender:
    """The served model: weights solved from `gram`, with the rated movies of `ratings_pdf`."""
    user_ids = np.sort(ratings_pdf["user_id"].unique()).astype(np.int64)
    shared = assemble_shared(ratings=ratings_pdf, user_ids=user_ids, item_ids=gram.item_ids)
    return ItemWeightsRecommender(
        **shared,
        weights=QuantizedWeights.from_dense(solve_weights(gram.gram, params.reg_param, params.dropout)),
        input_scale=params.input_scale,
    )
