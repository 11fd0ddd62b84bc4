"""CSV loads into Delta: validation, quarantine with reasons, idempotency."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from filmrec.ingestion.contract import event_id_for
from filmrec.ingestion.csv_load import load_movies_csv, load_ratings_csv
from filmrec.lakehouse.tables import LakehouseTables, read_table, table_version

RATINGS = """userId,movieId,rating,timestamp
1,10,4.0,964982703
1,11,3.5,964982800
2,10,5.0,964983000
1,10,2.0,964990000
x,10,4.0,964982703
3,abc,4.0,964982703
3,12,4.0,yesterday
3,13,7.5,964982703
3,14,3.3,964982703
3,15,four,964982703
3,16,4.0
0,17,4.0,964982703
4,18,4.0,964982703,extra
2,19,4.5,2018-09-24T10:00:00Z
5,20,4.0,9999-12-31T23:59:59Z
5,21,4.0,1
5,22,4.0,2018-09-24T10:00:00
"""

EXPECTED_REASONS = {
    "x,10,4.0,964982703": "invalid_user_id",
    "3,abc,4.0,964982703": "invalid_movie_id",
    "3,12,4.0,yesterday": "unparsable_timestamp",
    "3,13,7.5,964982703": "rating_out_of_range",
    "3,14,3.3,964982703": "rating_not_half_step",
    "3,15,four,964982703": "unparsable_rating",
    "3,16,4.0": "malformed_line: expected 4 fields, got 3",
    "0,17,4.0,964982703": "invalid_user_id",
    "4,18,4.0,964982703,extra": "malformed_line: expected 4 fields, got 5",
    # RatedAtRule (ingestion/contract.py): the same rule as the API's and the Kafka job's.
    "5,20,4.0,9999-12-31T23:59:59Z": "rated_at_in_future",
    "5,21,4.0,1": "rated_at_before_floor",
    "5,22,4.0,2018-09-24T10:00:00": "rated_at_without_offset",
}


@pytest.fixture
def tables(tmp_path: Path) -> LakehouseTables:
    return LakehouseTables(tmp_path / "lakehouse")


def test_every_bad_row_is_quarantined_with_its_reason(spark, tables: LakehouseTables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS)
    report = load_ratings_csv(spark, tables, path)
    assert (report.read, report.written, report.quarantined) == (17, 5, 12)

    quarantine = {
        row["payload"]: row["reason"]
        for row in read_table(spark, tables.quarantine).select("payload", "reason").collect()
    }
    assert quarantine == EXPECTED_REASONS
    assert read_table(spark, tables.raw_ratings).count() == 5


def test_clean_keeps_the_latest_rating_per_user_and_movie(
    spark, tables: LakehouseTables, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS)
    load_ratings_csv(spark, tables, path)
    clean = {
        (row["user_id"], row["movie_id"]): row["rating"]
        for row in read_table(spark, tables.clean_ratings).collect()
    }
    # User 1 rated movie 10 twice: 4.0 then, later, 2.0.
    assert clean == {(1, 10): 2.0, (1, 11): 3.5, (2, 10): 5.0, (2, 19): 4.5}


def test_reloading_the_same_file_adds_nothing(spark, tables: LakehouseTables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS)
    load_ratings_csv(spark, tables, path)
    versions = {
        name: table_version(spark, getattr(tables, name))
        for name in ("raw_ratings", "clean_ratings", "quarantine")
    }
    again = load_ratings_csv(spark, tables, path)
    assert (again.written, again.quarantined, again.duplicates) == (0, 0, 5)
    for name, version in versions.items():
        assert table_version(spark, getattr(tables, name)) == version, f"{name} got a new commit"


def test_a_raw_table_made_before_written_by_gets_the_column(
    spark, tables: LakehouseTables, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import types as T

    from filmrec.lakehouse.tables import raw_ratings_schema

    old_schema = T.StructType([f for f in raw_ratings_schema().fields if f.name != "written_by"])
    old_row = (
        "00000000-0000-4000-8000-000000000001",
        9,
        90,
        3.0,
        datetime(2020, 1, 1),
        "csv:old",
        datetime(2020, 1, 1),
    )
    spark.createDataFrame([old_row], old_schema).write.format("delta").save(tables.raw_ratings)

    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,10,4.0,964982703\n")
    assert load_ratings_csv(spark, tables, path).written == 1
    raw = {row["user_id"]: row for row in read_table(spark, tables.raw_ratings).collect()}
    assert set(raw) == {9, 1} and raw[9]["written_by"] is None and raw[1]["written_by"] is None
    assert "written_by" in read_table(spark, tables.raw_ratings).columns


def test_event_ids_match_the_python_contract(spark, tables: LakehouseTables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,10,4.0,964982703\n")
    load_ratings_csv(spark, tables, path)
    (row,) = read_table(spark, tables.raw_ratings).collect()
    assert row["event_id"] == event_id_for(user_id=1, movie_id=10, rating=4.0, rated_at_epoch=964982703)


def test_movies_get_year_genres_and_links(spark, tables: LakehouseTables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    movies = tmp_path / "movies.csv"
    movies.write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation\n"
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        "99,Untitled,(no genres listed)\n"
        "zz,Broken (2000),Drama\n"
    )
    links = tmp_path / "links.csv"
    links.write_text("movieId,imdbId,tmdbId\n1,0114709,862\n11,0112346,9087\n")
    report = load_movies_csv(spark, tables, movies, links)
    assert (report.read, report.written, report.quarantined) == (4, 3, 1)
    rows = {row["movie_id"]: row for row in read_table(spark, tables.movies).collect()}
    assert rows[1]["title"] == "Toy Story" and rows[1]["year"] == 1995
    assert rows[1]["genres"] == ["Adventure", "Animation"]
    assert rows[1]["imdb_id"] == "tt0114709" and rows[1]["tmdb_id"] == 862
    assert rows[11]["title"] == "American President, The"
    assert rows[99]["genres"] == [] and rows[99]["year"] is None
    (bad,) = read_table(spark, tables.quarantine).collect()
    assert bad["reason"] == "invalid_movie_id"

    again = load_movies_csv(spark, tables, movies, links)
    assert (again.written, again.quarantined) == (0, 0)
