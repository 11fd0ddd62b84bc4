"""The batch steps that `make demo`, the CLI and the DAGs share: load, sync, train."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from filmrec.config import Settings
from filmrec.data.movielens import MovieLensFiles
from filmrec.ingestion.csv_load import LoadReport, load_movies_csv, load_ratings_csv
from filmrec.lakehouse.tables import LakehouseTables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from filmrec.training.job import TrainingResult
    from filmrec.training.params import SearchSpace

log = logging.getLogger(__name__)


def load_movielens(spark: SparkSession, settings: Settings, files: MovieLensFiles) -> list[LoadReport]:
    """Load movies (with links) and ratings files into the lakehouse."""
    tables = LakehouseTables(settings.lakehouse_path)
    reports = []
    if files.movies is not None:
        reports.append(load_movies_csv(spark, tables, files.movies, files.links))
    reports.append(load_ratings_csv(spark, tables, files.ratings))
    for report in reports:
        log.info("loaded %s", report.as_dict())
    return reports


def sync_metadata(spark: SparkSession, settings: Settings) -> int:
    """Copy Delta movies into the serving database (SQLite or PostgreSQL)."""
    from filmrec.metadata.store import MovieStore
    from filmrec.metadata.sync import sync_movies

    store = MovieStore.from_settings(settings)
    changed = sync_movies(spark, LakehouseTables(settings.lakehouse_path), store)
    log.info("movie metadata: %d rows new or changed", changed)
    return changed


def train(spark: SparkSession, settings: Settings, *, search: SearchSpace | None = None) -> TrainingResult:
    from filmrec.training.job import train_and_register
    from filmrec.training.params import DEFAULT_SEARCH

    return train_and_register(spark, settings=settings, search=search or DEFAULT_SEARCH)
