"""A factor-model recommender scored with numpy alone (no JVM).

It holds what ALS learned (user and item factors), the id maps, each user's rated
movies (with the rating and when it was given) and the popularity ranking, and
answers top-k queries from them. Ratings the model has not seen yet are folded in:
the user's vector is solved again from the item factors (see fold_in.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from filmrec.model.fold_in import FoldInSolver

# model: the trained user vector; fold-in: a vector solved from the user's ratings,
# including ones the model has not seen; popular: a user with no usable ratings.
Strategy = Literal["model", "fold-in", "popular"]

ARTIFACT_FILES = {
    "user_factors": "user_factors.npy",
    "item_factors": "item_factors.npy",
    "id_maps": "id_maps.npz",
    "rated_items": "rated_items.npz",
    "popularity": "popularity.npz",
    "fold_in": "fold_in.npz",
}
# Models logged before fold-in existed lack these; they load and serve without it.
OPTIONAL_ARTIFACTS = frozenset({"fold_in"})


@dataclass(frozen=True)
class Recommendations:
    movie_ids: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    strategy: Strategy


@dataclass
class FactorRecommender:
    """Top-k recommendations from user and item factors.

    `rated_indptr`/`rated_indices` are a CSR matrix: the item indices user i rated are
    rated_indices[rated_indptr[i]:rated_indptr[i + 1]] (sorted within each user), with
    the star rating and the rating time (epoch milliseconds) in `rated_values` and
    `rated_at_ms` beside them. `popular_items` are item indices, most popular first,
    with `popular_scores` (rating counts) beside them. `fold_in` is None for a model
    that cannot fold in (the popularity baseline, models logged before it existed).
    """

    user_ids: npt.NDArray[np.int64]
    item_ids: npt.NDArray[np.int64]
    user_factors: npt.NDArray[np.float32]
    item_factors: npt.NDArray[np.float32]
    rated_indptr: npt.NDArray[np.int64]
    rated_indices: npt.NDArray[np.int32]
    popular_items: npt.NDArray[np.int32]
    popular_scores: npt.NDArray[np.float32]
    rated_values: npt.NDArray[np.float32] | None = None
    rated_at_ms: npt.NDArray[np.int64] | None = None
    fold_in: FoldInSolver | None = None
    _user_index: dict[int, int] = field(init=False, repr=False)
    _item_index: dict[int, int] = field(init=False, repr=False)
    _item_norms: npt.NDArray[np.float32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.user_factors.shape[0] != self.user_ids.shape[0]:
            raise ValueError("user_factors and user_ids disagree on the number of users")
        if self.item_factors.shape[0] != self.item_ids.shape[0]:
            raise ValueError("item_factors and item_ids disagree on the number of items")
        n_rated = self.rated_indices.shape[0]
        if self.rated_values is None:
            self.rated_values = np.ones(n_rated, dtype=np.float32)
        if self.rated_at_ms is None:
            self.rated_at_ms = np.zeros(n_rated, dtype=np.int64)
        if not (self.rated_values.shape[0] == self.rated_at_ms.shape[0] == n_rated):
            raise ValueError("rated_values and rated_at_ms must have one entry per rated item")
        self._user_index = {int(u): i for i, u in enumerate(self.user_ids)}
        self._item_index = {int(m): j for j, m in enumerate(self.item_ids)}
        norms = np.linalg.norm(self.item_factors, axis=1)
        self._item_norms = np.where(norms > 0, norms, 1.0).astype(np.float32)

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    def knows_user(self, user_id: int) -> bool:
        return user_id in self._user_index

    def knows_item(self, movie_id: int) -> bool:
        return movie_id in self._item_index

    def rated_movie_ids(self, user_id: int) -> npt.NDArray[np.int64]:
        index = self._user_index.get(user_id)
        if index is None:
            return np.empty(0, dtype=np.int64)
        return self.item_ids[self._rated_of(index)]

    def _rated_slice(self, user_index: int) -> slice:
        return slice(int(self.rated_indptr[user_index]), int(self.rated_indptr[user_index + 1]))

    def _rated_of(self, user_index: int) -> npt.NDArray[np.int32]:
        return self.rated_indices[self._rated_slice(user_index)]

    @property
    def can_fold_in(self) -> bool:
        return self.fold_in is not None

    def item_index(self, movie_id: int) -> int | None:
        return self._item_index.get(movie_id)

    def contains_rating(self, user_id: int, movie_id: int, *, rated_at_ms: int) -> bool:
        """True when the model was trained on this rating or a later one of the same movie.

        The lakehouse keeps the latest rating per (user, movie) by rated_at, so a
        rating at or before the one the model has is already in it (or superseded).
        """
        user_index = self._user_index.get(user_id)
        item_index = self._item_index.get(movie_id)
        if user_index is None or item_index is None:
            return False
        span = self._rated_slice(user_index)
        items = self.rated_indices[span]
        position = int(np.searchsorted(items, item_index))
        if position >= items.shape[0] or items[position] != item_index:
            return False
        assert self.rated_at_ms is not None  # set in __post_init__
        return bool(self.rated_at_ms[span][position] >= rated_at_ms)

    def recommend(
        self, user_id: int, *, k: int, online: Mapping[int, float] | None = None
    ) -> Recommendations:
        """The top-k movies a user has not rated.

        `online` maps movie ids to ratings the model has not seen (newer than any it
        has for them). With them the user's vector is folded in again; without any
        usable rating the user gets the most popular movies they have not rated.
        """
        index = self._user_index.get(user_id)
        online_items = self._known_items(online)
        if not online_items:
            if index is None:
                # Online ratings only of movies outside the catalogue: nothing to exclude.
                return self._popular(k=k, exclude=np.empty(0, dtype=np.int32))
            scores = self.item_factors @ self.user_factors[index]
            top = top_k_excluding(scores, exclude=self._rated_of(index), k=k)
            return Recommendations(self.item_ids[top], scores[top].astype(np.float32), "model")
        items, values = self._ratings_with(index, online_items)
        if self.fold_in is None:
            # An old model: exclude what the user rated, but the vector cannot move.
            if index is None:
                return self._popular(k=k, exclude=items)
            scores = self.item_factors @ self.user_factors[index]
            top = top_k_excluding(scores, exclude=items, k=k)
            return Recommendations(self.item_ids[top], scores[top].astype(np.float32), "model")
        vector = self.fold_in.user_vector(self.item_factors[items], values)
        scores = self.item_factors @ vector
        top = top_k_excluding(scores, exclude=items, k=k)
        return Recommendations(self.item_ids[top], scores[top].astype(np.float32), "fold-in")

    def fold_in_vector(
        self, user_id: int, online: Mapping[int, float] | None = None
    ) -> npt.NDArray[np.float32]:
        """The user's vector solved from their training ratings and `online` ones."""
        if self.fold_in is None:
            raise ValueError("this model carries no fold-in parameters")
        items, values = self._ratings_with(self._user_index.get(user_id), self._known_items(online))
        return self.fold_in.user_vector(self.item_factors[items], values)

    def _known_items(self, online: Mapping[int, float] | None) -> dict[int, float]:
        """Online ratings by item index; movies the model has no factors for are dropped."""
        if not online:
            return {}
        known = {}
        for movie_id, rating in online.items():
            item = self._item_index.get(int(movie_id))
            if item is not None:
                known[item] = float(rating)
        return known

    def _ratings_with(
        self, user_index: int | None, online_items: Mapping[int, float]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """(item indices, ratings): the training ratings, overridden and extended by online ones."""
        merged: dict[int, float] = {}
        if user_index is not None:
            span = self._rated_slice(user_index)
            assert self.rated_values is not None  # set in __post_init__
            merged = dict(
                zip(self.rated_indices[span].tolist(), self.rated_values[span].tolist(), strict=True)
            )
        merged.update(online_items)
        items = np.fromiter(merged.keys(), dtype=np.int32, count=len(merged))
        values = np.fromiter(merged.values(), dtype=np.float32, count=len(merged))
        return items, values

    def _popular(self, *, k: int, exclude: npt.NDArray[np.int32]) -> Recommendations:
        if exclude.size:
            keep = ~np.isin(self.popular_items, exclude)
            items, scores = self.popular_items[keep][:k], self.popular_scores[keep][:k]
        else:
            items, scores = self.popular_items[:k], self.popular_scores[:k]
        return Recommendations(self.item_ids[items], scores, "popular")

    def recommend_indices(
        self, user_indices: npt.NDArray[np.int64], *, k: int, exclude: list[npt.NDArray[np.int32]]
    ) -> npt.NDArray[np.int64]:
        """Top-k item indices for many users at once (evaluation and cache warm-up)."""
        scores = self.user_factors[user_indices] @ self.item_factors.T
        for row, seen in enumerate(exclude):
            scores[row, seen] = -np.inf
        return top_k_rows(scores, k=k)

    def similar(self, movie_id: int, *, k: int) -> Recommendations:
        """Movies whose item factors are closest by cosine similarity."""
        index = self._item_index[movie_id]
        vector = self.item_factors[index]
        cosine = (self.item_factors @ vector) / (self._item_norms * self._item_norms[index])
        top = top_k_excluding(cosine, exclude=np.array([index], dtype=np.int32), k=k)
        return Recommendations(self.item_ids[top], cosine[top].astype(np.float32), "model")

    def save(self, directory: Path) -> dict[str, Path]:
        """Write the artifacts as .npy/.npz files; return them by artifact name."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {name: directory / filename for name, filename in ARTIFACT_FILES.items()}
        np.save(paths["user_factors"], self.user_factors)
        np.save(paths["item_factors"], self.item_factors)
        np.savez(paths["id_maps"], user_ids=self.user_ids, item_ids=self.item_ids)
        assert self.rated_values is not None and self.rated_at_ms is not None  # set in __post_init__
        np.savez(
            paths["rated_items"],
            indptr=self.rated_indptr,
            indices=self.rated_indices,
            values=self.rated_values,
            rated_at_ms=self.rated_at_ms,
        )
        np.savez(paths["popularity"], items=self.popular_items, scores=self.popular_scores)
        if self.fold_in is not None:
            np.savez(paths["fold_in"], **self.fold_in.as_arrays())
        else:
            del paths["fold_in"]
        return paths

    @classmethod
    def load(cls, paths: dict[str, str | Path]) -> FactorRecommender:
        """Read the artifacts written by `save` (by artifact name, as MLflow hands them)."""
        id_maps = np.load(paths["id_maps"])
        rated = np.load(paths["rated_items"])
        popularity = np.load(paths["popularity"])
        fold_in = FoldInSolver.from_arrays(dict(np.load(paths["fold_in"]))) if "fold_in" in paths else None
        return cls(
            user_ids=id_maps["user_ids"],
            item_ids=id_maps["item_ids"],
            user_factors=np.load(paths["user_factors"]),
            item_factors=np.load(paths["item_factors"]),
            rated_indptr=rated["indptr"],
            rated_indices=rated["indices"],
            popular_items=popularity["items"],
            popular_scores=popularity["scores"],
            rated_values=rated.get("values"),
            rated_at_ms=rated.get("rated_at_ms"),
            fold_in=fold_in,
        )


def top_k_excluding(
    scores: npt.NDArray[np.floating], *, exclude: npt.NDArray[np.int32], k: int
) -> npt.NDArray[np.int64]:
    """Indices of the k highest scores, best first, never one of `exclude`."""
    scores = scores.astype(np.float32, copy=True)
    scores[exclude] = -np.inf
    available = scores.shape[0] - len(np.unique(exclude))
    return top_k_rows(scores[np.newaxis, :], k=min(k, available))[0]


def top_k_rows(scores: npt.NDArray[np.floating], *, k: int) -> npt.NDArray[np.int64]:
    """Per row, the indices of the k highest scores, best first."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.empty((scores.shape[0], 0), dtype=np.int64)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


@dataclass(frozen=True)
class RatedCSR:
    """Each user's rated items as CSR, sorted by item within a user, values beside them."""

    indptr: npt.NDArray[np.int64]
    indices: npt.NDArray[np.int32]
    values: npt.NDArray[np.float32]
    rated_at_ms: npt.NDArray[np.int64]


def build_rated_csr(
    user_index: npt.NDArray[np.int64],
    item_index: npt.NDArray[np.int64],
    *,
    n_users: int,
    values: npt.NDArray[np.floating] | None = None,
    rated_at_ms: npt.NDArray[np.int64] | None = None,
) -> RatedCSR:
    """The CSR of the items each user rated, from parallel arrays (one row per rating)."""
    order = np.lexsort((item_index, user_index))
    counts = np.bincount(user_index, minlength=n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n = item_index.shape[0]
    values = np.ones(n, dtype=np.float32) if values is None else np.asarray(values)
    rated_at_ms = np.zeros(n, dtype=np.int64) if rated_at_ms is None else np.asarray(rated_at_ms)
    return RatedCSR(
        indptr=indptr,
        indices=item_index[order].astype(np.int32),
        values=values[order].astype(np.float32),
        rated_at_ms=rated_at_ms[order].astype(np.int64),
    )
