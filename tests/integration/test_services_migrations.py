"""Alembic migrations from an empty database, on real PostgreSQL and on a SQLite file.

Also: the ORM matches what the migrations build, a foundation-era database (movies
made by create_all) is adopted, and the movie sync is an idempotent upsert.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, MetaData, String, Table, func, inspect

from filmrec.metadata.engine import make_engine
from filmrec.metadata.migrate import current_revision, head_revision, upgrade_database
from filmrec.metadata.orm import Base
from filmrec.metadata.store import MovieStore

TABLES = {"alembic_version", "movies", "links", "genres", "model_deployments"}


def _assert_migrated(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == TABLES
            assert current_revision(connection) == head_revision()
            # The ORM and the migrations describe the same schema.
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            assert diff == [], diff
    finally:
        engine.dispose()


def _foundation_movies() -> Table:
    """The movies table as the foundation release's create_all made it (revision 0001's)."""
    return Table(
        "movies",
        MetaData(),
        Column("movie_id", BigInteger, primary_key=True, autoincrement=False),
        Column("title", String(512), nullable=False),
        Column("year", Integer),
        Column("genres", JSON, nullable=False),
        Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    )


def _empty_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "empty.db"
    path.touch()  # an existing, empty file: what a fresh volume or a prestart step sees
    return f"sqlite:///{path}"


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_upgrade_from_empty_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = request.getfixturevalue("fresh_pg_database") if backend == "postgresql" else _empty_sqlite(tmp_path)
    assert upgrade_database(url) == head_revision()
    _assert_migrated(url)
    # Idempotent: API workers all run it at start.
    assert upgrade_database(url) == head_revision()
    # And reversible, down to nothing and back.
    assert upgrade_database(url, "base", downgrade=True) is None
    assert upgrade_database(url) == head_revision()
    _assert_migrated(url)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_adopts_a_foundation_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = request.getfixturevalue("fresh_pg_database") if backend == "postgresql" else _empty_sqlite(tmp_path)
    engine = make_engine(url)
    movies = _foundation_movies()
    movies.create(engine)  # what create_all made before migrations
    with engine.begin() as connection:
        connection.execute(movies.insert().values(movie_id=7, title="Amélie", year=2001, genres=["Comedy"]))
    engine.dispose()
    store = MovieStore.from_url(url)
    store.create_schema()
    # Revision 0003 normalised the title that was already there: search finds it.
    assert [movie.movie_id for movie in store.search("amelie", genre=None, limit=5, offset=0).movies] == [7]
    store.engine.dispose()
    _assert_migrated(url)


def test_sync_is_an_idempotent_upsert(spark, trained_on_server, fresh_pg_database: str) -> None:  # type: ignore[no-untyped-def]
    from filmrec.pipeline import sync_metadata

    settings = trained_on_server.settings(DATABASE_URL=fresh_pg_database)
    first = sync_metadata(spark, settings)
    assert first > 9000  # the bundled movies.csv
    assert sync_metadata(spark, settings) == 0
    store = MovieStore.from_url(fresh_pg_database)
    try:
        toy_story = store.get(1)
        assert toy_story is not None and toy_story.title.startswith("Toy Story")
        assert store.genres_of(1) == sorted(toy_story.genres)
        assert store.link(1) == ("tt0114709", 862)
        # A changed row is updated in place, and only that one counts.
        from filmrec.metadata.store import MovieInfo

        changed = MovieInfo(1, "Toy Story (renamed)", 1995, ["Animation"], "tt0114709", 862)
        assert store.upsert([changed]) == 1
        assert store.genres_of(1) == ["Animation"]
        assert store.upsert([changed]) == 0
    finally:
        store.engine.dispose()
