"""links, genres and model_deployments

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("movie_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("imdb_id", sa.String(length=16), nullable=True),
        sa.Column("tmdb_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["movie_id"], ["movies.movie_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("movie_id"),
    )
    op.create_table(
        "genres",
        sa.Column("movie_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("genre", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["movie_id"], ["movies.movie_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("movie_id", "genre"),
    )
    op.create_index("ix_genres_genre", "genres", ["genre"])
    op.create_table(
        "model_deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("served_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("served_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_model_deployments_open", "model_deployments", ["instance", "served_until"])


def downgrade() -> None:
    op.drop_index("ix_model_deployments_open", table_name="model_deployments")
    op.drop_table("model_deployments")
    op.drop_index("ix_genres_genre", table_name="genres")
    op.drop_table("genres")
    op.drop_table("links")
