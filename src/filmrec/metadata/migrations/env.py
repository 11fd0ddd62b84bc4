"""Alembic environment: runs on the connection `upgrade_database` hands over.

There is no alembic.ini with a URL: the URL comes from Settings, so one code path
serves SQLite and PostgreSQL.
"""

from __future__ import annotations

from alembic import context

from filmrec.metadata.orm import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through filmrec.metadata.migrate.upgrade_database(url)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
