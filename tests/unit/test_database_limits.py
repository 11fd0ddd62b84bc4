"""The metadata engine's connection limits, and the migration lock's bounded wait."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from filmrec.config import Settings
from filmrec.metadata import migrate
from filmrec.metadata.engine import ConnectionLimits, make_engine


def test_settings_give_sane_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    limits = ConnectionLimits.from_settings(settings)
    assert 0 < limits.statement_timeout_seconds <= 60
    assert limits.keepalive_idle_seconds + limits.keepalive_interval_seconds * limits.keepalive_count <= 120
    assert 0 < settings.migration_lock_timeout_seconds <= 600


def test_settings_read_the_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("DATABASE_KEEPALIVE_IDLE_SECONDS", "7")
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_SECONDS", "9")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert ConnectionLimits.from_settings(settings).statement_timeout_seconds == 2.5
    assert ConnectionLimits.from_settings(settings).keepalive_idle_seconds == 7
    assert settings.migration_lock_timeout_seconds == 9


def test_libpq_arguments_carry_the_statement_timeout_in_milliseconds_and_keepalives() -> None:
    limits = ConnectionLimits(
        statement_timeout_seconds=1.25,
        keepalive_idle_seconds=5,
        keepalive_interval_seconds=2,
        keepalive_count=4,
    )
    assert limits.libpq_arguments() == {
        "options": "-c statement_timeout=1250",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 4,
    }
    # 0 is PostgreSQL's own "no limit".
    assert ConnectionLimits(0, 5, 2, 4).libpq_arguments()["options"] == "-c statement_timeout=0"


def test_postgresql_engines_connect_with_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_create_engine(url: str, **kwargs: Any) -> str:
        seen.update(kwargs)
        return "engine"

    monkeypatch.setattr("filmrec.metadata.engine.create_engine", fake_create_engine)
    limits = ConnectionLimits(3, 5, 2, 4)
    make_engine("postgresql+psycopg://u:p@db/filmrec", timeout_seconds=2, limits=limits)
    assert seen["connect_args"] == {"connect_timeout": 2, **limits.libpq_arguments()}


def test_sqlite_engines_ignore_them(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}", limits=ConnectionLimits(3, 5, 2, 4))
    try:
        assert migrate.upgrade_engine(engine, lock_timeout_seconds=0.01) == migrate.head_revision()
    finally:
        engine.dispose()


class _LockNotAvailable(Exception):
    sqlstate = "55P03"


class _FakeConnection:
    """Answers the lock statement as a PostgreSQL whose lock_timeout expired."""

    def __init__(self, orig: Exception) -> None:
        self.orig = orig
        self.statements: list[str] = []
        self.rolled_back = False

    def execute(self, statement: Any, parameters: Any = None) -> None:
        self.statements.append(str(statement))
        if "pg_advisory_lock" in str(statement):
            raise OperationalError(str(statement), parameters, self.orig)

    def rollback(self) -> None:
        self.rolled_back = True

    def commit(self) -> None:
        raise AssertionError("nothing to commit: the lock was not taken")


def test_an_expired_lock_wait_is_a_clear_error() -> None:
    connection = _FakeConnection(_LockNotAvailable("canceling statement due to lock timeout"))
    with pytest.raises(migrate.MigrationLockTimeoutError) as raised:
        migrate._lock_for_migration(connection, 2.5)  # type: ignore[arg-type]
    message = str(raised.value)
    assert "2.5 s" in message and "MIGRATION_LOCK_TIMEOUT_SECONDS" in message and "pg_locks" in message
    assert connection.rolled_back
    # The wait is bounded by the lock's own timeout, in this transaction only, and the
    # statement timeout does not cut it shorter.
    assert connection.statements[:2] == ["SET LOCAL statement_timeout = 0", "SET LOCAL lock_timeout = 2500"]


def test_other_database_errors_are_not_mistaken_for_the_lock_wait() -> None:
    class _ConnectionLost(Exception):
        sqlstate = "08006"

    with pytest.raises(OperationalError):
        migrate._lock_for_migration(_FakeConnection(_ConnectionLost("gone")), 2.5)  # type: ignore[arg-type]


def test_the_migrate_command_reports_the_lock_wait_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def held(_url: str) -> str:
        raise migrate.MigrationLockTimeoutError("the metadata migration lock was not released")

    monkeypatch.setattr(migrate, "upgrade_database", held)
    assert migrate.main(["postgresql+psycopg://u:p@db/filmrec"]) == 1
    assert "migration lock was not released" in caplog.text


def test_a_store_from_settings_uses_those_settings_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's own Settings object, not the process-wide one, bounds its connections."""
    from filmrec.metadata.store import MovieStore

    seen: dict[str, Any] = {}
    monkeypatch.setattr(
        "filmrec.metadata.store.make_engine",
        lambda url, **kwargs: seen.update(url=url, **kwargs) or "engine",
    )
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL="postgresql+psycopg://u:p@db/filmrec",
        DATABASE_STATEMENT_TIMEOUT_SECONDS=4,
        DATABASE_KEEPALIVE_COUNT=5,
    )
    MovieStore.from_settings(settings, timeout_seconds=2)
    assert seen["url"] == "postgresql+psycopg://u:p@db/filmrec" and seen["timeout_seconds"] == 2
    assert seen["limits"] == ConnectionLimits(4, 30, 10, 5)
