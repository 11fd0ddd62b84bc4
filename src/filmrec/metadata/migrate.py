"""Running the Alembic migrations programmatically (API start-up and prestart step).

    python -m filmrec.metadata.migrate            # upgrade the configured database

A database made by the foundation release (movies created by create_all, no
alembic_version table) is adopted by stamping the baseline revision first.
"""

from __future__ import annotations

import importlib.resources
import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from filmrec.metadata.engine import make_engine

log = logging.getLogger(__name__)

# Package data of the installed package (a wheel or an editable install), not a checkout path.
MIGRATIONS_DIR = Path(str(importlib.resources.files("filmrec.metadata") / "migrations"))
BASELINE_REVISION = "0001"
# Any constant works; it only has to be the same in every process that migrates.
_PG_LOCK_KEY = 0x66696C6D  # "film"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _run(connection: Connection, revision: str, *, downgrade: bool) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables and "movies" in tables:
        log.info("adopting a pre-migration database: stamping revision %s", BASELINE_REVISION)
        command.stamp(config, BASELINE_REVISION)
    if downgrade:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


def upgrade_engine(engine: Engine, revision: str = "head", *, downgrade: bool = False) -> str | None:
    """Migrate the database behind `engine`; return the revision it is at afterwards."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # API workers start together: one migrates, the others wait and find nothing to do.
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            connection.commit()
        try:
            _run(connection, revision, downgrade=downgrade)
            connection.commit()
            return current_revision(connection)
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                connection.commit()


def upgrade_database(
    url: str, revision: str = "head", *, downgrade: bool = False, timeout_seconds: float = 10.0
) -> str | None:
    """Upgrade (or with `downgrade`, downgrade) the database at `url` to `revision`.

    The same call for a SQLite file and for PostgreSQL; returns the resulting revision.
    """
    engine = make_engine(url, timeout_seconds=timeout_seconds)
    try:
        return upgrade_engine(engine, revision, downgrade=downgrade)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    from filmrec.config import get_settings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = (argv or sys.argv[1:] or [get_settings().effective_database_url])[0]
    print(f"database at revision {upgrade_database(url)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
