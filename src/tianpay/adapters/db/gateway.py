"""The re-query schedule of payment attempts and the operator alerts, on the unit of work's connection.

A claim is ``UPDATE … WHERE id = ? AND query_count = ?``: of two workers that read the same due row,
only the one whose update counts wins. PostgreSQL also skips rows another worker has locked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tianpay.domain.alerts import AlertKind, AlertSeverity, AlertStatus, OperatorAlert
from tianpay.domain.payment import AttemptStatus
from tianpay.ports.gateway import QuerySchedule

from .payments import _attempt_from
from .tables import operator_alerts, payment_attempts, payments

IN_FLIGHT = [status.value for status in AttemptStatus if status.is_in_flight]


class SqlAttemptQueryRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def due_for_query(self, now: datetime, *, never_queried_before: datetime, limit: int) -> Sequence[QuerySchedule]:
        due = or_(
            payment_attempts.c.next_query_at <= now,
            and_(payment_attempts.c.next_query_at.is_(None), payment_attempts.c.created_at <= never_queried_before),
        )
        query = (
            select(payment_attempts, payments.c.expires_at.label("payment_expires_at"))
            .join(payments, payments.c.id == payment_attempts.c.payment_id)
            .where(payment_attempts.c.status.in_(IN_FLIGHT), due)
            .order_by(payment_attempts.c.created_at, payment_attempts.c.id)
            .limit(limit)
        )
        if self._connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=payment_attempts)
        return [_schedule_from(row) for row in self._connection.execute(query)]

    def schedule_of(self, attempt_id: str) -> QuerySchedule | None:
        row = self._connection.execute(
            select(payment_attempts, payments.c.expires_at.label("payment_expires_at"))
            .join(payments, payments.c.id == payment_attempts.c.payment_id)
            .where(payment_attempts.c.id == attempt_id)
        ).first()
        return None if row is None else _schedule_from(row)

    def claim(self, attempt_id: str, *, expected_count: int, next_query_at: datetime, now: datetime) -> bool:
        result = self._connection.execute(
            update(payment_attempts)
            .where(payment_attempts.c.id == attempt_id, payment_attempts.c.query_count == expected_count)
            .values(query_count=expected_count + 1, next_query_at=next_query_at, last_queried_at=now)
        )
        return result.rowcount == 1


class SqlOperatorAlertRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def raise_alert(self, alert: OperatorAlert) -> bool:
        # A savepoint keeps the unit of work usable after a duplicate key on PostgreSQL.
        try:
            with self._connection.begin_nested():
                self._connection.execute(
                    insert(operator_alerts).values(
                        id=alert.id,
                        kind=alert.kind.value,
                        severity=alert.severity.value,
                        dedupe_key=alert.dedupe_key,
                        subject_id=alert.subject_id,
                        message=alert.message,
                        details=json.dumps(dict(alert.details), ensure_ascii=False, sort_keys=True),
                        status=alert.status.value,
                        created_at=alert.created_at,
                        resolved_at=alert.resolved_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    def open_alerts(self, *, limit: int = 100) -> Sequence[OperatorAlert]:
        rows = self._connection.execute(
            select(operator_alerts)
            .where(operator_alerts.c.status == AlertStatus.OPEN.value)
            .order_by(operator_alerts.c.created_at.desc(), operator_alerts.c.id.desc())
            .limit(limit)
        )
        return [_alert_from(row) for row in rows]


def _schedule_from(row: Any) -> QuerySchedule:
    return QuerySchedule(
        attempt=_attempt_from(row),
        query_count=int(row.query_count),
        next_query_at=row.next_query_at,
        last_queried_at=row.last_queried_at,
        payment_expires_at=row.payment_expires_at,
    )


def _alert_from(row: Any) -> OperatorAlert:
    return OperatorAlert(
        id=row.id,
        kind=AlertKind(row.kind),
        severity=AlertSeverity(row.severity),
        dedupe_key=row.dedupe_key,
        subject_id=row.subject_id,
        message=row.message,
        created_at=row.created_at,
        details=json.loads(row.details),
        status=AlertStatus(row.status),
        resolved_at=row.resolved_at,
    )
