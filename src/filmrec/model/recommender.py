"""The served recommenders, scored with numpy alone (no JVM).

`Recommender` holds what every model family shares: the id maps, each user's rated
movies (with the rating and when it was given), the popularity ranking, the merge
of ratings the model has not seen yet, and the top-k cut. A family supplies the
scores: `FactorRecommender` from ALS user and item factors (new ratings are folded
in: the user's vector is solved again, see fold_in.py), `ItemWeightsRecommender`
(item_weights.py) from an item-item weight matrix (EASE).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from filmrec.model import top_k
from filmrec.model.fold_in import FoldInSolver
from filmrec.model.top_k import top_k_excluding, top_k_rows

# model: the trained user vector; fold-in: a vector solved from the user's ratings,
# including ones the model has not seen; popular: a user with no usable ratings.
Strategy = Literal["model", "fold-in", "popular"]

# What every family writes; each adds its own scoring artifacts (FAMILY_ARTIFACTS).
SHARED_ARTIFACTS = {
    "id_maps": "id_maps.npz",
    "rated_items": "rated_items.npz",
    "popularity": "popularity.npz",
}
FACTOR_ARTIFACTS = {
    "user_factors": "user_factors.npy",
    "item_factors": "item_factors.npy",
    "fold_in": "fold_in.npz",
}
ARTIFACT_FILES = SHARED_ARTIFACTS | FACTOR_ARTIFACTS
# Models logged before fold-in existed lack these; they load and serve without it.
OPTIONAL_ARTIFACTS = frozenset({"fold_in"})


@dataclass(frozen=True)
class Recommendations:
    movie_ids: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    strategy: Strategy


@dataclass(frozen=True)
class Explanation:
    """Why a movie was recommended: the user's rated movie that contributed most."""

    because_movie_id: int
    weight: float


@dataclass(kw_only=True)
class Recommender(ABC):
    """Top-k recommendations over a catalogue, whatever the model family.

    `rated_indptr`/`rated_indices` are a CSR matrix: the item indices user i rated are
    rated_indices[rated_indptr[i]:rated_indptr[i + 1]] (sorted within each user), with
    the star rating and the rating time (epoch milliseconds) in `rated_values` and
    `rated_at_ms` beside them. `popular_items` are item indices, most popular first,
    with `popular_scores` (rating counts) beside them.
    """

    family: ClassVar[str]
    # The artifacts this family writes beside SHARED_ARTIFACTS, by artifact name.
    family_artifacts: ClassVar[dict[str, str]]

    user_ids: npt.NDArray[np.int64]
    item_ids: npt.NDArray[np.int64]
    rated_indptr: npt.NDArray[np.int64]
    rated_indices: npt.NDArray[np.int32]
    popular_items: npt.NDArray[np.int32]
    popular_scores: npt.NDArray[np.float32]
    rated_values: npt.NDArray[np.float32] | None = None
    rated_at_ms: npt.NDArray[np.int64] | None = None
    _user_index: dict[int, int] = field(init=False, repr=False)
    _item_index: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n_rated = self.rated_indices.shape[0]
        if self.rated_values is None:
            self.rated_values = np.ones(n_rated, dtype=np.float32)
        if self.rated_at_ms is None:
            self.rated_at_ms = np.zeros(n_rated, dtype=np.int64)
        if not (self.rated_values.shape[0] == self.rated_at_ms.shape[0] == n_rated):
            raise ValueError("rated_values and rated_at_ms must have one entry per rated item")
        self._user_index = {int(u): i for i, u in enumerate(self.user_ids)}
        self._item_index = {int(m): j for j, m in enumerate(self.item_ids)}

    # What a family supplies -------------------------------------------------------

    @property
    @abstractmethod
    def can_fold_in(self) -> bool:
        """Whether ratings the model has not seen move this user's scores."""

    @abstractmethod
    def _trained_scores(self, user_index: int) -> npt.NDArray[np.float32]:
        """Scores of every item for a known user, from what the model was trained on."""

    @abstractmethod
    def _history_scores(
        self, items: npt.NDArray[np.int32], values: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Scores of every item for a user who rated `items` with `values` (fold-in)."""

    @abstractmethod
    def _batch_scores(self, user_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """(users, items) scores for many known users at once."""

    @abstractmethod
    def _similarity(self, item_index: int) -> npt.NDArray[np.float32]:
        """How close every item is to one item, as this family sees it."""

    @abstractmethod
    def _contributions(
        self,
        items: npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        targets: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        """(targets, items): how much each rated item adds to each target's score."""

    @abstractmethod
    def _family_arrays(self) -> dict[str, dict[str, Any] | npt.NDArray[Any]]:
        """This family's artifacts by name: an array (.npy) or a dict of arrays (.npz)."""

    # Shared behaviour --------------------------------------------------------------

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

    def item_index(self, movie_id: int) -> int | None:
        return self._item_index.get(movie_id)

    def rated_movie_ids(self, user_id: int) -> npt.NDArray[np.int64]:
        index = self._user_index.get(user_id)
        if index is None:
            return np.empty(0, dtype=np.int64)
        return self.item_ids[self._rated_of(index)]

    def _rated_slice(self, user_index: int) -> slice:
        return slice(int(self.rated_indptr[user_index]), int(self.rated_indptr[user_index + 1]))

    def _rated_history(self, user_index: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """(item indices, ratings) the model was trained on for this user (views, no copy)."""
        span = self._rated_slice(user_index)
        assert self.rated_values is not None  # set in __post_init__
        return self.rated_indices[span], self.rated_values[span]

    def _rated_of(self, user_index: int) -> npt.NDArray[np.int32]:
        return self.rated_indices[self._rated_slice(user_index)]

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
        self,
        user_id: int,
        *,
        k: int,
        online: Mapping[int, float] | None = None,
        candidates: npt.NDArray[np.bool_] | None = None,
    ) -> Recommendations:
        """The top-k movies a user has not rated.

        `online` maps movie ids to ratings the model has not seen (newer than any it
        has for them). With them the user's scores are computed again (fold-in);
        without any usable rating the user gets the most popular movies they have not
        rated. `candidates` (one flag per item index) restricts what may come back,
        before the top-k cut, so k items still come back when enough pass.
        """
        index = self._user_index.get(user_id)
        online_items = self._known_items(online)
        if not online_items:
            if index is None:
                # Online ratings only of movies outside the catalogue: nothing to exclude.
                return self._popular(k=k, exclude=np.empty(0, dtype=np.int32), candidates=candidates)
            return self._best_trained(index, k, candidates)
        items, values = self._ratings_with(index, online_items)
        if not self.can_fold_in:
            # An old model: exclude what the user rated, but the scores cannot move.
            if index is None:
                return self._popular(k=k, exclude=items, candidates=candidates)
            return self._top(self._trained_scores(index), items, k, candidates, "model")
        return self._best_of_history(items, values, k, candidates, "fold-in")

    def _best_trained(
        self, user_index: int, k: int, candidates: npt.NDArray[np.bool_] | None
    ) -> Recommendations:
        """A trained user's top k from the model alone, their rated movies left out."""
        return self._top(self._trained_scores(user_index), self._rated_of(user_index), k, candidates, "model")

    def _best_of_history(
        self,
        items: npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        k: int,
        candidates: npt.NDArray[np.bool_] | None,
        strategy: Strategy,
    ) -> Recommendations:
        """The top k scored from these ratings, the rated movies left out (fold-in)."""
        return self._top(self._history_scores(items, values), items, k, candidates, strategy)

    def _top(
        self,
        scores: npt.NDArray[np.floating],
        exclude: npt.NDArray[np.int32],
        k: int,
        candidates: npt.NDArray[np.bool_] | None,
        strategy: Strategy,
    ) -> Recommendations:
        top = top_k_excluding(scores, exclude=exclude, k=k, candidates=candidates)
        return Recommendations(self.item_ids[top], scores[top].astype(np.float32), strategy)

    def explain(
        self, user_id: int, movie_ids: npt.NDArray[np.int64], online: Mapping[int, float] | None = None
    ) -> dict[int, Explanation]:
        """For each movie, the user's rated movie that adds most to its score.

        Movies the model does not know, or a user with no usable ratings, get none.
        """
        items, values = self._ratings_with(self._user_index.get(user_id), self._known_items(online))
        targets = np.fromiter(
            (self._item_index.get(int(m), -1) for m in movie_ids), dtype=np.int64, count=len(movie_ids)
        )
        known = targets >= 0
        if items.size == 0 or not known.any():
            return {}
        weights = self._contributions(items, values, targets[known])
        best = np.argmax(weights, axis=1)
        return {
            int(movie_id): Explanation(int(self.item_ids[items[column]]), float(row[column]))
            for movie_id, row, column in zip(np.asarray(movie_ids)[known], weights, best, strict=True)
        }

    def _known_items(self, online: Mapping[int, float] | None) -> dict[int, float]:
        """Online ratings by item index; movies the model does not know are dropped."""
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
            items, values = self._rated_history(user_index)
            merged = dict(zip(items.tolist(), values.tolist(), strict=True))
        merged.update(online_items)
        items = np.fromiter(merged.keys(), dtype=np.int32, count=len(merged))
        values = np.fromiter(merged.values(), dtype=np.float32, count=len(merged))
        return items, values

    def _popular(
        self, *, k: int, exclude: npt.NDArray[np.int32], candidates: npt.NDArray[np.bool_] | None = None
    ) -> Recommendations:
        keep = np.ones(self.popular_items.shape[0], dtype=bool)
        if exclude.size:
            keep &= ~np.isin(self.popular_items, exclude)
        if candidates is not None:
            keep &= candidates[self.popular_items]
        items, scores = self.popular_items[keep][:k], self.popular_scores[keep][:k]
        return Recommendations(self.item_ids[items], scores, "popular")

    def recommend_indices(
        self, user_indices: npt.NDArray[np.int64], *, k: int, exclude: list[npt.NDArray[np.int32]]
    ) -> npt.NDArray[np.int64]:
        """Top-k item indices for many users at once (evaluation and cache warm-up)."""
        scores = self._batch_scores(user_indices)
        for row, seen in enumerate(exclude):
            scores[row, seen] = -np.inf
        return top_k_rows(scores, k=k)

    def similar(self, movie_id: int, *, k: int) -> Recommendations:
        """The movies closest to one movie, as this family sees it."""
        index = self._item_index[movie_id]
        scores = self._similarity(index)
        top = top_k_excluding(scores, exclude=np.array([index], dtype=np.int32), k=k)
        return Recommendations(self.item_ids[top], scores[top].astype(np.float32), "model")

    def save(self, directory: Path) -> dict[str, Path]:
        """Write the artifacts as .npy/.npz files; return them by artifact name."""
        directory.mkdir(parents=True, exist_ok=True)
        assert self.rated_values is not None and self.rated_at_ms is not None  # set in __post_init__
        arrays: dict[str, dict[str, Any] | npt.NDArray[Any]] = {
            "id_maps": {"user_ids": self.user_ids, "item_ids": self.item_ids},
            "rated_items": {
                "indptr": self.rated_indptr,
                "indices": self.rated_indices,
                "values": self.rated_values,
                "rated_at_ms": self.rated_at_ms,
            },
            "popularity": {"items": self.popular_items, "scores": self.popular_scores},
        }
        arrays.update(self._family_arrays())
        files = SHARED_ARTIFACTS | self.family_artifacts
        paths = {}
        for name, value in arrays.items():
            paths[name] = directory / files[name]
            if isinstance(value, dict):
                np.savez(paths[name], **value)
            else:
                np.save(paths[name], value)
        return paths

    @staticmethod
    def _shared_fields(paths: Mapping[str, str | Path]) -> dict[str, Any]:
        """The constructor arguments every family reads from SHARED_ARTIFACTS.

        Every load says allow_pickle=False (numpy's default, restated because these
        files come from the registry: an object array must not be unpickled).
        """
        id_maps = np.load(paths["id_maps"], allow_pickle=False)
        rated = np.load(paths["rated_items"], allow_pickle=False)
        popularity = np.load(paths["popularity"], allow_pickle=False)
        return {
            "user_ids": id_maps["user_ids"],
            "item_ids": id_maps["item_ids"],
            "rated_indptr": rated["indptr"],
            "rated_indices": rated["indices"],
            "popular_items": popularity["items"],
            "popular_scores": popularity["scores"],
            "rated_values": rated.get("values"),
            "rated_at_ms": rated.get("rated_at_ms"),
        }


@dataclass(kw_only=True)
class FactorRecommender(Recommender):
    """Scores from user and item factors (ALS, and popularity as a rank-1 model).

    `fold_in` is None for a model that cannot fold in (the popularity baseline,
    models logged before it existed).
    """

    family: ClassVar[str] = "factors"
    family_artifacts: ClassVar[dict[str, str]] = FACTOR_ARTIFACTS

    user_factors: npt.NDArray[np.float32]
    item_factors: npt.NDArray[np.float32]
    fold_in: FoldInSolver | None = None
    _item_norms: npt.NDArray[np.float32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.user_factors.shape[0] != self.user_ids.shape[0]:
            raise ValueError("user_factors and user_ids disagree on the number of users")
        if self.item_factors.shape[0] != self.item_ids.shape[0]:
            raise ValueError("item_factors and item_ids disagree on the number of items")
        super().__post_init__()
        norms = np.linalg.norm(self.item_factors, axis=1)
        self._item_norms = np.where(norms > 0, norms, 1.0).astype(np.float32)

    @property
    def can_fold_in(self) -> bool:
        return self.fold_in is not None

    def _trained_scores(self, user_index: int) -> npt.NDArray[np.float32]:
        return self.item_factors @ self.user_factors[user_index]

    def _history_scores(
        self, items: npt.NDArray[np.int32], values: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        assert self.fold_in is not None  # recommend() checks can_fold_in first
        return self.item_factors @ self.fold_in.user_vector(self.item_factors[items], values)

    def _batch_scores(self, user_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return self.user_factors[user_indices] @ self.item_factors.T

    def _similarity(self, item_index: int) -> npt.NDArray[np.float32]:
        """Cosine similarity of item factors."""
        vector = self.item_factors[item_index]
        return (self.item_factors @ vector) / (self._item_norms * self._item_norms[item_index])

    def _contributions(
        self,
        items: npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        targets: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        # A factor score does not split into per-item terms; the cosine of each rated
        # movie's factors with the target's is the "because you rated X" signal.
        rated = self.item_factors[items] / self._item_norms[items, np.newaxis]
        target = self.item_factors[targets] / self._item_norms[targets, np.newaxis]
        return target @ rated.T

    def fold_in_vector(
        self, user_id: int, online: Mapping[int, float] | None = None
    ) -> npt.NDArray[np.float32]:
        """The user's vector solved from their training ratings and `online` ones."""
        if self.fold_in is None:
            raise ValueError("this model carries no fold-in parameters")
        items, values = self._ratings_with(self._user_index.get(user_id), self._known_items(online))
        return self.fold_in.user_vector(self.item_factors[items], values)

    def _family_arrays(self) -> dict[str, dict[str, Any] | npt.NDArray[Any]]:
        arrays: dict[str, dict[str, Any] | npt.NDArray[Any]] = {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
        }
        if self.fold_in is not None:
            arrays["fold_in"] = self.fold_in.as_arrays()
        return arrays

    @classmethod
    def load(cls, paths: Mapping[str, str | Path]) -> FactorRecommender:
        """Read the artifacts written by `save` (by artifact name, as MLflow hands them)."""
        fold_in = (
            FoldInSolver.from_arrays(dict(np.load(paths["fold_in"], allow_pickle=False)))
            if "fold_in" in paths
            else None
        )
        top_k.warm_up()
        return cls(
            **cls._shared_fields(paths),
            user_factors=np.load(paths["user_factors"], allow_pickle=False),
            item_factors=np.load(paths["item_factors"], allow_pickle=False),
            fold_in=fold_in,
        )


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
