"""Turning model output into responses: online state, cache, the model, then titles.

The user's online state (ratings the model lacks) comes first: its version is part
of the cache key, and its ratings are folded in when scoring. Every dependency on
this path degrades instead of failing: an online state or cache error means
computing from the model alone, a database error means items without titles. The
one exception is a genre or year filter: it needs the database to say which movies
pass, and a list that ignored it would be wrong, so it fails (503) instead.

Filtered and explained lists are cached like plain ones, under their own keys: a
page that switches between a few filters gets cache hits, and the online state
version in the key still retires them at the user's next rating.

/recommendations answers are JSON bytes (orjson), serialised once when a list is
computed: the caches store the body a hit returns, and a hit returns it as stored.
When the user's state version is known without I/O (the online state in this process,
or in Redis with this process's mirror of the versions in sync: serving/online_versions.py)
so is the cache key, and a hit in the small LRU (serving/hit_cache.py) is answered on
the event loop, no thread hop; for the common request shape, before FastAPI's routing
(serving/hit_fast_path.py, through answer_on_loop: one key, one way of counting a hit).
A user with no online state needs no Redis read at all, so a miss may be computed on
the loop too (computes_on_loop). With the shared cache in
this process too (no REDIS_URL), an LRU entry that aged out is refilled from it on the
loop as well: a thread hop per refill put a tail on the hits' latency.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio.to_thread
import numpy as np
import numpy.typing as npt
import orjson

from filmrec.metadata.store import MovieInfo
from filmrec.model.recommender import Explanation, Recommendations, Recommender
from filmrec.serving import metrics
from filmrec.serving.cache import InProcessCache, NullCache, RecommendationCache, recommendation_key
from filmrec.serving.hit_cache import HitCache
from filmrec.serving.loaded_model import LoadedModel
from filmrec.serving.movie_lookup import MovieLookup
from filmrec.serving.online_state import EMPTY_STATE, OnlineStateStore, UserOnlineState, VisibilityTracker

log = logging.getLogger(__name__)

# The most movie ids one request may exclude: the route's bound, stated in the document.
MAX_EXCLUDED = 100


@dataclass(frozen=True)
class RecommendationFilters:
    """What a list may contain beyond "not rated yet": a genre, a year range, no excluded ids."""

    genre: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    exclude: tuple[int, ...] = ()

    @property
    def by_metadata(self) -> bool:
        """Whether the metadata database must say which movies pass."""
        return bool(self.genre) or self.year_min is not None or self.year_max is not None

    @property
    def active(self) -> bool:
        return self.by_metadata or bool(self.exclude)

    def cache_variant(self, *, explain: bool) -> str:
        """This request's part of the cache key; "" for the plain list (the warm-up's key).

        The filters are hashed: a genre is free text and exclude up to 100 ids, and a
        key should stay short and free of the separators the other parts use.
        """
        parts = []
        if self.active:
            canonical = repr(
                (
                    self.genre.lower() if self.genre else None,  # genres match in any case
                    self.year_min,
                    self.year_max,
                    sorted(set(self.exclude)),
                )
            )
            parts.append("f" + hashlib.sha256(canonical.encode()).hexdigest()[:16])
        if explain:
            parts.append("e")
        return ":".join(parts)


NO_FILTERS = RecommendationFilters()


def _explanation_json(reason: Explanation, info: Mapping[int, MovieInfo]) -> dict[str, Any]:
    movie = info.get(reason.because_movie_id)
    return {
        "movie_id": reason.because_movie_id,
        "title": movie.title if movie else None,
        "weight": round(float(reason.weight), 6),
    }


def _unknown_movie_fields(movie_id: int) -> dict[str, Any]:
    """What a list shows of a movie without metadata (MovieInfo.shown_fields' shape)."""
    return {"movie_id": movie_id, "title": None, "year": None, "genres": []}


def _unknown_movie_json(movie_id: int) -> bytes:
    """A movie without metadata (database down, or not synced) as MovieInfo.shown_json."""
    return orjson.dumps(_unknown_movie_fields(movie_id))[:-1]


def scored_items_json(
    info: Mapping[int, MovieInfo] | None,
    movie_ids: Sequence[int],
    scores: Sequence[float],
    reasons: Mapping[int, Explanation] | None = None,
) -> orjson.Fragment:
    """A list's items, each in schemas.ScoredMovieOut's shape, as the JSON orjson writes
    for them, from each held movie's fields serialised once (MovieInfo.shown_json): a
    list then costs its scores, not ten dicts built and serialised again (a tenth of a
    computed request). The unit tests check it byte for byte against orjson."""
    info = info or {}
    reasons = reasons or {}
    # The scores in one dump, split: each written exactly as orjson writes a float.
    score_texts = orjson.dumps([round(score, 6) for score in scores])[1:-1].split(b",") if scores else []
    items = []
    for movie_id, score in zip(movie_ids, score_texts, strict=True):
        movie = info.get(movie_id)
        shown = movie.shown_json if movie else _unknown_movie_json(movie_id)
        reason = reasons.get(movie_id)
        because = b"" if reason is None else b',"because":' + orjson.dumps(_explanation_json(reason, info))
        items.append(shown + b',"score":' + score + because + b"}")
    return orjson.Fragment(b"[" + b",".join(items) + b"]")


def recommendations_payload(
    model: LoadedModel,
    recs: Recommendations,
    info: Mapping[int, MovieInfo] | None,
    *,
    user_id: int,
    k: int,
    reasons: Mapping[int, Explanation] | None = None,
) -> dict[str, Any]:
    """A computed /recommendations body as JSON values, in schemas.RecommendationsOut's
    shape and field order (the route's response_model documents it).

    Plain values, not the pydantic model: building and dumping ten ScoredMovieOut took
    a fifth of a computed request, and every value here is typed at its source; the
    items are already JSON (scored_items_json), which orjson writes in place. The unit
    tests validate these bodies against the schema."""
    return {
        "user_id": user_id,
        "k": k,
        "strategy": recs.strategy,
        "source": "model",
        "model_version": model.version,
        "items": scored_items_json(info, recs.movie_ids.tolist(), recs.scores.tolist(), reasons),
    }


def response_body(payload: dict[str, Any]) -> bytes:
    """A computed list's body as the route returns it."""
    return orjson.dumps(payload)


def cached_body(payload: dict[str, Any]) -> bytes:
    """The body a cache hit returns: the computed one, except that it says `source: cache`
    (same field order: the key is replaced in place)."""
    return orjson.dumps(payload | {"source": "cache"})


def candidate_mask(
    recommender: Recommender,
    filters: RecommendationFilters,
    allowed: npt.NDArray[np.int64] | None,
) -> npt.NDArray[np.bool_] | None:
    """One flag per item index of the model (item_ids order): may it be recommended?

    `allowed` is the sorted id set the genre/year filters let through (None: no such
    filter). None back when nothing is filtered, so the plain path pays nothing.
    """
    if not filters.active:
        return None
    item_ids = recommender.item_ids
    if allowed is None:
        mask = np.ones(item_ids.shape[0], dtype=bool)
    else:
        # Both sides hold each id once (the model's ids, np.unique's output).
        mask = np.isin(item_ids, allowed, assume_unique=True)
    if filters.exclude:
        mask &= ~np.isin(item_ids, np.asarray(filters.exclude, dtype=np.int64))
    return mask


@dataclass(frozen=True)
class LoopLook:
    """What the event loop knew of the user's state: its version (the key a held body
    was looked for under) and the state itself when known without I/O (else None: the
    thread path reads it from Redis)."""

    version: int
    state: UserOnlineState | None = None


@dataclass(frozen=True)
class _Scored:
    recs: Recommendations
    key: str
    reasons: Mapping[int, Explanation] = field(default_factory=dict)


class RecommendationService:
    """What /recommendations and /movies/{id}/similar need, and nothing else.

    Scoring and the cache/online-state reads run on the few scoring threads
    (`limiter`, SCORING_THREADS): they hold the GIL or wait briefly on Redis (its own
    short timeout and retry pause). Title lookups wait on the database, so they run
    on the shared thread pool: a slow database must not hold the scoring threads,
    and with them every cache hit.
    """

    def __init__(
        self,
        *,
        cache: RecommendationCache,
        movies: MovieLookup,
        online: OnlineStateStore | None,
        visibility: VisibilityTracker,
        cache_ttl_seconds: int,
        limiter: anyio.CapacityLimiter | None = None,
        hit_cache: HitCache | None = None,
    ) -> None:
        self.cache = cache
        self.hit_cache = hit_cache
        # CACHE_ENABLED=false: no layer would store a list, so none is serialised for one.
        self._cache_is_off = isinstance(cache, NullCache)
        self._stores_lists = hit_cache is not None or not self._cache_is_off
        # The in-process online state is a dict lookup: safe on the event loop. Redis's
        # is a network round trip: only its version is known on the loop (loop_version).
        self._state_in_process = online is None or online.name == "in-process"
        # The same for the shared cache: the in-process one (no REDIS_URL) is looked in on
        # the loop too, so an LRU entry that aged out is refilled without a thread hop.
        self._cache_is_local = cache.name == InProcessCache.name
        self.movies = movies
        self.online = online
        self.visibility = visibility
        self.cache_ttl_seconds = cache_ttl_seconds
        self.limiter = limiter

    # -- the cache -------------------------------------------------------------------
    @staticmethod
    def _cache_failed(error: Exception, operation: str) -> None:
        metrics.labelled(metrics.CACHE_REQUESTS, "error").inc()
        metrics.labelled(metrics.DEPENDENCY_UP, "cache").set(0)
        log.debug("cache %s failed: %s", operation, error)

    def _cache_get(self, key: str, *, count_miss: bool = True) -> bytes | None:
        try:
            value = self.cache.get(key)
        except Exception as error:  # a cache outage degrades to computing, never to a 500
            self._cache_failed(error, "get")
            return None
        if value is not None or count_miss:
            metrics.labelled(metrics.CACHE_REQUESTS, "hit" if value is not None else "miss").inc()
        # Set on success too, so the gauge shows the cache back without waiting for /ready.
        metrics.labelled(metrics.DEPENDENCY_UP, "cache").set(1)
        return value

    def _cache_set(self, key: str, value: bytes) -> None:
        if self.hit_cache is not None:
            self.hit_cache.put(key, value)
        try:
            self.cache.set(key, value, ttl_seconds=self.cache_ttl_seconds)
        except Exception as error:
            self._cache_failed(error, "set")

    def _hit(self, key: str, *, count_miss: bool = True) -> bytes | None:
        """The in-process LRU: bytes already held, so no lock is held across I/O.

        `count_miss=False` for a look whose miss goes on to the full path, which looks
        again and counts it: one request, one counted lookup."""
        if self.hit_cache is None:
            return None
        body = self.hit_cache.get(key)
        if body is None:
            if count_miss:
                metrics.labelled(metrics.HIT_CACHE_REQUESTS, "miss").inc()
            return None
        metrics.labelled(metrics.HIT_CACHE_REQUESTS, "hit").inc()
        # A hit of the caches as a whole: the hit ratio on the dashboard counts it.
        metrics.labelled(metrics.CACHE_REQUESTS, "hit").inc()
        return body

    def _held(self, key: str, *, count_miss: bool) -> bytes | None:
        """The body this process holds for `key`, without I/O: the LRU, then the shared
        cache when it is the in-process one (which then fills the LRU). With
        `count_miss=False` a miss of both is not counted (see _hit); a miss of the LRU
        that the shared cache answers is, as on the full path."""
        body = self._hit(key, count_miss=count_miss)
        if body is not None or not self._cache_is_local:
            return body
        body = self._cache_get(key, count_miss=count_miss)
        if body is None:
            return None
        if not count_miss:
            metrics.labelled(metrics.HIT_CACHE_REQUESTS, "miss").inc()
        if self.hit_cache is not None:
            self.hit_cache.put(key, body)
        return body

    def _cached(self, key: str, *, held_checked: bool = False) -> bytes | None:
        """The cached body, from the LRU or else the shared cache (which then fills the LRU).

        `held_checked`: answer_on_loop has looked in what this process holds already (the
        LRU, and an in-process shared cache), so only a shared cache elsewhere is left.
        The key carries the value format (cache.KEY_PREFIX), so what is stored under
        it is this code's body: returned without decoding it."""
        body = None if held_checked else self._hit(key)
        # CACHE_ENABLED=false: the null cache only misses; a lookup would count one per request.
        if body is None and not (held_checked and self._cache_is_local) and not self._cache_is_off:
            body = self._cache_get(key)
            if body is not None and self.hit_cache is not None:
                self.hit_cache.put(key, body)
        if body is not None:
            metrics.labelled(metrics.RECOMMENDATIONS_SERVED, "cache").inc()
        return body

    # -- the online state ------------------------------------------------------------
    def online_state(self, user_id: int) -> UserOnlineState:
        """The user's ratings the model lacks; none when the state is off or unreachable."""
        if self.online is None:
            return EMPTY_STATE
        try:
            return self.online.get(user_id)
        except Exception as error:  # degrade to the model alone: stale for this user, not down
            metrics.labelled(metrics.DEPENDENCY_UP, "online_state").set(0)
            log.debug("online state unavailable: %s", error)
            return EMPTY_STATE

    def loop_version(self, user_id: int) -> int | None:
        """The user's state version known without I/O; None: only a Redis read knows it."""
        return 0 if self.online is None else self.online.local_version(user_id)

    def _loop_look(self, user_id: int) -> LoopLook | None:
        """What the loop knows of the user's state without I/O; None: nothing."""
        if self._state_in_process:  # the whole state is a dict lookup
            user_state = self.online_state(user_id)
            return LoopLook(user_state.version, user_state)
        version = self.loop_version(user_id)
        if version is None:
            return None
        # Version 0: no online ratings, so the state is known to be empty, no read needed.
        return LoopLook(version, EMPTY_STATE if version == 0 else None)

    # -- the two answers -------------------------------------------------------------
    @staticmethod
    def _key(
        model: LoadedModel,
        state_version: int,
        *,
        user_id: int,
        k: int,
        filters: RecommendationFilters,
        explain: bool,
    ) -> str:
        return recommendation_key(
            model_name=model.name,
            model_version=model.version,
            user_id=user_id,
            k=k,
            state_version=state_version,
            variant=filters.cache_variant(explain=explain),
        )

    def _cached_or_scored(
        self,
        model: LoadedModel,
        *,
        user_id: int,
        k: int,
        filters: RecommendationFilters,
        allowed: npt.NDArray[np.int64] | None,
        explain: bool,
        looked: LoopLook | None = None,
    ) -> bytes | _Scored:
        state = looked.state if looked is not None else None
        user_state = state if state is not None else self.online_state(user_id)
        # The key is the version of the state read here, the one the list is scored from.
        # recommend() has missed what this process holds under looked.version, on the
        # loop: looked at again only under another version (Redis had a newer one).
        held_checked = looked is not None and looked.version == user_state.version
        if self._stores_lists:
            key = self._key(model, user_state.version, user_id=user_id, k=k, filters=filters, explain=explain)
            cached = self._cached(key, held_checked=held_checked)
        else:  # CACHE_ENABLED=false: no layer holds a list, so none is looked for or keyed
            key, cached = "", None
        self.visibility.served(user_id)
        if cached is not None:
            return cached
        online = user_state.as_online()
        recommender = model.recommender
        candidates = candidate_mask(recommender, filters, allowed)
        recs = recommender.recommend(user_id, k=k, online=online, candidates=candidates)
        metrics.labelled(metrics.RECOMMENDATIONS_SERVED, recs.strategy).inc()
        if recs.strategy == "fold-in":
            metrics.FOLD_INS.inc()
        # The same ratings the scores came from, so the reason matches the list.
        reasons = recommender.explain(user_id, recs.movie_ids, online=online) if explain else {}
        return _Scored(recs, key, reasons)

    @staticmethod
    def _title_ids(scored: _Scored) -> list[int]:
        """The list's movies, then the explained-by ones: their titles come in one lookup."""
        movie_ids = scored.recs.movie_ids.tolist()
        because = {reason.because_movie_id for reason in scored.reasons.values()} - set(movie_ids)
        return movie_ids + sorted(because)

    def _body(
        self,
        model: LoadedModel,
        scored: _Scored,
        info: Mapping[int, MovieInfo] | None,
        *,
        user_id: int,
        k: int,
    ) -> bytes:
        payload = recommendations_payload(
            model, scored.recs, info, user_id=user_id, k=k, reasons=scored.reasons
        )
        # A list without titles (database down) is served but not cached: it would
        # outlive the outage by the whole TTL.
        if info is not None and self._stores_lists:
            self._cache_set(scored.key, cached_body(payload))
        return response_body(payload)

    def _titled(self, model: LoadedModel, scored: _Scored, *, user_id: int, k: int) -> bytes:
        info = self.movies.get_many(self._title_ids(scored))
        return self._body(model, scored, info, user_id=user_id, k=k)

    def answer_on_loop(
        self,
        model: LoadedModel,
        state_version: int,
        *,
        user_id: int,
        k: int,
        filters: RecommendationFilters = NO_FILTERS,
        explain: bool = False,
        count_miss: bool = True,
    ) -> bytes | None:
        """The body this process holds for this request (_held), served as a hit is
        (counted, and seen by the visibility tracker); None on a miss. For recommend()
        and the hit fast path (serving/hit_fast_path.py), which passes `count_miss=False`:
        its miss goes on to recommend(), which looks again and counts the miss."""
        if not self._stores_lists:
            return None
        key = self._key(model, state_version, user_id=user_id, k=k, filters=filters, explain=explain)
        body = self._held(key, count_miss=count_miss)
        if body is not None:
            metrics.labelled(metrics.RECOMMENDATIONS_SERVED, "cache").inc()
            self.visibility.served(user_id)
        return body

    def computes_on_loop(self, filters: RecommendationFilters = NO_FILTERS) -> bool:
        """Whether a miss of a user whose state is known without I/O (_loop_look) can be
        computed on the event loop: the shared cache is in this process too (or off), the
        titles are in the movie listing, and no genre or year filter needs the database.
        Scoring then costs about what two thread hops would (README, Benchmarks), and
        a hop would not buy parallelism: a worker process runs one request's scoring at
        a time either way, so the hops are saved, not the loop held longer."""
        return (
            (self._cache_is_local or self._cache_is_off)
            and not filters.by_metadata
            and self.movies.listing_is_fresh
        )

    def answer_now(
        self,
        model: LoadedModel,
        user_state: UserOnlineState,
        *,
        user_id: int,
        k: int,
        filters: RecommendationFilters = NO_FILTERS,
        explain: bool = False,
    ) -> bytes | None:
        """The whole answer on the loop, held or computed, when computes_on_loop(filters):
        for recommend() and the hit fast path. None only if the listing went stale
        between that check and the titles (every few minutes at most): the caller then
        goes on with I/O, and the list is scored again there."""
        body = self.answer_on_loop(
            model, user_state.version, user_id=user_id, k=k, filters=filters, explain=explain
        )
        if body is not None:
            return body
        result = self._cached_or_scored(
            model,
            user_id=user_id,
            k=k,
            filters=filters,
            allowed=None,
            explain=explain,
            looked=LoopLook(user_state.version, user_state),
        )
        if isinstance(result, bytes):
            return result
        info = self.movies.held_titles(self._title_ids(result))
        if info is None:
            return None
        return self._body(model, result, info, user_id=user_id, k=k)

    def loop_answer(
        self,
        model: LoadedModel,
        *,
        user_id: int,
        k: int,
        filters: RecommendationFilters = NO_FILTERS,
        explain: bool = False,
        count_miss: bool = True,
    ) -> tuple[LoopLook | None, bytes | None]:
        """What the event loop can answer with no I/O, for recommend() and the hit fast
        path: (what it knew of the user's state, else None; the body, else None).

        Computed when the state is known (_loop_look) and computes_on_loop(filters); else,
        with the version known, only a body held in the LRU, where `count_miss=False`
        leaves a miss to the path that looks again (see _hit)."""
        looked = self._loop_look(user_id)
        if looked is None:  # the version itself needs Redis (its mirror not in sync)
            return None, None
        if looked.state is not None and self.computes_on_loop(filters):
            body = self.answer_now(
                model, looked.state, user_id=user_id, k=k, filters=filters, explain=explain
            )
        elif self.hit_cache is not None:
            body = self.answer_on_loop(
                model,
                looked.version,
                user_id=user_id,
                k=k,
                filters=filters,
                explain=explain,
                count_miss=count_miss,
            )
        else:
            return None, None
        return looked, body

    async def recommend(
        self,
        model: LoadedModel,
        *,
        user_id: int,
        k: int,
        filters: RecommendationFilters = NO_FILTERS,
        explain: bool = False,
    ) -> bytes:
        """The /recommendations body as JSON bytes (schemas.RecommendationsOut).

        Raises MetadataUnavailableError for a genre/year filter with the database down
        and no cached answer."""
        looked, body = self.loop_answer(model, user_id=user_id, k=k, filters=filters, explain=explain)
        if body is not None:
            return body
        allowed = None
        if filters.by_metadata:
            # A database wait: on the shared pool, like the titles, not the scoring threads.
            matching = partial(
                self.movies.movie_ids_matching,
                genre=filters.genre,
                year_min=filters.year_min,
                year_max=filters.year_max,
            )
            allowed = await anyio.to_thread.run_sync(matching)
        step = partial(
            self._cached_or_scored,
            model,
            user_id=user_id,
            k=k,
            filters=filters,
            allowed=allowed,
            explain=explain,
            looked=looked,
        )
        result = await anyio.to_thread.run_sync(step, limiter=self.limiter)
        if isinstance(result, bytes):
            return result
        titled = partial(self._titled, model, result, user_id=user_id, k=k)
        return await anyio.to_thread.run_sync(titled)

    async def similar(self, model: LoadedModel, *, movie_id: int, k: int) -> bytes:
        """Nearest movies by item factors (scoring threads), then titles (shared pool): the
        JSON body in schemas.SimilarMoviesOut's shape and field order, built as a
        computed /recommendations body is (the route's response_model documents it)."""
        score = partial(model.recommender.similar, movie_id, k=k)
        recs = await anyio.to_thread.run_sync(score, limiter=self.limiter)
        movie_ids = recs.movie_ids.tolist()
        info = await anyio.to_thread.run_sync(self.movies.get_many, movie_ids)
        payload = {
            "movie_id": movie_id,
            "k": k,
            "model_version": model.version,
            "items": scored_items_json(info, movie_ids, recs.scores.tolist()),
        }
        return orjson.dumps(payload)
