"""The idempotency repository over ``idempotency_records``: claim, complete, read.

The claim is ``INSERT … ON CONFLICT DO NOTHING`` on the (merchant, scope, key) primary key: on
PostgreSQL a second transaction claiming the same key waits for the first to end and then claims
nothing (or claims the key itself if the first rolled back), which is what makes concurrent
duplicates end with one resource and lets the service claim before it reads.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tianpay.ports.clock import Clock
from tianpay.ports.idempotency import IdempotencyRecord

from .tables import idempotency_records

# A claimed record holds these until ``complete`` fills it in the same transaction, so no other
# transaction ever reads them (housekeeping leaves a record with this status alone all the same).
PENDING_STATUS = 0
_PENDING_BODY = ""


class SqlIdempotencyRepository:
    def __init__(self, connection: Connection, clock: Clock) -> None:
        self._connection = connection
        self._clock = clock

    def get(self, merchant_id: str, scope: str, key: str) -> IdempotencyRecord | None:
        t = idempotency_records.c
        row = self._connection.execute(
            select(t.merchant_id, t.scope, t.key, t.request_hash, t.status_code, t.response_body).where(
                t.merchant_id == merchant_id, t.scope == scope, t.key == key
            )
        ).first()
        if row is None:
            return None
        return IdempotencyRecord(
            row.merchant_id, row.scope, row.key, row.request_hash, int(row.status_code), row.response_body
        )

    def claim(self, merchant_id: str, scope: str, key: str, request_hash: str) -> bool:
        insert = postgresql.insert if self._connection.dialect.name == "postgresql" else sqlite.insert
        stmt = (
            insert(idempotency_records)
            .values(
                merchant_id=merchant_id,
                scope=scope,
                key=key,
                request_hash=request_hash,
                status_code=PENDING_STATUS,
                response_body=_PENDING_BODY,
                created_at=self._clock.now(),
            )
            .on_conflict_do_nothing(index_elements=["merchant_id", "scope", "key"])
        )
        # RETURNING says whether the row was inserted (psycopg reports rowcount -1 for ON CONFLICT).
        return self._connection.execute(stmt.returning(idempotency_records.c.key)).first() is not None

    def complete(self, merchant_id: str, scope: str, key: str, status_code: int, response_body: str) -> None:
        t = idempotency_records.c
        result = self._connection.execute(
            update(idempotency_records)
            .where(t.merchant_id == merchant_id, t.scope == scope, t.key == key, t.status_code == PENDING_STATUS)
            .values(status_code=status_code, response_body=response_body)
        )
        if result.rowcount != 1:
            raise RuntimeError(f"idempotency key {scope}/{key} was not claimed by this unit of work")
