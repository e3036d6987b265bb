"""The refund repository over ``refunds`` and ``refund_transitions``, on the unit of work's connection.

It also owns the two writes refunds make elsewhere: the payment's ``refunded_minor`` (conditional
increments that keep it between zero and the amount, whatever runs concurrently) and the status of
``late_success_refunds`` rows, which the refund machinery works through.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from tianpay.domain.errors import Conflict
from tianpay.domain.money import Currency, Money
from tianpay.domain.payment import PaymentStatus
from tianpay.domain.refund import Refund, RefundKind, RefundStatus
from tianpay.ports.payments import LateSuccessRefund
from tianpay.ports.refunds import RefundTransition

from .tables import late_success_refunds, payments, refund_transitions, refunds

_IN_FLIGHT = [status.value for status in RefundStatus if status.is_in_flight]


class SqlRefundRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, refund: Refund) -> None:
        # No savepoint around the insert (docs/performance.md, "Claim first, no savepoint"): none of
        # the callers catches the Conflict and goes on in the same transaction. A merchant's refund
        # (services.refunds.create_refund, from the API and the portal) is inserted inside
        # run_idempotent's unit of work, whose claim on (merchant, "refunds", out_refund_no) already
        # stopped any second refund with that number; a late-success refund has no out_refund_no,
        # and NULLs never collide in the unique key. Should a duplicate reach the table anyway, the
        # Conflict below leaves PostgreSQL's transaction aborted and the unit of work rolls back.
        try:
            self._connection.execute(insert(refunds).values(_refund_row(refund)))
        except IntegrityError as error:
            raise Conflict(
                f"out_refund_no {refund.out_refund_no!r} is already used by another refund", param="out_refund_no"
            ) from error

    def get(self, refund_id: str, *, merchant_id: str | None = None) -> Refund | None:
        query = select(refunds).where(refunds.c.id == refund_id)
        if merchant_id is not None:
            query = query.where(refunds.c.merchant_id == merchant_id)
        row = self._connection.execute(query).first()
        return None if row is None else _refund_from(row)

    def id_of_out_refund_no(self, merchant_id: str, out_refund_no: str) -> str | None:
        found = self._connection.execute(
            select(refunds.c.id).where(refunds.c.merchant_id == merchant_id, refunds.c.out_refund_no == out_refund_no)
        ).scalar_one_or_none()
        return None if found is None else str(found)

    def get_for_update(self, refund_id: str) -> Refund | None:
        row = self._connection.execute(select(refunds).where(refunds.c.id == refund_id).with_for_update()).first()
        return None if row is None else _refund_from(row)

    def update(self, refund: Refund, *, expected: RefundStatus) -> bool:
        result = self._connection.execute(
            update(refunds)
            .where(refunds.c.id == refund.id, refunds.c.status == expected.value)
            .values(
                status=refund.status.value,
                bank_reference=refund.bank_reference,
                failure_code=refund.failure_code,
                failure_message=refund.failure_message,
                query_count=refund.query_count,
                next_query_at=refund.next_query_at,
                updated_at=refund.updated_at,
                succeeded_at=refund.succeeded_at,
            )
        )
        return result.rowcount == 1

    def of_payment(self, payment_id: str, *, kind: RefundKind | None = RefundKind.MERCHANT) -> Sequence[Refund]:
        query = select(refunds).where(refunds.c.payment_id == payment_id)
        if kind is not None:
            query = query.where(refunds.c.kind == kind.value)
        rows = self._connection.execute(query.order_by(refunds.c.created_at, refunds.c.id))
        return [_refund_from(row) for row in rows]

    def add_refunded(self, payment_id: str, amount: Money) -> bool:
        p = payments.c
        result = self._connection.execute(
            update(payments)
            .where(
                p.id == payment_id,
                p.status == PaymentStatus.SUCCEEDED.value,
                p.currency == amount.currency.code,
                p.refunded_minor + amount.minor <= p.amount_minor,
            )
            .values(refunded_minor=p.refunded_minor + amount.minor)
        )
        return result.rowcount == 1

    def give_back_refunded(self, payment_id: str, amount: Money) -> bool:
        p = payments.c
        result = self._connection.execute(
            update(payments)
            .where(p.id == payment_id, p.refunded_minor >= amount.minor)
            .values(refunded_minor=p.refunded_minor - amount.minor)
        )
        return result.rowcount == 1

    def due_for_query(self, now: datetime, *, limit: int) -> Sequence[Refund]:
        query = (
            select(refunds)
            .where(refunds.c.status.in_(_IN_FLIGHT), refunds.c.next_query_at <= now)
            .order_by(refunds.c.next_query_at, refunds.c.id)
            .limit(limit)
        )
        if self._connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [_refund_from(row) for row in self._connection.execute(query)]

    def reschedule(self, refund_id: str, *, expected: RefundStatus, next_query_at: datetime, query_count: int) -> bool:
        result = self._connection.execute(
            update(refunds)
            .where(refunds.c.id == refund_id, refunds.c.status == expected.value)
            .values(next_query_at=next_query_at, query_count=query_count)
        )
        return result.rowcount == 1

    def record_transition(self, transition: RefundTransition) -> None:
        self._connection.execute(
            insert(refund_transitions).values(
                refund_id=transition.refund_id,
                from_status=transition.from_status,
                to_status=transition.to_status,
                event=transition.event,
                cause=transition.cause,
                created_at=transition.created_at,
            )
        )

    def transitions_of(self, refund_id: str) -> Sequence[RefundTransition]:
        t = refund_transitions.c
        rows = self._connection.execute(
            select(t.refund_id, t.from_status, t.to_status, t.event, t.cause, t.created_at)
            .where(t.refund_id == refund_id)
            .order_by(t.id)
        )
        return [RefundTransition(*row) for row in rows]

    def pending_late_successes(self, *, limit: int) -> Sequence[LateSuccessRefund]:
        query = (
            select(late_success_refunds)
            .where(late_success_refunds.c.status == "pending")
            .order_by(late_success_refunds.c.created_at, late_success_refunds.c.attempt_id)
            .limit(limit)
        )
        if self._connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [
            LateSuccessRefund(
                attempt_id=row.attempt_id,
                payment_id=row.payment_id,
                bank=row.bank,
                amount=Money(int(row.amount_minor), Currency.parse(row.currency)),
                bank_reference=row.bank_reference,
                status=row.status,
                created_at=row.created_at,
            )
            for row in self._connection.execute(query)
        ]

    def set_late_success_status(self, attempt_id: str, *, expected: str, status: str) -> bool:
        result = self._connection.execute(
            update(late_success_refunds)
            .where(late_success_refunds.c.attempt_id == attempt_id, late_success_refunds.c.status == expected)
            .values(status=status)
        )
        return result.rowcount == 1


def _refund_row(refund: Refund) -> dict[str, object]:
    return {
        "id": refund.id,
        "kind": refund.kind.value,
        "payment_id": refund.payment_id,
        "merchant_id": refund.merchant_id,
        "out_refund_no": refund.out_refund_no,
        "amount_minor": refund.amount.minor,
        "currency": refund.amount.currency.code,
        "fee_returned_minor": refund.fee_returned.minor,
        "reason": refund.reason,
        "status": refund.status.value,
        "bank": refund.bank,
        "attempt_id": refund.attempt_id,
        "bank_reference": refund.bank_reference,
        "failure_code": refund.failure_code,
        "failure_message": refund.failure_message,
        "query_count": refund.query_count,
        "next_query_at": refund.next_query_at,
        "created_at": refund.created_at,
        "updated_at": refund.updated_at,
        "succeeded_at": refund.succeeded_at,
    }


def _refund_from(row: Any) -> Refund:
    currency = Currency.parse(row.currency)
    return Refund(
        id=row.id,
        kind=RefundKind(row.kind),
        payment_id=row.payment_id,
        merchant_id=row.merchant_id,
        out_refund_no=row.out_refund_no,
        amount=Money(int(row.amount_minor), currency),
        fee_returned=Money(int(row.fee_returned_minor), currency),
        reason=row.reason,
        status=RefundStatus(row.status),
        bank=row.bank,
        attempt_id=row.attempt_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        next_query_at=row.next_query_at,
        query_count=int(row.query_count),
        bank_reference=row.bank_reference,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
        succeeded_at=row.succeeded_at,
    )
