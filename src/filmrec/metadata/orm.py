"""SQLAlchemy 2.x ORM models of the serving database (SQLite or PostgreSQL).

The schema itself is owned by the Alembic migrations in `filmrec.metadata.migrations`;
these classes must stay in step with them (a test compares the two).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Movie(Base):
    __tablename__ = "movies"
    # PostgreSQL serves `LIKE 'prefix%'` from a b-tree only with the pattern operator
    # class (the database's collation may not sort byte-wise); SQLite ignores it.
    __table_args__ = (
        Index(
            "ix_movies_search_title", "search_title", postgresql_ops={"search_title": "varchar_pattern_ops"}
        ),
    )

    movie_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(512))
    year: Mapped[int | None] = mapped_column(Integer)
    # The title normalised for search (title_search.normalise_title), written with it.
    search_title: Mapped[str] = mapped_column(String(512), server_default="")
    # A JSON list keeps one schema for SQLite and PostgreSQL and answers the API in
    # one read; the genres table is the normalised form for queries by genre.
    genres: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Link(Base):
    """External ids of a movie (MovieLens links.csv)."""

    __tablename__ = "links"

    movie_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("movies.movie_id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # IMDb ids are text ("tt0114709"): the leading zeros are part of the id.
    imdb_id: Mapped[str | None] = mapped_column(String(16))
    tmdb_id: Mapped[int | None] = mapped_column(BigInteger)


class Genre(Base):
    """One row per (movie, genre): the normalised genres of `Movie.genres`."""

    __tablename__ = "genres"
    __table_args__ = (Index("ix_genres_genre", "genre"),)

    movie_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("movies.movie_id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    genre: Mapped[str] = mapped_column(String(64), primary_key=True)


class ModelDeployment(Base):
    """Which model version an API instance served, from when to when.

    One open row (served_until NULL) per instance; a swap closes it and opens the next.
    """

    __tablename__ = "model_deployments"
    __table_args__ = (Index("ix_model_deployments_open", "instance", "served_until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance: Mapped[str] = mapped_column(String(255))
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(64))
    served_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    served_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
