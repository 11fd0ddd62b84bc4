"""The k best items of a score row: one pass, one tie rule, for a request and for evaluation.

A computed /recommendations list needs the 10 best of ~5k scores, minus the user's
rated movies. numpy's way (a mask, argpartition, a sort of the k) makes five arrays
the size of the row and cost a request about what summing its scores did. Here one
compiled pass keeps the k best seen so far in a small sorted buffer: after the first
few hundred items almost every score is below the buffer's last and costs one
comparison.

Ties go to the lower item index, everywhere: the served list and the lists the
evaluation protocol scores (top_k_rows) come from the same loop, so they cannot
disagree on ties.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

# best_k's `candidates` when every item may come (numba takes no None for an array).
NO_CANDIDATES = np.ones(0, dtype=np.bool_)


@numba.njit(nogil=True, cache=False)
def best_k(
    scores: npt.NDArray[np.float32],
    blocked: npt.NDArray[np.bool_],
    candidates: npt.NDArray[np.bool_],
    k: int,
    out: npt.NDArray[np.int64],
) -> int:
    """Fill out[:count] with the best allowed indices, best first; return count (≤ k).

    `blocked[i]`: never item i; `candidates`: empty for every item, else one flag each.
    NaN scores are never chosen."""
    best = np.empty(k, dtype=np.float32)
    count = 0
    restricted = candidates.shape[0] > 0
    for item in range(scores.shape[0]):
        if blocked[item] or (restricted and not candidates[item]):
            continue
        score = scores[item]
        if count == k:
            if not score > best[k - 1]:  # also False for NaN; a tie keeps the earlier item
                continue
            position = k - 1
        else:
            if score != score:
                continue
            position = count
            count += 1
        # Move worse entries down one; a later item goes after earlier equal ones.
        while position > 0 and best[position - 1] < score:
            best[position] = best[position - 1]
            out[position] = out[position - 1]
            position -= 1
        best[position] = score
        out[position] = item
    return count


@numba.njit(nogil=True, cache=False)
def best_k_excluding(
    scores: npt.NDArray[np.float32],
    exclude: npt.NDArray[np.int32],
    candidates: npt.NDArray[np.bool_],
    k: int,
) -> npt.NDArray[np.int64]:
    """best_k with `exclude` as item indices: the compiled top_k_excluding (also called
    from other compiled code, QuantizedWeights.best)."""
    blocked = np.zeros(scores.shape[0], dtype=np.bool_)
    for item in exclude:
        blocked[item] = True
    out = np.empty(k, dtype=np.int64)
    return out[: best_k(scores, blocked, candidates, k, out)]


@numba.njit(nogil=True, cache=False)
def _best_k_rows(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    users, items = scores.shape
    out = np.full((users, k), -1, dtype=np.int64)
    blocked = np.zeros(items, dtype=np.bool_)
    for user in range(users):
        best_k(scores[user], blocked, NO_CANDIDATES, k, out[user])
    return out


def top_k_excluding(
    scores: npt.NDArray[np.floating],
    *,
    exclude: npt.NDArray[np.integer],
    k: int,
    candidates: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.int64]:
    """Indices of the k highest scores, best first, never one of `exclude`, only `candidates`."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    return best_k_excluding(
        np.ascontiguousarray(scores, dtype=np.float32),
        np.asarray(exclude, dtype=np.int32),
        NO_CANDIDATES if candidates is None else np.asarray(candidates, dtype=np.bool_),
        k,
    )


def top_k_rows(scores: npt.NDArray[np.floating], *, k: int) -> npt.NDArray[np.int64]:
    """Per row, the indices of the k highest scores, best first (-inf scores included).

    Rows have min(k, items) entries; a row whose scores are NaN past some point fills
    the rest with -1 (no evaluated model produces NaN)."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.empty((scores.shape[0], 0), dtype=np.int64)
    return _best_k_rows(np.ascontiguousarray(scores, dtype=np.float32), k)


def warm_up() -> None:
    """Compile the loops now (a fraction of a second, once per process), not on a request."""
    row = np.zeros((1, 2), dtype=np.float32)
    top_k_excluding(row[0], exclude=np.zeros(1, dtype=np.int32), k=1)
    top_k_excluding(row[0], exclude=np.zeros(0, dtype=np.int32), k=1, candidates=np.ones(2, dtype=bool))
    top_k_rows(row, k=1)
