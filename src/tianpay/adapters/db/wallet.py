"""The wallet repository over ``wallet_payments`` and ``wallet_top_ups``; history from ``postings``.

A wallet's history is read straight from its ledger account's postings, so the page can never show a
movement the ledger does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from tianpay.domain.ledger import member_wallet
from tianpay.domain.money import Currency, Money
from tianpay.domain.wallet import ThenPayStatus, TopUp, TopUpStatus, WalletLine, WalletPayment

from .tables import journal_entries, ledger_accounts, postings, wallet_payments, wallet_top_ups


class SqlWalletRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add_payment(self, payment: WalletPayment) -> None:
        self._connection.execute(
            insert(wallet_payments).values(
                attempt_id=payment.attempt_id,
                payment_id=payment.payment_id,
                member_id=payment.member_id,
                amount_minor=payment.amount.minor,
                currency=payment.amount.currency.code,
                created_at=payment.created_at,
            )
        )

    def payment_of_attempt(self, attempt_id: str) -> WalletPayment | None:
        query = select(wallet_payments).where(wallet_payments.c.attempt_id == attempt_id)
        row = self._connection.execute(query).first()
        if row is None:
            return None
        amount = Money(int(row.amount_minor), Currency.parse(row.currency))
        return WalletPayment(row.attempt_id, row.payment_id, row.member_id, amount, row.created_at)

    def add_top_up(self, top_up: TopUp) -> None:
        self._connection.execute(
            insert(wallet_top_ups).values(
                payment_id=top_up.payment_id,
                member_id=top_up.member_id,
                status=top_up.status.value,
                then_pay_payment_id=top_up.then_pay_payment_id,
                then_pay_status=None if top_up.then_pay_status is None else top_up.then_pay_status.value,
                then_pay_failure=top_up.then_pay_failure,
                created_at=top_up.created_at,
                credited_at=top_up.credited_at,
            )
        )

    def top_up(self, payment_id: str) -> TopUp | None:
        row = self._connection.execute(select(wallet_top_ups).where(wallet_top_ups.c.payment_id == payment_id)).first()
        return None if row is None else _top_up_from(row)

    def mark_credited(self, payment_id: str, now: datetime) -> bool:
        result = self._connection.execute(
            update(wallet_top_ups)
            .where(wallet_top_ups.c.payment_id == payment_id, wallet_top_ups.c.status == TopUpStatus.CREATED.value)
            .values(status=TopUpStatus.CREDITED.value, credited_at=now)
        )
        return result.rowcount == 1

    def awaiting_then_pay(self, *, limit: int) -> Sequence[TopUp]:
        rows = self._connection.execute(
            select(wallet_top_ups)
            .where(
                wallet_top_ups.c.then_pay_status == ThenPayStatus.AWAITING.value,
                wallet_top_ups.c.status == TopUpStatus.CREDITED.value,
            )
            .order_by(wallet_top_ups.c.credited_at)
            .limit(limit)
        )
        return [_top_up_from(row) for row in rows]

    def set_then_pay(self, payment_id: str, status: ThenPayStatus, failure: str | None = None) -> bool:
        result = self._connection.execute(
            update(wallet_top_ups)
            .where(
                wallet_top_ups.c.payment_id == payment_id,
                wallet_top_ups.c.then_pay_status == ThenPayStatus.AWAITING.value,
            )
            .values(then_pay_status=status.value, then_pay_failure=failure)
        )
        return result.rowcount == 1

    def history(self, member_id: str, *, limit: int) -> Sequence[WalletLine]:
        code = member_wallet(member_id).code
        rows = self._connection.execute(
            select(
                journal_entries.c.created_at,
                journal_entries.c.event,
                journal_entries.c.source_id,
                postings.c.amount_minor,
                postings.c.currency,
            )
            .select_from(
                postings.join(ledger_accounts, ledger_accounts.c.id == postings.c.account_id).join(
                    journal_entries, journal_entries.c.id == postings.c.entry_id
                )
            )
            .where(ledger_accounts.c.code == code)
            .order_by(postings.c.id.desc())
            .limit(limit)
        )
        # A wallet is a liability: a credit (negative posting) is money in, as the member reads it.
        return [
            WalletLine(row.created_at, row.event, row.source_id, _money_in(row.amount_minor, row.currency))
            for row in rows
        ]


def _money_in(amount_minor: int, currency: str) -> Money:
    return -Money(int(amount_minor), Currency.parse(currency))


def _top_up_from(row: Any) -> TopUp:
    return TopUp(
        payment_id=row.payment_id,
        member_id=row.member_id,
        status=TopUpStatus(row.status),
        created_at=row.created_at,
        then_pay_payment_id=row.then_pay_payment_id,
        then_pay_status=None if row.then_pay_status is None else ThenPayStatus(row.then_pay_status),
        then_pay_failure=row.then_pay_failure,
        credited_at=row.credited_at,
    )
