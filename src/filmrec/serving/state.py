"""What one API process holds: settings, the model, the metadata store, the cache,
and the real-time loop (online state, its consumer, the visibility tracker)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from filmrec.config import Settings
from filmrec.metadata.store import MovieStore
from filmrec.serving import metrics
from filmrec.serving.breaker import CircuitBreaker
from filmrec.serving.cache import RecommendationCache
from filmrec.serving.model_holder import ChampionLoader, ModelHolder
from filmrec.serving.online_state import OnlineStateStore, VisibilityTracker
from filmrec.serving.rating_stream import RatingStreamConsumer

if TYPE_CHECKING:
    from filmrec.streaming.producer import RatingPublisher


@dataclass
class AppState:
    settings: Settings
    holder: ModelHolder
    loader: ChampionLoader
    movies: MovieStore
    cache: RecommendationCache
    # Ratings the served model lacks; None when ONLINE_STATE_ENABLED is false.
    online: OnlineStateStore | None = None
    # Reads the ratings topic into `online`; None without Kafka.
    rating_stream: RatingStreamConsumer | None = None
    visibility: VisibilityTracker = field(
        default_factory=lambda: VisibilityTracker(metrics.EVENT_VISIBILITY.observe)
    )
    # Metadata lookups on the request path: a dead database must not cost every
    # request its connect timeout.
    db_breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker("database"))
    # One worker: deployment records and cache warm-ups run in order, off the request path.
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="filmrec-bg")
    )
    # Bounds the threads scoring requests (SCORING_THREADS); made in the lifespan,
    # inside the event loop. None: FastAPI's default thread pool.
    scoring_limiter: anyio.CapacityLimiter | None = None
    # Built on first use by /ready, and only when KAFKA_BOOTSTRAP_SERVERS is set.
    kafka_admin: object | None = None
    # Built on the first POST /ratings, and only when KAFKA_BOOTSTRAP_SERVERS is set.
    rating_publisher: RatingPublisher | None = None
