"""Creates SQLAlchemy engines configured the way Tianpay needs on each database.

SQLite (the embedded default) runs in WAL mode with foreign keys on, and every transaction starts
with ``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock. PostgreSQL runs at
READ COMMITTED; correctness there comes from conditional writes and row locks, not isolation level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool


def make_engine(url: str, *, pool_size: int = 10, read_only: bool = False) -> Engine:
    """An engine for ``url``; ``read_only`` makes one for queries (lists, exports, statistics).

    A read-only engine never writes: PostgreSQL sessions default to read-only transactions, and
    SQLite connections are ``query_only`` and begin deferred, so a long export never holds the
    write lock that ``BEGIN IMMEDIATE`` would take.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, read_only=read_only)
    connect_args = {"options": "-c default_transaction_read_only=on"} if read_only else {}
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
    )


def _sqlite_engine(url: str, database: str | None, *, read_only: bool = False) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # The driver's own transaction handling is switched off so that our BEGIN IMMEDIATE is the
    # only BEGIN issued (the pysqlite recipe in SQLAlchemy's SQLite dialect documentation).
    engine = create_engine(
        url,
        connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False},
        poolclass=NullPool,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
