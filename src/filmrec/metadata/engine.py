"""The metadata database's SQLAlchemy engine: SQLite by default, PostgreSQL when configured.

Its own module because both the store (reads and writes) and the migrations need an
engine, and neither should import the other to get one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event


def make_engine(url: str, *, timeout_seconds: float = 5.0) -> Engine:
    """An engine whose connection attempts give up within `timeout_seconds`.

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
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=timeout_seconds,
        connect_args={"connect_timeout": max(1, int(timeout_seconds))},
    )
