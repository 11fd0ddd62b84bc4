"""The model a request is served with: the numpy recommender and what the registry says of it.

Its own module: the metrics, the holder and every route need the type, and none of
them should import another to get it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from filmrec.model.recommender import Recommender


@dataclass(frozen=True)
class LoadedModel:
    recommender: Recommender
    name: str
    version: str
    run_id: str | None
    metrics: dict[str, float]
    created_at: datetime | None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The model family the search chose (the version's `model_family` tag: als, ease).
    family: str | None = None
