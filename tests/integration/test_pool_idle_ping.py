"""Pooled PostgreSQL connections are pinged only after sitting idle (adapters/db/engine.py).

``pool_pre_ping`` cost a ``SELECT 1`` per unit of work; the engine now pings a connection on
checkout only when it was idle longer than ``ping_after_idle_s``. A connection the server dropped
while idle is found by the ping and replaced without the caller noticing; one dropped moments after
its last use is found by the next statement instead (that unit of work fails), and the pool is then
renewed. The server side is real: the test ends the connection's backend with
``pg_terminate_backend``, as a restart would.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import PG_ADMIN_URL, _DatabaseFactory
from tianpay.adapters.db.engine import CONNECT_TIMEOUT_S, make_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(database_factory: _DatabaseFactory) -> str:
    return database_factory.postgresql()


def _engine(url: str, ping_after_idle_s: float) -> Iterator[Engine]:
    engine = make_engine(url, pool_size=1, ping_after_idle_s=ping_after_idle_s)
    yield engine
    engine.dispose()


@pytest.fixture
def eager_engine(pg_url: str) -> Iterator[Engine]:
    """Every checked-in connection counts as idle: each reuse is pinged."""
    yield from _engine(pg_url, 0.0)


@pytest.fixture
def trusting_engine(pg_url: str) -> Iterator[Engine]:
    """No connection is idle long enough to be pinged during the test."""
    yield from _engine(pg_url, 3600.0)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_dropped_while_idle_is_replaced_on_checkout(eager_engine: Engine) -> None:
    first = _backend_pid(eager_engine)
    _terminate(first)
    # The ping on checkout finds the dead connection; the pool hands out a fresh one instead.
    second = _backend_pid(eager_engine)
    assert second != first


def test_a_connection_used_moments_ago_is_not_pinged(trusting_engine: Engine) -> None:
    first = _backend_pid(trusting_engine)
    _terminate(first)
    # No ping: the statement itself meets the dropped connection, and that unit of work fails ...
    with pytest.raises(DBAPIError) as failed, trusting_engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert failed.value.connection_invalidated
    # ... after which the pool reconnects.
    assert _backend_pid(trusting_engine) != first


def test_a_new_connection_gives_up_after_the_connect_timeout_instead_of_waiting_for_ever(pg_url: str) -> None:
    # The timeout is libpq's (a host that drops packets would otherwise hold /readyz until TCP gives
    # up); the connection's own parameters show what libpq was given.
    engine = make_engine(pg_url, pool_size=1)
    try:
        with engine.connect() as connection:
            parameters = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        engine.dispose()
    assert parameters["connect_timeout"] == str(CONNECT_TIMEOUT_S)
