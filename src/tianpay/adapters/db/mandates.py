"""Mandates and mandate debits on the unit of work's connection; status writes are compare-and-set."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from tianpay.domain.mandate import Mandate, MandateStatus
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentStatus
from tianpay.ports.mandates import MandateDebit

from .tables import mandate_debits, mandates, payments

# A debit counts against the month unless its payment certainly moved no money.
_NOT_COUNTED = (PaymentStatus.FAILED.value, PaymentStatus.CLOSED.value)


class SqlMandateRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, mandate: Mandate) -> None:
        self._connection.execute(insert(mandates).values(_row(mandate)))

    def get(self, mandate_id: str, *, merchant_id: str | None = None) -> Mandate | None:
        query = select(mandates).where(mandates.c.id == mandate_id)
        if merchant_id is not None:
            query = query.where(mandates.c.merchant_id == merchant_id)
        row = self._connection.execute(query).first()
        return None if row is None else _mandate(row)

    def get_for_update(self, mandate_id: str) -> Mandate | None:
        row = self._connection.execute(select(mandates).where(mandates.c.id == mandate_id).with_for_update()).first()
        return None if row is None else _mandate(row)

    def update(self, mandate: Mandate, *, expected: MandateStatus) -> bool:
        values = _row(mandate)
        values.pop("id")
        result = self._connection.execute(
            update(mandates).where(mandates.c.id == mandate.id, mandates.c.status == expected.value).values(values)
        )
        return result.rowcount == 1

    def add_debit(self, debit: MandateDebit) -> None:
        self._connection.execute(
            insert(mandate_debits).values(
                payment_id=debit.payment_id, mandate_id=debit.mandate_id, period=debit.period,
                amount_minor=debit.amount_minor, created_at=debit.created_at,
            )
        )

    def debit_of(self, payment_id: str) -> MandateDebit | None:
        row = self._connection.execute(
            select(mandate_debits).where(mandate_debits.c.payment_id == payment_id)
        ).first()
        if row is None:
            return None
        return MandateDebit(row.payment_id, row.mandate_id, row.period, int(row.amount_minor), row.created_at)

    def month_total_minor(self, mandate_id: str, period: str, *, excluding_payment_id: str | None = None) -> int:
        query = (
            select(func.coalesce(func.sum(mandate_debits.c.amount_minor), 0))
            .select_from(mandate_debits.join(payments, payments.c.id == mandate_debits.c.payment_id))
            .where(
                mandate_debits.c.mandate_id == mandate_id,
                mandate_debits.c.period == period,
                payments.c.status.not_in(_NOT_COUNTED),
            )
        )
        if excluding_payment_id is not None:
            query = query.where(mandate_debits.c.payment_id != excluding_payment_id)
        return int(self._connection.execute(query).scalar_one())

    def due_for_expiry(self, today_iso: str, *, limit: int) -> Sequence[Mandate]:
        query = (
            select(mandates)
            .where(mandates.c.status == MandateStatus.ACTIVE.value, mandates.c.valid_until < today_iso)
            .limit(limit)
        )
        return [_mandate(row) for row in self._connection.execute(query)]

    def of_member(self, member_id: str) -> Sequence[Mandate]:
        query = (
            select(mandates)
            .where(mandates.c.member_id == member_id)
            .order_by(mandates.c.created_at.desc(), mandates.c.id.desc())
        )
        return [_mandate(row) for row in self._connection.execute(query)]


def _row(mandate: Mandate) -> dict[str, Any]:
    return {
        "id": mandate.id,
        "merchant_id": mandate.merchant_id,
        "member_id": mandate.member_id,
        "merchant_mandate_no": mandate.merchant_mandate_no,
        "bank": mandate.bank,
        "card_masked": mandate.card_masked,
        "max_per_debit_minor": mandate.max_per_debit.minor,
        "max_per_month_minor": mandate.max_per_month.minor,
        "currency": mandate.max_per_debit.currency.code,
        "valid_until": mandate.valid_until.isoformat(),
        "purpose": mandate.purpose,
        "status": mandate.status.value,
        "bank_ref_sealed": mandate.bank_ref_sealed,
        "failure_code": mandate.failure_code,
        "created_at": mandate.created_at,
        "updated_at": mandate.updated_at,
    }


def _mandate(row: Any) -> Mandate:
    return Mandate(
        id=row.id,
        merchant_id=row.merchant_id,
        member_id=row.member_id,
        merchant_mandate_no=row.merchant_mandate_no,
        bank=row.bank,
        card_masked=row.card_masked,
        max_per_debit=Money.cny(row.max_per_debit_minor),
        max_per_month=Money.cny(row.max_per_month_minor),
        valid_until=date.fromisoformat(row.valid_until),
        purpose=row.purpose,
        status=MandateStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        bank_ref_sealed=row.bank_ref_sealed,
        failure_code=row.failure_code,
    )
