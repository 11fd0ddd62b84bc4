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
from sqlalchemy.exc import OperationalError

from filmrec.config import get_settings
from filmrec.metadata.engine import make_engine

log = logging.getLogger(__name__)

# Package data of the installed package (a wheel or an editable install), not a checkout path.
MIGRATIONS_DIR = Path(str(importlib.resources.files("filmrec.metadata") / "migrations"))
BASELINE_REVISION = "0001"
# Any constant works; it only has to be the same in every process that migrates.
_PG_LOCK_KEY = 0x66696C6D  # "film"
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout that expired


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


class MigrationLockTimeoutError(RuntimeError):
    """Another process held the migration lock for longer than the bounded wait."""


def _lock_for_migration(connection: Connection, timeout_seconds: float) -> None:
    """Take the session's migration lock, waiting at most `timeout_seconds` for it.

    The wait is bounded by the server's lock_timeout, set for this one transaction only
    (the statement timeout is lifted for it, so that the longer of the two is not cut
    short by the other). A process stuck while holding the lock (or a migration that
    runs for very long) then fails the others' start-up with a clear error instead of
    hanging them.
    """
    try:
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text(f"SET LOCAL lock_timeout = {max(1, round(timeout_seconds * 1000))}"))
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
    except OperationalError as error:
        connection.rollback()
        if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        raise MigrationLockTimeoutError(
            f"the metadata migration lock (PostgreSQL advisory lock {_PG_LOCK_KEY}) was not "
            f"released within {timeout_seconds:g} s (MIGRATION_LOCK_TIMEOUT_SECONDS): another "
            "process is migrating or is stuck holding it. Find it with `SELECT pid FROM "
            f"pg_locks WHERE locktype = 'advisory' AND objid = {_PG_LOCK_KEY}`; end it with "
            "pg_terminate_backend(pid) if it is stuck, or raise the setting for a long migration."
        ) from error
    connection.commit()  # the lock is the session's: it outlives this transaction


def upgrade_engine(
    engine: Engine,
    revision: str = "head",
    *,
    downgrade: bool = False,
    lock_timeout_seconds: float | None = None,
) -> str | None:
    """Migrate the database behind `engine`; return the revision it is at afterwards.

    On PostgreSQL, waits at most `lock_timeout_seconds` (default: the setting
    MIGRATION_LOCK_TIMEOUT_SECONDS) for another process's migration, then raises
    MigrationLockTimeoutError.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # API workers start together: one migrates, the others wait and find nothing to do.
            if lock_timeout_seconds is None:
                lock_timeout_seconds = get_settings().migration_lock_timeout_seconds
            _lock_for_migration(connection, lock_timeout_seconds)
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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = (argv or sys.argv[1:] or [get_settings().effective_database_url])[0]
    try:
        revision = upgrade_database(url)
    except MigrationLockTimeoutError as error:
        log.error("%s", error)
        return 1
    print(f"database at revision {revision}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
