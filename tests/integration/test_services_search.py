"""GET /movies's query on real PostgreSQL: the same ranking as SQLite, and the index serves prefixes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from filmrec.metadata.store import MovieStore
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
