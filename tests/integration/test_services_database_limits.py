"""What bounds the metadata database's connections, on the real PostgreSQL.

Every connection carries the configured statement timeout and TCP keepalives, and a
migration waits a bounded time for another process's lock, then fails clearly.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from filmrec.metadata.engine import ConnectionLimits, make_engine
from filmrec.metadata.migrate import (
    _PG_LOCK_KEY,
    MigrationLockTimeoutError,
    head_revision,
    upgrade_database,
    upgrade_engine,
)

LIMITS = ConnectionLimits(
    statement_timeout_seconds=1.5, keepalive_idle_seconds=11, keepalive_interval_seconds=4, keepalive_count=2
)


def test_every_connection_has_the_statement_timeout_and_keepalives(fresh_pg_database: str) -> None:
    engine = make_engine(fresh_pg_database, limits=LIMITS)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "1500ms"
            # Keepalives are the client's socket options: libpq's connection parameters.
            info = connection.connection.dbapi_connection.info  # type: ignore[union-attr]
            params = info.get_parameters()
            assert params["keepalives"] == "1"
            assert params["keepalives_idle"] == "11"
            assert params["keepalives_interval"] == "4"
            assert params["keepalives_count"] == "2"
            # The server cancels a statement that runs past it.
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(30)"))
    finally:
        engine.dispose()


def test_a_held_migration_lock_fails_the_migration_clearly(fresh_pg_database: str) -> None:
    holder = make_engine(fresh_pg_database, limits=LIMITS)
    migrating = make_engine(fresh_pg_database, limits=LIMITS)
    try:
        with holder.connect() as held:
            # Another process's migration (or one stuck while holding the lock).
            held.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            held.commit()
            # A lock wait longer than the statement timeout: the bounded wait is the
            # lock's own, not the statement timeout's.
            with pytest.raises(MigrationLockTimeoutError, match="MIGRATION_LOCK_TIMEOUT_SECONDS"):
                upgrade_engine(migrating, lock_timeout_seconds=2.0)
            held.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
            held.commit()
        # Once released, the same migration goes through, and its connection is usable.
        assert upgrade_engine(migrating, lock_timeout_seconds=2.0) == head_revision()
        with migrating.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "1500ms"
    finally:
        holder.dispose()
        migrating.dispose()


def test_upgrade_database_reads_the_limits_from_the_settings(
    fresh_pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filmrec.config import get_settings

    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()
    holder = make_engine(fresh_pg_database, limits=LIMITS)
    try:
        with holder.connect() as held:
            held.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            held.commit()
            with pytest.raises(MigrationLockTimeoutError, match="within 1 s"):
                upgrade_database(fresh_pg_database)
    finally:
        holder.dispose()
        get_settings.cache_clear()
