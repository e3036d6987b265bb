"""The replay repository over ``request_replays``: remember fingerprints, purge expired ones.

``remember`` inserts with ``ON CONFLICT DO NOTHING``: a fingerprint already present (or being
inserted by a concurrent transaction, which PostgreSQL makes us wait for) means a replay. It takes
no savepoint (two round trips per signed request): after a replay the caller rolls the whole unit of
work back, which drops whatever this call inserted (ports/replays.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from .tables import request_replays


class SqlReplayRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def remember(self, fingerprints: Sequence[str], expires_at: datetime) -> bool:
        insert = postgresql.insert if self._connection.dialect.name == "postgresql" else sqlite.insert
        rows = [{"fingerprint": fingerprint, "expires_at": expires_at} for fingerprint in dict.fromkeys(fingerprints)]
        if not rows:
            return True
        # One statement for every fingerprint (a signature and its nonce): one round trip per
        # request instead of one per fingerprint (docs/performance.md). RETURNING names the rows
        # inserted; rowcount is not reliable for ON CONFLICT on every driver (psycopg reports -1).
        stmt = (
            insert(request_replays)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["fingerprint"])
            .returning(request_replays.c.fingerprint)
        )
        return len(self._connection.execute(stmt).all()) == len(rows)

    def purge_expired(self, now: datetime, limit: int) -> int:
        # Bounded batches keep each purge short, so it never holds locks long on a busy server.
        expired = (
            select(request_replays.c.fingerprint)
            .where(request_replays.c.expires_at < now)
            .limit(limit)
            .scalar_subquery()
        )
        result = self._connection.execute(delete(request_replays).where(request_replays.c.fingerprint.in_(expired)))
        return int(result.rowcount)
