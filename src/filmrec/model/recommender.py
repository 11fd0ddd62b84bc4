"""A factor-model recommender scored with numpy alone (no JVM).

It holds what ALS learned (user and item factors), the id maps, each user's rated
movies and the popularity ranking, and answers top-k queries from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

Strategy = Literal["model", "popular"]

ARTIFACT_FILES = {
    "user_factors": "user_factors.npy",
    "item_factors": "item_factors.npy",
    "id_maps": "id_maps.npz",
    "rated_items": "rated_items.npz",
    "popularity": "popularity.npz",
}


@dataclass(frozen=True)
class Recommendations:
    movie_ids: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    strategy: Strategy


@dataclass
class FactorRecommender:
    """Top-k recommendations from user and item factors.

    `rated_indptr`/`rated_indices` are a CSR matrix: the item indices user i rated are
    rated_indices[rated_indptr[i]:rated_indptr[i + 1]]. `popular_items` are item
    indices, most popular first, with `popular_scores` (rating counts) beside them.
    """

    user_ids: npt.NDArray[np.int64]
    item_ids: npt.NDArray[np.int64]
    user_factors: npt.NDArray[np.float32]
    item_factors: npt.NDArray[np.float32]
    rated_indptr: npt.NDArray[np.int64]
    rated_indices: npt.NDArray[np.int32]
    popular_items: npt.NDArray[np.int32]
    popular_scores: npt.NDArray[np.float32]
    _user_index: dict[int, int] = field(init=False, repr=False)
    _item_index: dict[int, int] = field(init=False, repr=False)
    _item_norms: npt.NDArray[np.float32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.user_factors.shape[0] != self.user_ids.shape[0]:
            raise ValueError("user_factors and user_ids disagree on the number of users")
        if self.item_factors.shape[0] != self.item_ids.shape[0]:
            raise ValueError("item_factors and item_ids disagree on the number of items")
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

    def _rated_of(self, user_index: int) -> npt.NDArray[np.int32]:
        return self.rated_indices[self.rated_indptr[user_index] : self.rated_indptr[user_index + 1]]

    def recommend(self, user_id: int, *, k: int) -> Recommendations:
        """The top-k unrated movies for a user, or the most popular for an unknown one."""
        index = self._user_index.get(user_id)
        if index is None:
            top = self.popular_items[:k]
            return Recommendations(self.item_ids[top], self.popular_scores[:k], "popular")
        scores = self.item_factors @ self.user_factors[index]
        top = top_k_excluding(scores, exclude=self._rated_of(index), k=k)
        return Recommendations(self.item_ids[top], scores[top].astype(np.float32), "model")

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
        np.savez(paths["rated_items"], indptr=self.rated_indptr, indices=self.rated_indices)
        np.savez(paths["popularity"], items=self.popular_items, scores=self.popular_scores)
        return paths

    @classmethod
    def load(cls, paths: dict[str, str | Path]) -> FactorRecommender:
        """Read the artifacts written by `save` (by artifact name, as MLflow hands them)."""
        id_maps = np.load(paths["id_maps"])
        rated = np.load(paths["rated_items"])
        popularity = np.load(paths["popularity"])
        return cls(
            user_ids=id_maps["user_ids"],
            item_ids=id_maps["item_ids"],
            user_factors=np.load(paths["user_factors"]),
            item_factors=np.load(paths["item_factors"]),
            rated_indptr=rated["indptr"],
            rated_indices=rated["indices"],
            popular_items=popularity["items"],
            popular_scores=popularity["scores"],
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


def build_rated_csr(
    user_index: npt.NDArray[np.int64], item_index: npt.NDArray[np.int64], *, n_users: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
    """CSR (indptr, indices) of the items each user rated, from parallel index arrays."""
    order = np.lexsort((item_index, user_index))
    counts = np.bincount(user_index, minlength=n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, item_index[order].astype(np.int32)
