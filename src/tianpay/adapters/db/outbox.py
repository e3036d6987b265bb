"""The outbox repository over ``events`` and ``webhook_attempts``, on the unit of work's connection.

Claiming is a lease (``locked_until``, ``locked_by``) taken with a compare-and-set update. On
PostgreSQL the candidates are first selected ``FOR UPDATE SKIP LOCKED`` so concurrent workers pass
over each other's rows instead of queueing on them; on SQLite every write transaction starts with
``BEGIN IMMEDIATE`` (see engine.py), so the compare-and-set alone is enough.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, or_, select, update

from tianpay.domain import ids
from tianpay.domain.notifications import EventStatus, EventType, render_body
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.outbox import (
    AttemptOutcome,
    AttemptRecord,
    ClaimedEvent,
    DeliveryTarget,
    EventPage,
    EventRecord,
)

from .tables import events, merchants, webhook_attempts


class SqlOutboxRepository:
    def __init__(self, connection: Connection, clock: Clock, id_generator: IdGenerator) -> None:
        self._connection = connection
        self._clock = clock
        self._ids = id_generator

    def add_event(self, merchant_id: str, type: EventType | str, data: Mapping[str, object]) -> str:
        event_type = EventType(type)
        event_id = self._ids.new(ids.EVENT)
        now = self._clock.now()
        self._connection.execute(
            insert(events).values(
                id=event_id,
                merchant_id=merchant_id,
                type=event_type.value,
                payload=render_body(event_type, now, data),
                created_at=now,
                status=EventStatus.PENDING.value,
                attempt_count=0,
                next_attempt_at=now,
            )
        )
        return event_id

    def claim_due(self, now: datetime, *, worker_id: str, lease_until: datetime, limit: int) -> Sequence[ClaimedEvent]:
        due = _is_due(now)
        candidates = (
            select(
                events.c.id,
                events.c.merchant_id,
                events.c.payload,
                events.c.attempt_count,
                merchants.c.webhook_url,
                merchants.c.webhook_secret,
            )
            .join(merchants, merchants.c.id == events.c.merchant_id)
            .where(due)
            .order_by(events.c.next_attempt_at, events.c.id)
            .limit(limit)
        )
        if self._connection.dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True, of=events)
        rows = self._connection.execute(candidates).all()
        if not rows:
            return []
        # The compare-and-set repeats the due condition: on SQLite it is what makes the claim safe,
        # and on PostgreSQL it costs nothing because the rows are already locked by this transaction.
        leased = self._connection.execute(
            update(events)
            .where(events.c.id.in_([row.id for row in rows]), due)
            .values(locked_until=lease_until, locked_by=worker_id)
            .returning(events.c.id)
        )
        leased_ids = set(leased.scalars())
        return [
            ClaimedEvent(
                id=row.id,
                merchant_id=row.merchant_id,
                body=row.payload,
                attempt_count=row.attempt_count,
                target=DeliveryTarget(url=row.webhook_url or None, secret=row.webhook_secret),
            )
            for row in rows
            if row.id in leased_ids
        ]

    def record_attempt(self, outcome: AttemptOutcome) -> bool:
        attempt = outcome.attempt
        changed = self._connection.execute(
            update(events)
            .where(
                events.c.id == outcome.event_id,
                events.c.status == EventStatus.PENDING.value,
                events.c.locked_by == outcome.worker_id,
                events.c.attempt_count == attempt.attempt_no - 1,
            )
            .values(
                status=outcome.status.value,
                attempt_count=attempt.attempt_no,
                next_attempt_at=outcome.next_attempt_at,
                delivered_at=outcome.delivered_at if outcome.delivered_at else events.c.delivered_at,
                locked_until=None,
                locked_by=None,
            )
        ).rowcount
        if changed != 1:
            return False
        self._connection.execute(
            insert(webhook_attempts).values(
                id=self._ids.new(ids.WEBHOOK_ATTEMPT),
                event_id=outcome.event_id,
                attempt_no=attempt.attempt_no,
                started_at=attempt.started_at,
                succeeded=attempt.succeeded,
                response_status=attempt.response_status,
                latency_ms=attempt.latency_ms,
                error=attempt.error,
            )
        )
        return True

    def get_event(self, merchant_id: str, event_id: str) -> EventRecord | None:
        row = self._connection.execute(
            select(events).where(events.c.id == event_id, events.c.merchant_id == merchant_id)
        ).one_or_none()
        if row is None:
            return None
        return _event_record(row, self._attempts_for([event_id]).get(event_id, ()))

    def list_events(
        self,
        merchant_id: str,
        *,
        type: EventType | None = None,
        starting_after: str | None = None,
        limit: int = 10,
    ) -> EventPage:
        query = select(events).where(events.c.merchant_id == merchant_id)
        if type is not None:
            query = query.where(events.c.type == type.value)
        if starting_after is not None:
            cursor = self._connection.execute(
                select(events.c.created_at, events.c.id).where(
                    events.c.id == starting_after, events.c.merchant_id == merchant_id
                )
            ).one_or_none()
            if cursor is None:
                return EventPage(events=(), has_more=False)
            query = query.where(
                or_(
                    events.c.created_at < cursor.created_at,
                    and_(events.c.created_at == cursor.created_at, events.c.id < cursor.id),
                )
            )
        # One row more than asked tells whether another page exists without a count query.
        rows = self._connection.execute(
            query.order_by(events.c.created_at.desc(), events.c.id.desc()).limit(limit + 1)
        ).all()
        page = rows[:limit]
        attempts = self._attempts_for([row.id for row in page])
        return EventPage(
            events=tuple(_event_record(row, attempts.get(row.id, ())) for row in page),
            has_more=len(rows) > limit,
        )

    def mark_pending(self, event_id: str, *, expected: EventStatus, due_at: datetime) -> bool:
        changed = self._connection.execute(
            update(events)
            .where(events.c.id == event_id, events.c.status == expected.value)
            .values(status=EventStatus.PENDING.value, next_attempt_at=due_at)
        ).rowcount
        return changed == 1

    def _attempts_for(self, event_ids: Sequence[str]) -> Mapping[str, tuple[AttemptRecord, ...]]:
        if not event_ids:
            return {}
        rows = self._connection.execute(
            select(webhook_attempts)
            .where(webhook_attempts.c.event_id.in_(event_ids))
            .order_by(webhook_attempts.c.event_id, webhook_attempts.c.attempt_no)
        ).all()
        grouped: defaultdict[str, list[AttemptRecord]] = defaultdict(list)
        for row in rows:
            grouped[row.event_id].append(
                AttemptRecord(
                    attempt_no=row.attempt_no,
                    started_at=row.started_at,
                    succeeded=row.succeeded,
                    response_status=row.response_status,
                    latency_ms=row.latency_ms,
                    error=row.error,
                )
            )
        return {event_id: tuple(items) for event_id, items in grouped.items()}


def _is_due(now: datetime) -> Any:
    return and_(
        events.c.status == EventStatus.PENDING.value,
        events.c.next_attempt_at <= now,
        or_(events.c.locked_until.is_(None), events.c.locked_until <= now),
    )


def _event_record(row: Row[Any], attempts: tuple[AttemptRecord, ...]) -> EventRecord:
    return EventRecord(
        id=row.id,
        merchant_id=row.merchant_id,
        type=EventType(row.type),
        body=row.payload,
        created_at=row.created_at,
        status=EventStatus(row.status),
        attempt_count=row.attempt_count,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        attempts=attempts,
    )
