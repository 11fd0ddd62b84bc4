"""Movie metadata on the request path: the database behind a circuit breaker.

Every lookup of the API goes through here, so a database that is down costs each
request at most one fast failure, never its connect timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from filmrec.metadata.store import MovieInfo, MoviePage, MovieStore
from filmrec.serving import metrics
from filmrec.serving.breaker import CircuitBreaker, CircuitOpenError

log = logging.getLogger(__name__)

T = TypeVar("T")


class MetadataUnavailableError(RuntimeError):
    """The metadata database did not answer (or its breaker is open)."""


class MovieLookup:
    def __init__(self, store: MovieStore, *, retry_after_seconds: float = 2.0) -> None:
        self.store = store
        self.breaker = CircuitBreaker("database", retry_after_seconds=retry_after_seconds)

    def get(self, movie_id: int) -> MovieInfo | None:
        """One movie, None if unknown; raises MetadataUnavailableError when the database is down."""
        return self._required(lambda: self.store.get(movie_id))

    def search(self, query: str, *, genre: str | None, limit: int, offset: int) -> MoviePage:
        """A page of title matches; raises MetadataUnavailableError when the database is down."""
        return self._required(lambda: self.store.search(query, genre=genre, limit=limit, offset=offset))

    def genres(self) -> list[str]:
        return self._required(self.store.genres)

    def _required(self, read: Callable[[], T]) -> T:
        """`read` through the breaker, for answers that are worthless without the database."""
        try:
            return self.breaker.call(read)
        except Exception as error:
            self._down(error)
            raise MetadataUnavailableError(
                f"movie metadata is unavailable: {type(error).__name__}"
            ) from error

    def get_many(self, movie_ids: Sequence[int]) -> Mapping[int, MovieInfo] | None:
        """Titles for `movie_ids`; None when the database is down (no titles beats no answer)."""
        try:
            return self.breaker.call(lambda: self.store.get_many(movie_ids))
        except Exception as error:
            self._down(error)
            return None

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
