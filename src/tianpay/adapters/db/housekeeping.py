"""The housekeeping repository: bounded, concurrent-safe deletes of expired rows, old events, old
idempotency records and old outbox SMS.

Each purge selects at most ``limit`` keys of dead rows and deletes them by key, repeating the dead
condition in the delete as a second guard. On PostgreSQL the keys are selected ``FOR UPDATE SKIP
LOCKED``: two workers purging at once take different rows instead of waiting on (or deadlocking
over) the same ones, and a row being renewed (a rate-limit window restarting) is skipped. On SQLite
``BEGIN IMMEDIATE`` admits one writer at a time, so nothing changes between the select and the delete.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ColumnElement, Connection, Table, delete, select, tuple_

from tianpay.ports.housekeeping import ExpiringRows

from .idempotency import PENDING_STATUS
from .tables import (
    events,
    idempotency_records,
    member_sessions,
    merchant_user_sessions,
    operator_sessions,
    rate_limit_counters,
    request_replays,
    sms_codes,
    sms_outbox,
    webhook_attempts,
)

DELIVERED = "delivered"

# Each table with its one-column key; every one of them has ``expires_at``.
_EXPIRING: dict[ExpiringRows, tuple[Table, Column[str]]] = {
    ExpiringRows.MEMBER_SESSIONS: (member_sessions, member_sessions.c.token_hash),
    ExpiringRows.MERCHANT_USER_SESSIONS: (merchant_user_sessions, merchant_user_sessions.c.token_hash),
    ExpiringRows.OPERATOR_SESSIONS: (operator_sessions, operator_sessions.c.token_hash),
    ExpiringRows.SMS_CODES: (sms_codes, sms_codes.c.id),
    ExpiringRows.RATE_LIMIT_COUNTERS: (rate_limit_counters, rate_limit_counters.c.key),
    ExpiringRows.REQUEST_REPLAYS: (request_replays, request_replays.c.fingerprint),
}


class SqlHousekeepingRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def purge_expired(self, rows: ExpiringRows, now: datetime, limit: int) -> int:
        table, key = _EXPIRING[rows]
        is_dead = table.c.expires_at <= now
        keys = list(
            self._connection.execute(select(key).where(is_dead).limit(limit).with_for_update(skip_locked=True))
            .scalars()
        )
        if not keys:
            return 0
        return int(self._connection.execute(delete(table).where(key.in_(keys), is_dead)).rowcount)

    def purge_delivered_events(self, delivered_before: datetime, limit: int) -> int:
        is_old = (events.c.status == DELIVERED) & (events.c.delivered_at < delivered_before)
        ids = list(
            self._connection.execute(
                select(events.c.id).where(is_old).limit(limit).with_for_update(skip_locked=True)
            ).scalars()
        )
        if not ids:
            return 0
        # The selected events stay as they are until this transaction ends: locked on PostgreSQL, and
        # on SQLite ``BEGIN IMMEDIATE`` keeps every other writer out. A resend waits, then finds none.
        self._connection.execute(delete(webhook_attempts).where(webhook_attempts.c.event_id.in_(ids)))
        return int(self._connection.execute(delete(events).where(events.c.id.in_(ids), is_old)).rowcount)

    def purge_idempotency_records(self, created_before: datetime, limit: int) -> int:
        t = idempotency_records.c
        # A pending record is never committed (claim and complete share one transaction), so neither
        # database shows one to this select; the guard keeps it so should that ever change.
        is_old: ColumnElement[bool] = (t.created_at < created_before) & (t.status_code != PENDING_STATUS)
        key = tuple_(t.merchant_id, t.scope, t.key)
        rows = self._connection.execute(
            select(t.merchant_id, t.scope, t.key).where(is_old).limit(limit).with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0
        keys = [tuple(row) for row in rows]
        return int(self._connection.execute(delete(idempotency_records).where(key.in_(keys), is_old)).rowcount)

    def purge_sms_outbox(self, created_before: datetime, limit: int) -> int:
        is_old = sms_outbox.c.created_at < created_before
        ids = list(
            self._connection.execute(
                select(sms_outbox.c.id).where(is_old).limit(limit).with_for_update(skip_locked=True)
            ).scalars()
        )
        if not ids:
            return 0
        return int(self._connection.execute(delete(sms_outbox).where(sms_outbox.c.id.in_(ids), is_old)).rowcount)
