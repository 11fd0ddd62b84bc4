"""movies.search_title: the normalised title that GET /movies searches, with its index

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from filmrec.metadata.title_search import normalise_title

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    with op.batch_alter_table("movies") as batch:
        batch.add_column(sa.Column("search_title", sa.String(length=512), server_default="", nullable=False))
    # Rows synced before this revision: normalised here once, by the same function the
    # sync uses from now on (Python's unicodedata; no SQL dialect strips accents alike).
    movies = sa.table("movies", sa.column("movie_id", sa.BigInteger()), sa.column("title", sa.String()),
                      sa.column("search_title", sa.String()))  # fmt: skip
    connection = op.get_bind()
    rows = connection.execute(sa.select(movies.c.movie_id, movies.c.title)).all()
    update = (
        sa.update(movies)
        .where(movies.c.movie_id == sa.bindparam("id"))
        .values(search_title=sa.bindparam("normalised"))
    )
    for start in range(0, len(rows), _BATCH):
        chunk = rows[start : start + _BATCH]
        connection.execute(update, [{"id": row[0], "normalised": normalise_title(row[1])} for row in chunk])
    op.create_index(
        "ix_movies_search_title",
        "movies",
        ["search_title"],
        postgresql_ops={"search_title": "varchar_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_movies_search_title", table_name="movies")
    with op.batch_alter_table("movies") as batch:
        batch.drop_column("search_title")
