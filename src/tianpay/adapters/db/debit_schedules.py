"""Debit schedules, bills and run claims on the unit of work's connection.

Claims and bills are inserted with ``ON CONFLICT DO NOTHING … RETURNING``: on PostgreSQL a second
worker's insert waits for the first to commit and then inserts nothing, so exactly one claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tianpay.domain.debit_schedule import AmountKind, DebitSchedule, RunStatus, ScheduleStatus
from tianpay.domain.mandate import MandateStatus
from tianpay.domain.money import Money
from tianpay.ports.debit_schedules import StaleClaim

from .tables import debit_schedule_bills, debit_schedule_runs, debit_schedules, mandates, payments


class SqlDebitScheduleRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def _insert(self) -> Any:
        return postgresql.insert if self._connection.dialect.name == "postgresql" else sqlite.insert

    def add(self, schedule: DebitSchedule) -> None:
        self._connection.execute(debit_schedules.insert().values(_row(schedule)))

    def get(self, schedule_id: str, *, merchant_id: str | None = None) -> DebitSchedule | None:
        query = select(debit_schedules).where(debit_schedules.c.id == schedule_id)
        if merchant_id is not None:
            query = query.where(debit_schedules.c.merchant_id == merchant_id)
        row = self._connection.execute(query).first()
        return None if row is None else _schedule(row)

    def of_mandate(self, mandate_id: str) -> Sequence[DebitSchedule]:
        query = select(debit_schedules).where(debit_schedules.c.mandate_id == mandate_id).order_by(
            debit_schedules.c.created_at
        )
        return [_schedule(row) for row in self._connection.execute(query)]

    def add_bill(self, schedule_id: str, period: str, amount_minor: int, created_at: datetime) -> bool:
        stmt = (
            self._insert()(debit_schedule_bills)
            .values(schedule_id=schedule_id, period=period, amount_minor=amount_minor, created_at=created_at)
            .on_conflict_do_nothing(index_elements=["schedule_id", "period"])
            .returning(debit_schedule_bills.c.period)
        )
        return self._connection.execute(stmt).first() is not None

    def bill_minor(self, schedule_id: str, period: str) -> int | None:
        t = debit_schedule_bills.c
        value = self._connection.execute(
            select(t.amount_minor).where(t.schedule_id == schedule_id, t.period == period)
        ).scalar_one_or_none()
        return None if value is None else int(value)

    def candidates(self, day_of_month: int, period: str, *, limit: int) -> Sequence[DebitSchedule]:
        s, r = debit_schedules.c, debit_schedule_runs.c
        query = (
            select(debit_schedules)
            .join(mandates, mandates.c.id == s.mandate_id)
            .outerjoin(debit_schedule_runs, and_(r.schedule_id == s.id, r.period == period))
            .where(
                s.status == ScheduleStatus.ACTIVE.value,
                s.day_of_month <= day_of_month,
                s.first_period <= period,
                mandates.c.status == MandateStatus.ACTIVE.value,
                r.schedule_id.is_(None),
            )
            .order_by(s.created_at)
            .limit(limit)
        )
        return [_schedule(row) for row in self._connection.execute(query)]

    def claim_run(self, schedule_id: str, period: str, *, worker_id: str, now: datetime) -> bool:
        stmt = (
            self._insert()(debit_schedule_runs)
            .values(schedule_id=schedule_id, period=period, status=RunStatus.CLAIMED.value, claimed_by=worker_id,
                    claimed_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["schedule_id", "period"])
            .returning(debit_schedule_runs.c.period)
        )
        return self._connection.execute(stmt).first() is not None

    def finish_run(self, schedule_id: str, period: str, status: RunStatus, *, payment_id: str | None,
                   failure_code: str | None, now: datetime) -> bool:
        r = debit_schedule_runs.c
        result = self._connection.execute(
            update(debit_schedule_runs)
            .where(r.schedule_id == schedule_id, r.period == period, r.status == RunStatus.CLAIMED.value)
            .values(status=status.value, payment_id=payment_id, failure_code=failure_code, updated_at=now)
        )
        return result.rowcount == 1

    def run_of(self, schedule_id: str, period: str) -> tuple[RunStatus, str | None, str | None] | None:
        r = debit_schedule_runs.c
        row = self._connection.execute(
            select(r.status, r.payment_id, r.failure_code).where(r.schedule_id == schedule_id, r.period == period)
        ).first()
        return None if row is None else (RunStatus(row.status), row.payment_id, row.failure_code)

    def stale_claims(self, claimed_before: datetime, *, limit: int) -> Sequence[StaleClaim]:
        r = debit_schedule_runs.c
        query = (
            select(r.schedule_id, r.period, r.claimed_by, r.claimed_at)
            .where(r.status == RunStatus.CLAIMED.value, r.claimed_at < claimed_before)
            .order_by(r.claimed_at)
            .limit(limit)
        )
        return [StaleClaim(row.schedule_id, row.period, row.claimed_by, row.claimed_at)
                for row in self._connection.execute(query)]

    def retake_claim(self, claim: StaleClaim, *, worker_id: str, now: datetime) -> bool:
        r = debit_schedule_runs.c
        result = self._connection.execute(
            update(debit_schedule_runs)
            .where(
                r.schedule_id == claim.schedule_id, r.period == claim.period, r.status == RunStatus.CLAIMED.value,
                r.claimed_by == claim.claimed_by, r.claimed_at == claim.claimed_at,
            )
            .values(claimed_by=worker_id, claimed_at=now, updated_at=now)
        )
        return result.rowcount == 1

    def payment_for(self, merchant_id: str, out_trade_no: str) -> str | None:
        p = payments.c
        value = self._connection.execute(
            select(p.id).where(p.merchant_id == merchant_id, p.out_trade_no == out_trade_no)
        ).scalar_one_or_none()
        return None if value is None else str(value)


def _row(schedule: DebitSchedule) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "merchant_id": schedule.merchant_id,
        "mandate_id": schedule.mandate_id,
        "day_of_month": schedule.day_of_month,
        "amount_kind": schedule.amount_kind.value,
        "fixed_amount_minor": None if schedule.fixed_amount is None else schedule.fixed_amount.minor,
        "currency": "CNY",
        "subject": schedule.subject,
        "first_period": schedule.first_period,
        "status": schedule.status.value,
        "created_at": schedule.created_at,
    }


def _schedule(row: Any) -> DebitSchedule:
    return DebitSchedule(
        id=row.id,
        merchant_id=row.merchant_id,
        mandate_id=row.mandate_id,
        day_of_month=row.day_of_month,
        amount_kind=AmountKind(row.amount_kind),
        fixed_amount=None if row.fixed_amount_minor is None else Money.cny(row.fixed_amount_minor),
        subject=row.subject,
        first_period=row.first_period,
        status=ScheduleStatus(row.status),
        created_at=row.created_at,
    )
