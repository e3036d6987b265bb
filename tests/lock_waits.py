"""Seeing, on PostgreSQL, that concurrent requests really overlap: wait until sessions wait on locks.

A barrier starts threads together but cannot promise that their transactions overlap; a test that
needs the overlap holds a lock (or a request open) and lets go only once pg_stat_activity shows the
others waiting, so nothing is timed and nothing depends on the machine's speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine, text

JOIN_TIMEOUT_S = 60.0

T = TypeVar("T")


def wait_until_sessions_wait_on_locks(engine: Engine, sessions: int = 1) -> None:
    """Polls pg_stat_activity until ``sessions`` other sessions of this database wait on a lock.

    The deadline only keeps a broken build from hanging; nothing is asserted about how long it took.
    """
    with engine.connect() as connection:
        for _ in range(6000):
            waiting = connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )).scalar_one()
            connection.rollback()
            if waiting >= sessions:
                return
            time.sleep(0.01)
    raise AssertionError(f"fewer than {sessions} sessions ever waited on a lock")


def overlapping_requests(
    engine: Engine, table: str, request: Callable[[], T], *, count: int = 2
) -> list[T | BaseException]:
    """Runs ``request`` in ``count`` threads at once, their transactions certain to overlap; returns
    what each returned or raised.

    While this session holds ``table`` (``LOCK TABLE … IN SHARE MODE``), inserts into it wait: the
    first request stops at its insert with everything before it uncommitted, and the lock is let go
    only once every request waits on a lock, each on the first one's writes or on the table.
    """
    answers: list[T | BaseException] = []
    guard = threading.Lock()

    def run() -> None:
        try:
            answer: T | BaseException = request()
        except BaseException as error:
            answer = error
        with guard:
            answers.append(answer)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    with engine.connect() as holder:
        holder.execute(text(f"LOCK TABLE {table} IN SHARE MODE"))
        for thread in threads:
            thread.start()
        wait_until_sessions_wait_on_locks(engine, sessions=count)
        holder.rollback()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT_S)
    return answers
