"""Copying the Delta movies table into the serving database (idempotent upsert)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from filmrec.lakehouse.tables import LakehouseTables, read_table
from filmrec.metadata.store import MovieInfo, MovieStore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def sync_movies(spark: SparkSession, tables: LakehouseTables, store: MovieStore) -> int:
    """Upsert every Delta movie into `store`; return how many were new or changed."""
    store.create_schema()
    rows = read_table(spark, tables.movies).select("movie_id", "title", "year", "genres").toLocalIterator()
    return store.upsert(
        MovieInfo(
            movie_id=int(row["movie_id"]),
            title=row["title"],
            year=row["year"],
            genres=list(row["genres"] or []),
        )
        for row in rows
    )
