"""What one API process holds, built once in the lifespan (serving/app.py).

Routes never see this container: each gets the narrow piece it needs through
serving/deps.py. It exists for the process's own lifecycle (start-up, the model
swap hook, shutdown).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from filmrec.config import Settings
from filmrec.serving.cache import RecommendationCache
from filmrec.serving.health_checks import ReadinessProbe
from filmrec.serving.model_holder import ChampionLoader, ModelHolder
from filmrec.serving.movie_lookup import MovieLookup
from filmrec.serving.online_state import OnlineStateStore, VisibilityTracker
from filmrec.serving.rating_intake import RatingIntake
from filmrec.serving.rating_stream import RatingStreamConsumer
from filmrec.serving.recommendations import RecommendationService


@dataclass
class AppState:
    settings: Settings
    holder: ModelHolder
    loader: ChampionLoader
    movies: MovieLookup
    cache: RecommendationCache
    # Ratings the served model lacks; None when ONLINE_STATE_ENABLED is false.
    online: OnlineStateStore | None
    visibility: VisibilityTracker
    # Reads the ratings topic into `online`; None without Kafka.
    rating_stream: RatingStreamConsumer | None
    recommendations: RecommendationService
    intake: RatingIntake
    readiness: ReadinessProbe
    # One worker: deployment records and cache warm-ups run in order, off the request path.
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="filmrec-bg")
    )
