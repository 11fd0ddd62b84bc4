"""An item-item weight matrix held as one byte a weight, and the loops that score with it.

Scoring a user with EASE sums the rows of B of the movies they rated. In the bundled
data that is ~155 rows of 5k weights a request: at four bytes a weight, 3 MB of
memory read per request, which is what held the model path to a few hundred
requests a second (README, Benchmarks). Stored as int8 with one float scale per row
(the row's largest magnitude over 127), the same request reads a quarter of that.
Each weight moves by at most half its row's step, so a score moves by at most
Σ |x_ui|·scale_i / 2: small next to the gaps between the top scores, and the
training section of `make bench` measures the quantised model, the one served.

numpy has no int8-to-float multiply-add, and converting the gathered rows first
costs more than it saves, so the sums are two small numba loops (compiled once per
process, on first use; `warm_up` does it at load time, not on a request).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from filmrec.model.top_k import NO_CANDIDATES, best_k_excluding

_INT8_MAX = 127


@numba.njit(nogil=True, fastmath=True, cache=False)
def _add_rows(
    values: npt.NDArray[np.int8],
    items: npt.NDArray[np.int32],
    row_weights: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
) -> None:
    """out += Σ_r row_weights[r] · values[items[r]].

    Eight rows per pass over `out`: with one row per pass, reading and writing `out`
    (float32) costs as much as the int8 row itself."""
    width = values.shape[1]
    n = items.shape[0]
    r = 0
    while r + 8 <= n:
        a, b, c, d = values[items[r]], values[items[r + 1]], values[items[r + 2]], values[items[r + 3]]
        e, f, g, h = values[items[r + 4]], values[items[r + 5]], values[items[r + 6]], values[items[r + 7]]
        wa, wb, wc, wd = row_weights[r], row_weights[r + 1], row_weights[r + 2], row_weights[r + 3]
        we, wf, wg, wh = row_weights[r + 4], row_weights[r + 5], row_weights[r + 6], row_weights[r + 7]
        for j in range(width):
            first = (
                wa * np.float32(a[j]) + wb * np.float32(b[j]) + wc * np.float32(c[j]) + wd * np.float32(d[j])
            )
            second = (
                we * np.float32(e[j]) + wf * np.float32(f[j]) + wg * np.float32(g[j]) + wh * np.float32(h[j])
            )
            out[j] += first + second
        r += 8
    while r < n:
        row = values[items[r]]
        weight = row_weights[r]
        for j in range(width):
            out[j] += weight * np.float32(row[j])
        r += 1


@numba.njit(nogil=True, fastmath=True, cache=False)
def _add_rows_per_user(
    values: npt.NDArray[np.int8],
    indptr: npt.NDArray[np.int64],
    items: npt.NDArray[np.int32],
    row_weights: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
) -> None:
    """_add_rows for many users: user u's rows are items[indptr[u]:indptr[u + 1]]."""
    for user in range(indptr.shape[0] - 1):
        _add_rows(
            values,
            items[indptr[user] : indptr[user + 1]],
            row_weights[indptr[user] : indptr[user + 1]],
            out[user],
        )


@numba.njit(nogil=True, cache=False)
def _best_of_rows(
    values: npt.NDArray[np.int8],
    items: npt.NDArray[np.int32],
    row_weights: npt.NDArray[np.float32],
    exclude: npt.NDArray[np.int32],
    candidates: npt.NDArray[np.bool_],
    k: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The k best of Σ_r row_weights[r] · values[items[r]], never `exclude`: the sum and
    the cut in one compiled call, so the full score row never goes back to Python."""
    scores = np.zeros(values.shape[1], dtype=np.float32)
    _add_rows(values, items, row_weights, scores)
    best = best_k_excluding(scores, exclude, candidates, k)
    return best, scores[best]


@dataclass(frozen=True)
class QuantizedWeights:
    """B as int8 `values` (items, items) and float32 `scales` (items,): B_ij ≈ values_ij · scales_i."""

    values: npt.NDArray[np.int8]
    scales: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        n = self.values.shape[0]
        if self.values.dtype != np.int8 or self.values.shape != (n, n):
            raise ValueError(
                f"values must be a square int8 matrix, not {self.values.dtype} {self.values.shape}"
            )
        if self.scales.shape != (n,):
            raise ValueError(f"scales must have one entry per row ({n}), not {self.scales.shape}")

    @classmethod
    def from_dense(cls, weights: npt.NDArray[np.floating]) -> QuantizedWeights:
        dense = np.asarray(weights, dtype=np.float32)
        peak = np.abs(dense).max(axis=1) if dense.size else np.zeros(0, dtype=np.float32)
        # An all-zero row (a movie no one else shares a user with) keeps scale 1.
        scales = np.where(peak > 0, peak / _INT8_MAX, 1.0).astype(np.float32)
        values = np.rint(dense / scales[:, np.newaxis])
        return cls(np.clip(values, -_INT8_MAX, _INT8_MAX).astype(np.int8), scales)

    @property
    def n_items(self) -> int:
        return int(self.values.shape[0])

    def dense(self) -> npt.NDArray[np.float32]:
        """The weights the scores are computed from, as float32 (tests, small matrices)."""
        dense: npt.NDArray[np.float32] = self.values * self.scales[:, np.newaxis]
        return dense

    def row(self, item: int) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.values[item] * self.scales[item]
        return row

    def block(
        self, items: npt.NDArray[np.integer], targets: npt.NDArray[np.integer]
    ) -> npt.NDArray[np.float32]:
        """B[items][:, targets]: the weights of a few rows at a few columns."""
        block: npt.NDArray[np.float32] = self.values[np.ix_(items, targets)] * self.scales[items, np.newaxis]
        return block

    def scores(
        self, items: npt.NDArray[np.int32], inputs: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Σ_r inputs[r] · B[items[r]]: one user's scores for every item."""
        out = np.zeros(self.n_items, dtype=np.float32)
        items = np.asarray(items, dtype=np.int32)
        _add_rows(self.values, items, self.row_weights(items, inputs), out)
        return out

    def best(
        self,
        items: npt.NDArray[np.int32],
        inputs: npt.NDArray[np.float32],
        *,
        exclude: npt.NDArray[np.int32],
        k: int,
        candidates: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(indices, scores) of the k best items of `scores(items, inputs)`, best first,
        as top_k.top_k_excluding cuts them (the same loop, the same ties)."""
        items = np.asarray(items, dtype=np.int32)
        return self.best_weighted(
            items, self.row_weights(items, inputs), exclude=exclude, k=k, candidates=candidates
        )

    def best_weighted(
        self,
        items: npt.NDArray[np.int32],
        row_weights: npt.NDArray[np.float32],
        *,
        exclude: npt.NDArray[np.int32],
        k: int,
        candidates: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """`best` from each row's multiplier already taken (`row_weights(items, inputs)`):
        a trained user's are the model's, computed once at load, not on every request."""
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        return _best_of_rows(
            self.values,
            np.asarray(items, dtype=np.int32),
            np.asarray(row_weights, dtype=np.float32),
            np.asarray(exclude, dtype=np.int32),
            NO_CANDIDATES if candidates is None else np.asarray(candidates, dtype=np.bool_),
            k,
        )

    def batch_scores(
        self, indptr: npt.NDArray[np.int64], items: npt.NDArray[np.int32], inputs: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """(users, items) scores; user u rated items[indptr[u]:indptr[u + 1]] with those inputs."""
        out = np.zeros((indptr.shape[0] - 1, self.n_items), dtype=np.float32)
        items = np.asarray(items, dtype=np.int32)
        _add_rows_per_user(
            self.values, np.asarray(indptr, dtype=np.int64), items, self.row_weights(items, inputs), out
        )
        return out

    def row_weights(
        self, items: npt.NDArray[np.int32], inputs: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Each gathered row's multiplier: the user's input times the row's scale."""
        weights: npt.NDArray[np.float32] = (np.asarray(inputs, dtype=np.float32) * self.scales[items]).astype(
            np.float32
        )
        return weights

    def warm_up(self) -> None:
        """Compile the loops now (a fraction of a second, once per process)."""
        if self.n_items:
            one = np.zeros(1, dtype=np.int32)
            self.scores(one, np.ones(1, dtype=np.float32))
            self.batch_scores(np.array([0, 1], dtype=np.int64), one, np.ones(1, dtype=np.float32))
            self.best(one, np.ones(1, dtype=np.float32), exclude=one, k=1)
            self.best(
                one, np.ones(1, dtype=np.float32), exclude=one, k=1, candidates=np.ones(self.n_items, bool)
            )
