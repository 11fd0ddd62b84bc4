"""Reading and writing movie metadata through SQLAlchemy, whatever the database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from filmrec.metadata.orm import Base, Movie


@dataclass(frozen=True)
class MovieInfo:
    movie_id: int
    title: str
    year: int | None
    genres: list[str]


def make_engine(url: str, *, timeout_seconds: float = 5.0) -> Engine:
    """An engine whose connection attempts give up within `timeout_seconds`."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout_seconds})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # WAL lets the API read while a sync job writes.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=timeout_seconds,
        connect_args={"connect_timeout": max(1, int(timeout_seconds))},
    )


class MovieStore:
    """Movie lookups for the API and upserts for the sync job."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, timeout_seconds: float = 5.0) -> MovieStore:
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return cls(make_engine(url, timeout_seconds=timeout_seconds))

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def get_many(self, movie_ids: Sequence[int]) -> dict[int, MovieInfo]:
        if not movie_ids:
            return {}
        with self._sessions() as session:
            rows = session.scalars(select(Movie).where(Movie.movie_id.in_([int(m) for m in movie_ids])))
            return {row.movie_id: _info(row) for row in rows}

    def get(self, movie_id: int) -> MovieInfo | None:
        with self._sessions() as session:
            row = session.get(Movie, movie_id)
            return _info(row) if row else None

    def count(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(text("count(*)")).select_from(Movie)) or 0)

    def upsert(self, movies: Iterable[MovieInfo], *, batch_size: int = 2000) -> int:
        """Insert or update movies; return how many rows were new or changed."""
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
    existing = {
        row.movie_id: row
        for row in session.scalars(select(Movie).where(Movie.movie_id.in_([m.movie_id for m in batch])))
    }
    changed = 0
    for movie in batch:
        row = existing.get(movie.movie_id)
        if row is None:
            session.add(
                Movie(movie_id=movie.movie_id, title=movie.title, year=movie.year, genres=movie.genres)
            )
            changed += 1
        elif (row.title, row.year, list(row.genres or [])) != (
            movie.title,
            movie.year,
            movie.genres,
        ):
            row.title, row.year, row.genres = movie.title, movie.year, movie.genres
            changed += 1
    return changed
