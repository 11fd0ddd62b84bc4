"""Movie metadata on the request path: the database behind a circuit breaker.

Every lookup of the API goes through here, so a database that is down costs each
request at most one fast failure, never its connect timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from filmrec.metadata.store import MovieInfo, MoviePage, MovieStore
from filmrec.serving import metrics
from filmrec.serving.breaker import CircuitBreaker, CircuitOpenError

log = logging.getLogger(__name__)

T = TypeVar("T")

# The id sets of filtered recommendations, per (genre, year_min, year_max). Not keyed by
# a metadata version: reading one is itself a query per request, which is what the
# cache saves. The catalogue changes when the sync runs (daily), so a few minutes of
# staleness is invisible; a filter is a handful of distinct values, so few entries.
FILTER_CACHE_SECONDS = 300.0
FILTER_CACHE_ENTRIES = 256
FilterKey = tuple[str | None, int | None, int | None]

# The four columns of every movie, held in memory for the titles of computed lists:
# a list's titles are then dict lookups, not a query, so a computed answer needs no
# I/O at all and is computed on the event loop (serving/recommendations.py). Read
# again as often as the filter sets, for the same reason. A catalogue above the bound
# is not held (~300 bytes a movie): its lists' titles are queried per list.
LISTING_SECONDS = FILTER_CACHE_SECONDS
LISTING_MAX_MOVIES = 250_000


class MetadataUnavailableError(RuntimeError):
    """The metadata database did not answer (or its breaker is open)."""


def is_database_fault(error: Exception) -> bool:
    """Whether `error` says the database is unwell, rather than that a value was refused.

    A refused value (SQLSTATE class 22, data exception: a NUL in a string, a number out
    of range; or the driver refusing to send it) is the input's fault: it neither opens
    the breaker nor answers 503. Every other error counts, the unknown ones included.
    """
    from sqlalchemy import exc

    if isinstance(error, exc.DataError):
        return False
    if isinstance(error, exc.StatementError) and isinstance(error.orig, ValueError | TypeError):
        return False  # raised by the driver before anything was sent
    return not isinstance(error, ValueError | TypeError)


class MovieLookup:
    def __init__(self, store: MovieStore, *, retry_after_seconds: float = 2.0) -> None:
        self.store = store
        self.breaker = CircuitBreaker(
            "database", retry_after_seconds=retry_after_seconds, is_fault=is_database_fault
        )
        self._matching: OrderedDict[FilterKey, tuple[float, npt.NDArray[np.int64]]] = OrderedDict()
        self._matching_lock = threading.Lock()
        self._listing: Mapping[int, MovieInfo] | None = None
        self._listing_until = 0.0  # time.monotonic(); 0: never read
        self._listing_lock = threading.Lock()

    def get(self, movie_id: int) -> MovieInfo | None:
        """One movie, None if unknown; raises MetadataUnavailableError when the database is down."""
        return self._required(lambda: self.store.get(movie_id))

    def search(self, query: str, *, genre: str | None, limit: int, offset: int) -> MoviePage:
        """A page of title matches; raises MetadataUnavailableError when the database is down."""
        return self._required(lambda: self.store.search(query, genre=genre, limit=limit, offset=offset))

    def genres(self) -> list[str]:
        return self._required(self.store.genres)

    def movie_ids_matching(
        self, *, genre: str | None, year_min: int | None, year_max: int | None
    ) -> npt.NDArray[np.int64]:
        """Sorted ids of the movies passing the filters, from a short-lived cache or one query.

        Raises MetadataUnavailableError when the database is down and the set is not
        cached: without it a filter cannot be applied, and ignoring it would be wrong.
        """
        # Genres match case-insensitively in SQL, so "drama" and "Drama" share an entry.
        key: FilterKey = (genre.lower() if genre else None, year_min, year_max)
        now = time.monotonic()
        with self._matching_lock:
            entry = self._matching.get(key)
            if entry is not None and entry[0] > now:
                self._matching.move_to_end(key)
                return entry[1]
        ids = self._required(
            lambda: self.store.movie_ids_matching(genre=genre, year_min=year_min, year_max=year_max)
        )
        matching = np.unique(np.asarray(ids, dtype=np.int64))
        # Read-only: one array is shared by every request with these filters.
        matching.flags.writeable = False
        with self._matching_lock:
            self._matching[key] = (now + FILTER_CACHE_SECONDS, matching)
            self._matching.move_to_end(key)
            while len(self._matching) > FILTER_CACHE_ENTRIES:
                self._matching.popitem(last=False)
        return matching

    def _required(self, read: Callable[[], T]) -> T:
        """`read` through the breaker, for answers that are worthless without the database.

        An error the input caused (is_database_fault) is no outage: it is raised as it is.
        """
        try:
            return self.breaker.call(read)
        except Exception as error:
            if not is_database_fault(error):
                raise
            self._down(error)
            raise MetadataUnavailableError(
                f"movie metadata is unavailable: {type(error).__name__}"
            ) from error

    @property
    def listing_is_fresh(self) -> bool:
        """Whether held_titles answers: the listing is in memory and young enough."""
        return self._listing is not None and self._listing_until > time.monotonic()

    def held_titles(self, movie_ids: Sequence[int]) -> Mapping[int, MovieInfo] | None:
        """Titles for `movie_ids` from the in-memory listing while it is fresh, without
        I/O; None when only the database can say."""
        listing = self._listing
        if listing is None or not self.listing_is_fresh:
            return None
        return _titles_in(listing, movie_ids)

    def get_many(self, movie_ids: Sequence[int]) -> Mapping[int, MovieInfo] | None:
        """Titles for `movie_ids`: the listing (read again when stale), else a query; with
        the database down, what an older listing holds, else None (no titles beats no answer)."""
        held = self.held_titles(movie_ids)
        if held is None:
            self.refresh_listing()
            held = self.held_titles(movie_ids)
        if held is not None:
            return held
        try:
            return self.breaker.call(lambda: self.store.get_many(movie_ids))
        except Exception as error:
            self._down(error)
            stale = self._listing
            return None if stale is None else _titles_in(stale, movie_ids)

    def refresh_listing(self) -> None:
        """Read every movie's titles into memory, unless another thread just did (a query:
        call it off the event loop). On a database error the older listing is kept."""
        with self._listing_lock:
            if self._listing_until > time.monotonic():
                return
            try:
                listing = self.breaker.call(lambda: self.store.listing(limit=LISTING_MAX_MOVIES))
            except Exception as error:
                self._down(error)
                return
            # None for a catalogue above the bound: lists' titles are then queried.
            self._listing = listing
            self._listing_until = time.monotonic() + LISTING_SECONDS

    def ping(self) -> None:
        # A direct ping, not through the breaker: /ready reports the truth, and a good
        # answer lets requests use the database again before the breaker's window ends.
        try:
            self.store.ping()
        except Exception as error:
            self.breaker.record_failure(error)
            raise
        self.breaker.record_success()

    @staticmethod
    def _down(error: Exception) -> None:
        metrics.DEPENDENCY_UP.labels(dependency="database").set(0)
        if not isinstance(error, CircuitOpenError):  # logged once, when the breaker opened
            log.warning("movie metadata unavailable: %s", error)


def _titles_in(listing: Mapping[int, MovieInfo], movie_ids: Sequence[int]) -> dict[int, MovieInfo]:
    """The listed movies among `movie_ids` (unknown ids left out, as a query would)."""
    return {movie_id: listing[movie_id] for movie_id in movie_ids if movie_id in listing}
