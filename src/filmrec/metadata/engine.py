"""The metadata database's SQLAlchemy engine: SQLite by default, PostgreSQL when configured.

Its own module because both the store (reads and writes) and the migrations need an
engine, and neither should import the other to get one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from filmrec.config import Settings, get_settings


@dataclass(frozen=True)
class ConnectionLimits:
    """What bounds a PostgreSQL connection once it is open (the connect timeout is apart).

    A statement that runs or waits too long is cancelled by the server; TCP keepalives
    find a peer that vanished without closing (a dead host, a dropped NAT entry), which
    would otherwise leave a pooled connection waiting for ever.
    """

    statement_timeout_seconds: float
    keepalive_idle_seconds: int
    keepalive_interval_seconds: int
    keepalive_count: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            statement_timeout_seconds=settings.database_statement_timeout_seconds,
            keepalive_idle_seconds=settings.database_keepalive_idle_seconds,
            keepalive_interval_seconds=settings.database_keepalive_interval_seconds,
            keepalive_count=settings.database_keepalive_count,
        )

    def libpq_arguments(self) -> dict[str, Any]:
        """The libpq connection parameters (psycopg) that apply these limits."""
        # 0 is PostgreSQL's own "no timeout"; the server takes milliseconds.
        statement_ms = round(self.statement_timeout_seconds * 1000)
        return {
            "options": f"-c statement_timeout={statement_ms}",
            "keepalives": 1,
            "keepalives_idle": self.keepalive_idle_seconds,
            "keepalives_interval": self.keepalive_interval_seconds,
            "keepalives_count": self.keepalive_count,
        }


def make_engine(url: str, *, timeout_seconds: float = 5.0, limits: ConnectionLimits | None = None) -> Engine:
    """An engine whose connection attempts give up within `timeout_seconds`.

    On PostgreSQL, every connection also has `limits` (default: from the settings).
    A SQLite file's directory is created first: the embedded default must work in a
    fresh clone.
    """
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout_seconds})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets the API read while a sync job writes.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        return engine
    limits = limits or ConnectionLimits.from_settings(get_settings())
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=timeout_seconds,
        connect_args={"connect_timeout": max(1, int(timeout_seconds)), **limits.libpq_arguments()},
    )
