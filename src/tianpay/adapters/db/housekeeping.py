"""The housekeeping repository: bounded, concurrent-safe deletes of expired rows and old events.

Each purge selects at most ``limit`` keys of dead rows and deletes them by key, repeating the dead
condition in the delete as a second guard. On PostgreSQL the keys are selected ``FOR UPDATE SKIP
LOCKED``: two workers purging at once take different rows instead of waiting on (or deadlocking
over) the same ones, and a row being renewed (a rate-limit window restarting) is skipped. On SQLite
``BEGIN IMMEDIATE`` admits one writer at a time, so nothing changes between the select and the delete.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Connection, Table, delete, select

from tianpay.ports.housekeeping import ExpiringRows

from .tables import (
    events,
    member_sessions,
    merchant_user_sessions,
    operator_sessions,
    rate_limit_counters,
    request_replays,
    sms_codes,
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
