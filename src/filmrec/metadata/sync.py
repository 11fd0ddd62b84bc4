"""Copying the Delta movies table into the serving database (idempotent upsert)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from filmrec.lakehouse.tables import LakehouseTables, read_table
from filmrec.metadata.store import MovieInfo, MovieStore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def sync_movies(spark: SparkSession, tables: LakehouseTables, store: MovieStore) -> int:
    """Upsert every Delta movie (with links and genres) into `store`; return how many changed.

    Idempotent: a second run over the same Delta version writes nothing and returns 0.
    """
    store.create_schema()
    rows = (
        read_table(spark, tables.movies)
        .select("movie_id", "title", "year", "genres", "imdb_id", "tmdb_id")
        .toLocalIterator()
    )
    return store.upsert(
        MovieInfo(
            movie_id=int(row["movie_id"]),
            title=row["title"],
            year=row["year"],
            genres=list(row["genres"] or []),
            imdb_id=row["imdb_id"],
            tmdb_id=int(row["tmdb_id"]) if row["tmdb_id"] is not None else None,
        )
        for row in rows
    )
