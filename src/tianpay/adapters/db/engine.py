"""Creates SQLAlchemy engines configured the way Tianpay needs on each database.

SQLite (the embedded default) runs in WAL mode with foreign keys on, and every transaction starts
with ``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock. PostgreSQL runs at
READ COMMITTED; correctness there comes from conditional writes and row locks, not isolation level.
Pooled PostgreSQL connections are pinged on checkout only after sitting idle a while (see
``_ping_idle_connections``), not on every checkout as ``pool_pre_ping`` would.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, PoolProxiedConnection

# A pooled connection idle longer than this is pinged before use; one returned more recently is
# trusted (it answered moments ago). See _ping_idle_connections.
PING_AFTER_IDLE_S: Final = 5.0
# libpq's own default is to wait for ever: a database host that drops packets (not one that refuses
# them) would hold every new connection, and /readyz with it, until the kernel gives up on TCP.
CONNECT_TIMEOUT_S: Final = 10
_CHECKED_IN_AT: Final = "tianpay_checked_in_at"


def make_engine(
    url: str, *, pool_size: int = 10, read_only: bool = False, ping_after_idle_s: float = PING_AFTER_IDLE_S
) -> Engine:
    """An engine for ``url``; ``read_only`` makes one for queries (lists, exports, statistics).

    A read-only engine never writes: PostgreSQL sessions default to read-only transactions, and
    SQLite connections are ``query_only`` and begin deferred, so a long export never holds the
    write lock that ``BEGIN IMMEDIATE`` would take.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, read_only=read_only)
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args)
    _ping_idle_connections(engine, ping_after_idle_s)
    return engine


def _ping_idle_connections(engine: Engine, idle_s: float) -> None:
    """Pings a pooled connection on checkout only when it has been idle longer than ``idle_s``.

    ``pool_pre_ping=True`` pinged on every checkout: a ``SELECT 1`` round trip per unit of work, ten
    per wallet payment (docs/performance.md). A connection checked in moments ago answered moments
    ago, so this pings only the ones that sat idle, which is where a PostgreSQL restart or a dropped
    idle connection is found. A dead one raises InvalidatePoolError, on which the pool discards it and
    every connection older than it (a restart kills them all) and hands out a fresh one, as the
    pre-ping did. What is given up: a restart inside the last ``idle_s`` seconds of a connection's
    use is met by the statement instead of the ping, so that one unit of work fails (and rolls back)
    and SQLAlchemy then invalidates the pool on the disconnect error; requests after it reconnect.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            # InvalidatePoolError: a dead idle connection usually means the server restarted, so
            # every connection made before now is discarded too, not only this one.
            raise InvalidatePoolError("the pooled connection no longer answers") from error


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
