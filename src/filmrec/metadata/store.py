"""Reading and writing movie metadata through SQLAlchemy, whatever the database."""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, case, delete, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from filmrec.config import Settings
from filmrec.metadata.engine import ConnectionLimits, make_engine
from filmrec.metadata.migrate import upgrade_engine
from filmrec.metadata.orm import Genre, Link, ModelDeployment, Movie
from filmrec.metadata.title_search import like_patterns, normalise_title


@dataclass(frozen=True)
class MovieInfo:
    movie_id: int
    title: str
    year: int | None
    genres: list[str]
    # External ids: written by the sync, not read on the request path.
    imdb_id: str | None = None
    tmdb_id: int | None = None

    @functools.cached_property
    def shown_fields(self) -> dict[str, Any]:
        """What a list shows of the movie, as JSON values in the API's field order
        (schemas.ScoredMovieOut without its score). Built once per held movie: the
        serving listing keeps these objects, and a computed list copies ten of them.
        Callers copy before adding to it (`shown_fields | {...}`)."""
        return {"movie_id": self.movie_id, "title": self.title, "year": self.year, "genres": self.genres}

    @functools.cached_property
    def shown_json(self) -> bytes:
        """shown_fields as JSON without its closing brace: a list item's bytes up to its
        score, serialised once per held movie rather than once per list it is in."""
        return orjson.dumps(self.shown_fields)[:-1]


@dataclass(frozen=True)
class MoviePage:
    """One page of a search: `total` is how many movies match in all."""

    total: int
    movies: list[MovieInfo]


@dataclass(frozen=True)
class Deployment:
    instance: str
    model_name: str
    model_version: str
    run_id: str | None
    served_from: datetime
    served_until: datetime | None


def instance_name() -> str:
    """Who is serving: several API processes may share one database."""
    return f"{socket.gethostname()}:{os.getpid()}"


class MovieStore:
    """Movie lookups for the API and upserts for the sync job."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(
        cls, url: str, *, timeout_seconds: float = 5.0, limits: ConnectionLimits | None = None
    ) -> MovieStore:
        """A store on `url`; `limits` bound its PostgreSQL connections (default: the settings')."""
        return cls(make_engine(url, timeout_seconds=timeout_seconds, limits=limits))

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout_seconds: float = 5.0) -> MovieStore:
        """The configured database, bounded by these settings' connection limits."""
        return cls.from_url(
            settings.effective_database_url,
            timeout_seconds=timeout_seconds,
            limits=ConnectionLimits.from_settings(settings),
        )

    def create_schema(self, *, lock_timeout_seconds: float | None = None) -> None:
        """Bring the schema to the newest migration (idempotent); see upgrade_engine."""
        upgrade_engine(self.engine, lock_timeout_seconds=lock_timeout_seconds)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def get_many(self, movie_ids: Sequence[int]) -> dict[int, MovieInfo]:
        """The titles of a list: the four columns an answer shows, read on a plain
        connection. ORM entities, with every column and a session's identity map, cost
        twice as much for the same rows."""
        if not movie_ids:
            return {}
        return self._listed(Movie.movie_id.in_([int(m) for m in movie_ids]))

    def listing(self, *, limit: int) -> dict[int, MovieInfo] | None:
        """Those four columns of every movie, or None when there are more than `limit`
        (the API's in-memory copy, serving/movie_lookup.py)."""
        with self.engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(Movie)).scalar_one()
        if count > limit:
            return None
        return self._listed(None)

    def _listed(self, where: ColumnElement[bool] | None) -> dict[int, MovieInfo]:
        columns = select(Movie.movie_id, Movie.title, Movie.year, Movie.genres)
        with self.engine.connect() as connection:
            rows = connection.execute(columns if where is None else columns.where(where))
            return {
                movie_id: MovieInfo(movie_id=movie_id, title=title, year=year, genres=list(genres or []))
                for movie_id, title, year, genres in rows
            }

    def get(self, movie_id: int) -> MovieInfo | None:
        with self._sessions() as session:
            row = session.get(Movie, movie_id)
            return _info(row) if row else None

    def search(self, query: str, *, genre: str | None, limit: int, offset: int) -> MoviePage:
        """Movies whose title matches `query` (already normalised; "" matches all), best first.

        Ranked in SQL: the exact title, then titles starting with the query, then
        titles with a word starting with it, then any other substring; alphabetical
        within a rank. The exact and prefix ranks are what a search box mostly asks for,
        and the index on search_title (varchar_pattern_ops on PostgreSQL) serves them;
        a substring cannot use a b-tree, so those rows cost a scan of the one column.
        """
        conditions: list[ColumnElement[bool]] = []
        order: list[ColumnElement[Any]] = []
        if query:
            prefix, word, contains = like_patterns(query)
            conditions.append(Movie.search_title.like(contains))
            order.append(
                case(
                    (Movie.search_title == query, 0),
                    (Movie.search_title.like(prefix), 1),
                    (Movie.search_title.like(word), 2),
                    else_=3,
                )
            )
        if genre:
            # Genres are few and short: matching them case-insensitively costs nothing.
            conditions.append(
                Movie.movie_id.in_(select(Genre.movie_id).where(func.lower(Genre.genre) == genre.lower()))
            )
        order += [Movie.search_title.expression, Movie.movie_id.expression]
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(Movie).where(*conditions))
            rows = session.scalars(
                select(Movie).where(*conditions).order_by(*order).limit(limit).offset(offset)
            )
            return MoviePage(total=int(total or 0), movies=[_info(row) for row in rows])

    def movie_ids_matching(
        self, *, genre: str | None = None, year_min: int | None = None, year_max: int | None = None
    ) -> list[int]:
        """Ids of every movie of `genre` (any case) released within [year_min, year_max].

        One statement whatever the filters: the API turns it into the candidate set of a
        filtered recommendation. A movie without a year passes no year bound.
        """
        conditions: list[ColumnElement[bool]] = []
        if genre:
            conditions.append(
                Movie.movie_id.in_(select(Genre.movie_id).where(func.lower(Genre.genre) == genre.lower()))
            )
        if year_min is not None:
            conditions.append(Movie.year >= year_min)
        if year_max is not None:
            conditions.append(Movie.year <= year_max)
        with self._sessions() as session:
            return [int(movie_id) for movie_id in session.scalars(select(Movie.movie_id).where(*conditions))]

    def genres(self) -> list[str]:
        """Every genre some movie has, alphabetically."""
        with self._sessions() as session:
            return list(session.scalars(select(Genre.genre).distinct().order_by(Genre.genre)))

    def count(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(text("count(*)")).select_from(Movie)) or 0)

    def genres_of(self, movie_id: int) -> list[str]:
        with self._sessions() as session:
            return sorted(session.scalars(select(Genre.genre).where(Genre.movie_id == movie_id)))

    def link(self, movie_id: int) -> tuple[str | None, int | None] | None:
        with self._sessions() as session:
            row = session.get(Link, movie_id)
            return (row.imdb_id, row.tmdb_id) if row else None

    def record_deployment(
        self,
        *,
        model_name: str,
        model_version: str,
        run_id: str | None,
        served_from: datetime | None = None,
        instance: str | None = None,
    ) -> None:
        """Close this instance's open deployment row and open one for the new version."""
        instance = instance or instance_name()
        now = served_from or datetime.now(UTC)
        with self._sessions.begin() as session:
            session.execute(
                update(ModelDeployment)
                .where(ModelDeployment.instance == instance, ModelDeployment.served_until.is_(None))
                .values(served_until=now)
            )
            session.add(
                ModelDeployment(
                    instance=instance,
                    model_name=model_name,
                    model_version=model_version,
                    run_id=run_id,
                    served_from=now,
                )
            )

    def close_deployment(self, *, instance: str | None = None) -> None:
        """Mark this instance as no longer serving (API shutdown)."""
        with self._sessions.begin() as session:
            session.execute(
                update(ModelDeployment)
                .where(
                    ModelDeployment.instance == (instance or instance_name()),
                    ModelDeployment.served_until.is_(None),
                )
                .values(served_until=datetime.now(UTC))
            )

    def deployments(self, *, model_name: str | None = None) -> list[Deployment]:
        query = select(ModelDeployment).order_by(ModelDeployment.id)
        if model_name is not None:
            query = query.where(ModelDeployment.model_name == model_name)
        with self._sessions() as session:
            return [
                Deployment(
                    instance=row.instance,
                    model_name=row.model_name,
                    model_version=row.model_version,
                    run_id=row.run_id,
                    served_from=row.served_from,
                    served_until=row.served_until,
                )
                for row in session.scalars(query)
            ]

    def upsert(self, movies: Iterable[MovieInfo], *, batch_size: int = 2000) -> int:
        """Insert or update movies with their links and genres; return how many changed."""
        changed = 0
        batch: list[MovieInfo] = []
        with self._sessions.begin() as session:
            for movie in movies:
                batch.append(movie)
                if len(batch) >= batch_size:
                    changed += _upsert_batch(session, batch)
                    batch = []
            if batch:
                changed += _upsert_batch(session, batch)
        return changed


def _info(row: Movie) -> MovieInfo:
    return MovieInfo(movie_id=row.movie_id, title=row.title, year=row.year, genres=list(row.genres or []))


def _upsert_batch(session: Session, batch: list[MovieInfo]) -> int:
    """Diff one batch against the database and write only what differs.

    Reading first and comparing (instead of dialect-specific ON CONFLICT) keeps one
    code path for SQLite and PostgreSQL and gives an exact count of changed movies.
    """
    ids = [m.movie_id for m in batch]
    movies = {row.movie_id: row for row in session.scalars(select(Movie).where(Movie.movie_id.in_(ids)))}
    links = {row.movie_id: row for row in session.scalars(select(Link).where(Link.movie_id.in_(ids)))}
    genres: dict[int, set[str]] = {}
    genre_rows = session.execute(select(Genre.movie_id, Genre.genre).where(Genre.movie_id.in_(ids)))
    for movie_id, genre in genre_rows:
        genres.setdefault(movie_id, set()).add(genre)
    # Parents first: links and genres reference movies.
    changed: set[int] = set()
    for movie in batch:
        row = movies.get(movie.movie_id)
        search_title = normalise_title(movie.title)
        if row is None:
            session.add(
                Movie(
                    movie_id=movie.movie_id,
                    title=movie.title,
                    search_title=search_title,
                    year=movie.year,
                    genres=movie.genres,
                )
            )
            changed.add(movie.movie_id)
        elif (row.title, row.search_title, row.year, list(row.genres or [])) != (
            movie.title,
            search_title,
            movie.year,
            movie.genres,
        ):
            row.title, row.search_title, row.year, row.genres = (
                movie.title,
                search_title,
                movie.year,
                movie.genres,
            )
            changed.add(movie.movie_id)
    session.flush()
    for movie in batch:
        link = links.get(movie.movie_id)
        if movie.imdb_id is None and movie.tmdb_id is None:
            if link is not None:
                session.delete(link)
                changed.add(movie.movie_id)
        elif link is None:
            session.add(Link(movie_id=movie.movie_id, imdb_id=movie.imdb_id, tmdb_id=movie.tmdb_id))
            changed.add(movie.movie_id)
        elif (link.imdb_id, link.tmdb_id) != (movie.imdb_id, movie.tmdb_id):
            link.imdb_id, link.tmdb_id = movie.imdb_id, movie.tmdb_id
            changed.add(movie.movie_id)
        have, want = genres.get(movie.movie_id, set()), set(movie.genres)
        if have != want:
            if have - want:
                session.execute(
                    delete(Genre).where(Genre.movie_id == movie.movie_id, Genre.genre.in_(have - want))
                )
            session.add_all(Genre(movie_id=movie.movie_id, genre=genre) for genre in sorted(want - have))
            changed.add(movie.movie_id)
    return len(changed)
