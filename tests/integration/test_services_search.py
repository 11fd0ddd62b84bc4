"""GET /movies's query on real PostgreSQL: the same ranking as SQLite, the index serves prefixes,
and a value PostgreSQL refuses (a NUL) is the input's fault, never an outage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from filmrec.metadata.store import MovieStore
from filmrec.serving.app import create_app
from filmrec.serving.movie_lookup import MetadataUnavailableError, MovieLookup, is_database_fault
from tests.integration.service_helpers import make_settings
from tests.unit.test_movie_search import CATALOGUE


@pytest.fixture
def pg_store(fresh_pg_database: str) -> Iterator[MovieStore]:
    store = MovieStore.from_url(fresh_pg_database)
    store.create_schema()
    store.upsert(CATALOGUE)
    yield store
    store.engine.dispose()


def test_ranking_on_postgresql(pg_store: MovieStore) -> None:
    page = pg_store.search("star", genre=None, limit=20, offset=0)
    assert [movie.movie_id for movie in page.movies] == [5, 9, 2, 1, 6, 3, 4]
    assert page.total == 7
    assert [m.movie_id for m in pg_store.search("amelie", genre=None, limit=5, offset=0).movies] == [7]
    assert [m.movie_id for m in pg_store.search("star", genre="SCI-FI", limit=2, offset=1).movies] == [2, 1]


def test_a_title_prefix_is_answered_from_the_index(pg_store: MovieStore) -> None:
    with pg_store.engine.connect() as connection:
        # Nine rows would always be scanned; forbid that to see whether the index can serve it.
        connection.execute(text("SET enable_seqscan = off"))
        plan = connection.execute(
            text("EXPLAIN SELECT movie_id FROM movies WHERE search_title LIKE :prefix"), {"prefix": "star%"}
        ).all()
    assert "ix_movies_search_title" in " ".join(row[0] for row in plan), plan


# -- a NUL in a parameter turns nothing off (issue: one anonymous request every two seconds) --
NUL_REQUESTS = 100


def test_a_nul_in_genre_is_refused_and_search_stays_on(fresh_pg_database: str, tmp_path: Path) -> None:
    """100 requests with a NUL in `genre` (PostgreSQL refuses a NUL in text): each a 422,
    the database breaker stays closed, and search and movie lookups still answer."""
    settings = make_settings(tmp_path, DATABASE_URL=fresh_pg_database)
    with TestClient(create_app(settings)) as client:  # the lifespan migrates PostgreSQL
        lookup = client.app.state.filmrec.movies  # type: ignore[attr-defined]
        lookup.store.upsert(CATALOGUE)
        for _ in range(NUL_REQUESTS):
            assert client.get("/movies", params={"q": "star", "genre": "Sci-Fi\x00"}).status_code == 422
            assert client.get("/movies", params={"genre": "\x00"}).status_code == 422
        assert not lookup.breaker.is_open
        page = client.get("/movies", params={"q": "star"})
        assert page.status_code == 200 and page.json()["total"] == 7
        assert client.get("/movies/5").status_code == 200
        assert client.get("/movies/genres").status_code == 200


def test_a_nul_that_reaches_postgresql_does_not_open_the_breaker(pg_store: MovieStore) -> None:
    """Below the API's check: PostgreSQL's refusal is the input's fault, not an outage."""
    lookup = MovieLookup(pg_store, retry_after_seconds=60)
    for _ in range(NUL_REQUESTS):
        with pytest.raises(Exception) as raised:
            lookup.search("star", genre="Sci-Fi\x00", limit=5, offset=0)
        assert not isinstance(raised.value, MetadataUnavailableError), raised.value
        assert not is_database_fault(raised.value), raised.value
    assert not lookup.breaker.is_open
    assert lookup.search("star", genre=None, limit=20, offset=0).total == 7
    assert lookup.get(5) is not None
