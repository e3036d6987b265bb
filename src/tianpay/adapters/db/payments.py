"""The payment repository over ``payments``, ``payment_attempts``, ``payment_transitions`` and
``late_success_refunds``, on the unit of work's connection.

Status changes are compare-and-set (``UPDATE … WHERE id = ? AND status = ?``, rowcount checked), so
two processes racing on one payment (a bank notification and the expiry job, say) can never both win.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tianpay.domain.errors import Conflict
from tianpay.domain.money import Currency, Money
from tianpay.domain.payment import (
    AttemptStatus,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    PaymentStatus,
)
from tianpay.ports.payments import LateSuccessRefund, PagePosition, PaymentFilter, Transition

from .tables import late_success_refunds, payment_attempts, payment_transitions, payments


class SqlPaymentRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, payment: Payment) -> None:
        # No savepoint around the insert: it cost a SAVEPOINT and a RELEASE per payment created, and
        # only served a caller that catches the Conflict and carries on in the same transaction,
        # which none does. services.payments._create inserts inside run_idempotent's unit of work,
        # whose claim on (merchant, "payments", out_trade_no) already stopped any second payment
        # with that number; services.wallet.start_top_up uses the new payment's own id as the
        # out_trade_no. Should a duplicate reach the database anyway, the Conflict below leaves
        # PostgreSQL's transaction aborted, and both callers let it leave the unit of work, which
        # rolls everything back. A caller that wants to catch Conflict and go on writing must bring
        # the savepoint back.
        try:
            self._connection.execute(insert(payments).values(_payment_row(payment)))
        except IntegrityError as error:
            raise Conflict(
                f"out_trade_no {payment.out_trade_no!r} is already used by another payment",
                param="out_trade_no",
            ) from error

    def get(self, payment_id: str, *, merchant_id: str | None = None) -> Payment | None:
        query = select(payments).where(payments.c.id == payment_id)
        if merchant_id is not None:
            query = query.where(payments.c.merchant_id == merchant_id)
        row = self._connection.execute(query).first()
        return None if row is None else _payment_from(row)

    def id_of_out_trade_no(self, merchant_id: str, out_trade_no: str) -> str | None:
        found = self._connection.execute(
            select(payments.c.id).where(payments.c.merchant_id == merchant_id, payments.c.out_trade_no == out_trade_no)
        ).scalar_one_or_none()
        return None if found is None else str(found)

    def get_for_update(self, payment_id: str) -> Payment | None:
        # SQLite ignores FOR UPDATE; there every write transaction starts with BEGIN IMMEDIATE, which
        # already serialises writers (see engine.py).
        row = self._connection.execute(
            select(payments).where(payments.c.id == payment_id).with_for_update()
        ).first()
        return None if row is None else _payment_from(row)

    def update(self, payment: Payment, *, expected: PaymentStatus) -> bool:
        result = self._connection.execute(
            update(payments)
            .where(payments.c.id == payment.id, payments.c.status == expected.value)
            .values(
                status=payment.status.value,
                refunded_minor=payment.refunded_amount.minor,
                fee_minor=payment.fee_amount.minor,
                succeeded_attempt_id=payment.succeeded_attempt_id,
                updated_at=payment.updated_at,
            )
        )
        return result.rowcount == 1

    def list_for_merchant(
        self, merchant_id: str, filters: PaymentFilter, *, after: PagePosition | None, limit: int
    ) -> Sequence[Payment]:
        query = _filtered(select(payments).where(payments.c.merchant_id == merchant_id), filters)
        if after is not None:
            # The first condition alone is an index bound: without it PostgreSQL would walk the
            # index from the newest payment to the cursor before the OR could skip anything.
            query = query.where(
                payments.c.created_at <= after.created_at,
                or_(
                    payments.c.created_at < after.created_at,
                    and_(payments.c.created_at == after.created_at, payments.c.id < after.id),
                ),
            )
        rows = self._connection.execute(
            query.order_by(payments.c.created_at.desc(), payments.c.id.desc()).limit(limit)
        )
        return [_payment_from(row) for row in rows]

    def iter_for_merchant(
        self, merchant_id: str, filters: PaymentFilter, *, batch_size: int = 500
    ) -> Iterator[Payment]:
        query = _filtered(select(payments).where(payments.c.merchant_id == merchant_id), filters)
        query = query.order_by(payments.c.created_at.desc(), payments.c.id.desc())
        # yield_per streams: psycopg opens a named (server-side) cursor, SQLite steps its cursor.
        result = self._connection.execute(query.execution_options(yield_per=batch_size))
        try:
            for row in result:
                yield _payment_from(row)
        finally:
            result.close()

    def due_for_expiry(self, now: datetime, *, limit: int) -> Sequence[Payment]:
        query = (
            select(payments)
            .where(payments.c.status == PaymentStatus.CREATED.value, payments.c.expires_at <= now)
            .order_by(payments.c.expires_at, payments.c.id)
            .limit(limit)
        )
        if self._connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [_payment_from(row) for row in self._connection.execute(query)]

    def add_attempt(self, attempt: PaymentAttempt) -> None:
        self._connection.execute(
            insert(payment_attempts).values(
                id=attempt.id,
                payment_id=attempt.payment_id,
                channel=attempt.channel,
                bank=attempt.bank,
                status=attempt.status.value,
                amount_minor=attempt.amount.minor,
                currency=attempt.amount.currency.code,
                bank_reference=attempt.bank_reference,
                failure_code=attempt.failure_code,
                failure_message=attempt.failure_message,
                created_at=attempt.created_at,
                updated_at=attempt.updated_at,
            )
        )

    def get_attempt(self, attempt_id: str) -> PaymentAttempt | None:
        row = self._connection.execute(
            select(payment_attempts).where(payment_attempts.c.id == attempt_id)
        ).first()
        return None if row is None else _attempt_from(row)

    def attempts_of(self, payment_id: str) -> Sequence[PaymentAttempt]:
        rows = self._connection.execute(
            select(payment_attempts)
            .where(payment_attempts.c.payment_id == payment_id)
            .order_by(payment_attempts.c.created_at, payment_attempts.c.id)
        )
        return [_attempt_from(row) for row in rows]

    def update_attempt(self, attempt: PaymentAttempt, *, expected: AttemptStatus) -> bool:
        result = self._connection.execute(
            update(payment_attempts)
            .where(payment_attempts.c.id == attempt.id, payment_attempts.c.status == expected.value)
            .values(
                status=attempt.status.value,
                bank_reference=attempt.bank_reference,
                failure_code=attempt.failure_code,
                failure_message=attempt.failure_message,
                updated_at=attempt.updated_at,
            )
        )
        return result.rowcount == 1

    def record_transition(self, transition: Transition) -> None:
        self._connection.execute(
            insert(payment_transitions).values(
                payment_id=transition.payment_id,
                attempt_id=transition.attempt_id,
                from_status=transition.from_status,
                to_status=transition.to_status,
                event=transition.event,
                cause=transition.cause,
                created_at=transition.created_at,
            )
        )

    def record_transitions(self, transitions: Sequence[Transition]) -> None:
        if not transitions:
            return
        # One multi-row INSERT: the rows take their ids in the order of the VALUES list, which is
        # the order transitions_of reads them back in.
        self._connection.execute(
            insert(payment_transitions).values(
                [
                    {
                        "payment_id": t.payment_id,
                        "attempt_id": t.attempt_id,
                        "from_status": t.from_status,
                        "to_status": t.to_status,
                        "event": t.event,
                        "cause": t.cause,
                        "created_at": t.created_at,
                    }
                    for t in transitions
                ]
            )
        )

    def transitions_of(self, payment_id: str) -> Sequence[Transition]:
        t = payment_transitions.c
        rows = self._connection.execute(
            select(t.payment_id, t.attempt_id, t.from_status, t.to_status, t.event, t.cause, t.created_at)
            .where(t.payment_id == payment_id)
            .order_by(t.id)
        )
        return [Transition(*row) for row in rows]

    def add_late_success_refund(self, refund: LateSuccessRefund) -> None:
        self._connection.execute(
            insert(late_success_refunds).values(
                attempt_id=refund.attempt_id,
                payment_id=refund.payment_id,
                bank=refund.bank,
                amount_minor=refund.amount.minor,
                currency=refund.amount.currency.code,
                bank_reference=refund.bank_reference,
                status=refund.status,
                created_at=refund.created_at,
            )
        )

    def late_success_refunds_of(self, payment_id: str) -> Sequence[LateSuccessRefund]:
        rows = self._connection.execute(
            select(late_success_refunds)
            .where(late_success_refunds.c.payment_id == payment_id)
            .order_by(late_success_refunds.c.created_at, late_success_refunds.c.attempt_id)
        )
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
            for row in rows
        ]


def _filtered(query: Select[Any], filters: PaymentFilter) -> Select[Any]:
    if filters.status is not None:
        query = query.where(payments.c.status == filters.status.value)
    if filters.method is not None:
        query = query.where(payments.c.method == filters.method.value)
    if filters.created_from is not None:
        query = query.where(payments.c.created_at >= filters.created_from)
    if filters.created_before is not None:
        query = query.where(payments.c.created_at < filters.created_before)
    if filters.out_trade_no is not None:
        query = query.where(payments.c.out_trade_no == filters.out_trade_no)
    if filters.amount_min_minor is not None:
        query = query.where(payments.c.amount_minor >= filters.amount_min_minor)
    if filters.amount_max_minor is not None:
        query = query.where(payments.c.amount_minor <= filters.amount_max_minor)
    if filters.bank is not None:
        # The bank that took the money when the payment succeeded, else the bank it named: the
        # same "bank" the statistics use (a cashier payment names none until the payer chooses).
        paid_at_bank = exists().where(
            payment_attempts.c.id == payments.c.succeeded_attempt_id, payment_attempts.c.bank == filters.bank
        )
        named_bank = and_(payments.c.succeeded_attempt_id.is_(None), payments.c.bank == filters.bank)
        query = query.where(or_(paid_at_bank, named_bank))
    return query


def _payment_row(payment: Payment) -> dict[str, object]:
    return {
        "id": payment.id,
        "merchant_id": payment.merchant_id,
        "out_trade_no": payment.out_trade_no,
        "amount_minor": payment.amount.minor,
        "currency": payment.amount.currency.code,
        "method": payment.method.value,
        "bank": payment.bank,
        "subject": payment.subject,
        "description": payment.description,
        "notify_url": payment.notify_url,
        "return_url": payment.return_url,
        "metadata": json.dumps(dict(payment.metadata), sort_keys=True, ensure_ascii=False),
        "expires_at": payment.expires_at,
        "status": payment.status.value,
        "refunded_minor": payment.refunded_amount.minor,
        "fee_minor": payment.fee_amount.minor,
        "succeeded_attempt_id": payment.succeeded_attempt_id,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    }


def _payment_from(row: Any) -> Payment:
    currency = Currency.parse(row.currency)
    return Payment(
        id=row.id,
        merchant_id=row.merchant_id,
        out_trade_no=row.out_trade_no,
        amount=Money(int(row.amount_minor), currency),
        method=PaymentMethod(row.method),
        bank=row.bank,
        subject=row.subject,
        description=row.description,
        notify_url=row.notify_url,
        return_url=row.return_url,
        metadata=json.loads(row.metadata),
        expires_at=row.expires_at,
        status=PaymentStatus(row.status),
        refunded_amount=Money(int(row.refunded_minor), currency),
        fee_amount=Money(int(row.fee_minor), currency),
        created_at=row.created_at,
        updated_at=row.updated_at,
        succeeded_attempt_id=row.succeeded_attempt_id,
    )


def _attempt_from(row: Any) -> PaymentAttempt:
    return PaymentAttempt(
        id=row.id,
        payment_id=row.payment_id,
        channel=row.channel,
        bank=row.bank,
        status=AttemptStatus(row.status),
        amount=Money(int(row.amount_minor), Currency.parse(row.currency)),
        created_at=row.created_at,
        updated_at=row.updated_at,
        bank_reference=row.bank_reference,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
    )
