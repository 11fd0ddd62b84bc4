"""What one API process holds: settings, the model, the metadata store, the cache."""

from __future__ import annotations

from dataclasses import dataclass

from filmrec.config import Settings
from filmrec.metadata.store import MovieStore
from filmrec.serving.cache import RecommendationCache
from filmrec.serving.model_holder import ChampionLoader, ModelHolder


@dataclass
class AppState:
    settings: Settings
    holder: ModelHolder
    loader: ChampionLoader
    movies: MovieStore
    cache: RecommendationCache
