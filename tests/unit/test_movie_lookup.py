"""MovieLookup's breaker: the database's faults open it, values the database refuses do not."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import exc

from filmrec.metadata.store import MovieStore
from filmrec.serving.movie_lookup import MetadataUnavailableError, MovieLookup, is_database_fault


class _DBAPIDataError(Exception):
    """What a driver raises for a refused value (psycopg.DataError, SQLSTATE class 22)."""


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (exc.DataError("SELECT", {}, _DBAPIDataError("invalid byte sequence")), False),
        (exc.StatementError("bind", "SELECT", {}, ValueError("NUL (0x00) bytes")), False),
        (ValueError("a value refused before it was sent"), False),
        (exc.OperationalError("SELECT", {}, Exception("connection refused")), True),
        (exc.InterfaceError("SELECT", {}, Exception("connection closed")), True),
        (exc.TimeoutError("QueuePool limit reached"), True),
        (exc.ProgrammingError("SELECT", {}, Exception('relation "movies" does not exist')), True),
        (ConnectionError("reset"), True),
        (RuntimeError("anything else"), True),
    ],
)
def test_what_counts_as_a_database_fault(error: Exception, fault: bool) -> None:
    assert is_database_fault(error) is fault


class RefusingStore(MovieStore):
    """SQLite with a search that fails like PostgreSQL given a NUL, or like a dead server."""

    mode = "input"

    def search(self, query: str, *, genre: str | None, limit: int, offset: int):  # type: ignore[no-untyped-def]
        if genre and "\x00" in genre:
            if self.mode == "input":
                raise exc.DataError("SELECT", {}, _DBAPIDataError("NUL bytes"))
            raise exc.OperationalError("SELECT", {}, Exception("server closed the connection"))
        return super().search(query, genre=genre, limit=limit, offset=offset)


@pytest.fixture
def lookup(tmp_path: Path) -> MovieLookup:
    store = RefusingStore.from_url(f"sqlite:///{tmp_path / 'movies.db'}")
    store.create_schema()
    return MovieLookup(store, retry_after_seconds=60)


def test_refused_values_raise_as_they_are_and_keep_search_on(lookup: MovieLookup) -> None:
    for _ in range(100):
        with pytest.raises(exc.DataError):
            lookup.search("heat", genre="Drama\x00", limit=5, offset=0)
    assert not lookup.breaker.is_open
    assert lookup.search("heat", genre=None, limit=5, offset=0).total == 0
    assert lookup.get(1) is None


def test_a_database_fault_still_opens_the_breaker(lookup: MovieLookup) -> None:
    lookup.store.mode = "down"  # type: ignore[attr-defined]
    with pytest.raises(MetadataUnavailableError):
        lookup.search("heat", genre="Drama\x00", limit=5, offset=0)
    assert lookup.breaker.is_open
