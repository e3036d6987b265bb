"""Settlement settings, settlements and their lines on the unit of work's connection.

The settlement insert is ``ON CONFLICT DO NOTHING`` on (merchant, business date) and the line insert
on the entry id: on PostgreSQL a second worker's insert waits for the first to commit and then
inserts nothing, so a date is settled once and an entry is settled at most once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tianpay.domain.ledger import PLATFORM_FEE_INCOME, merchant_pending
from tianpay.domain.member import SealedPii
from tianpay.domain.merchant import MerchantStatus
from tianpay.domain.money import Currency
from tianpay.domain.posting_rules import SETTLEMENT_SETTLED
from tianpay.domain.settlement import (
    DEFAULT_CYCLE_DAYS,
    LineKind,
    PendingMovement,
    Settlement,
    SettlementLine,
    SettlementSettings,
    SettlementStatus,
    Totals,
)
from tianpay.ports.settlements import MerchantCycle, SettlementPage

from .tables import (
    journal_entries,
    ledger_accounts,
    merchant_settlement_settings,
    merchants,
    payments,
    postings,
    refunds,
    settlement_lines,
    settlements,
)

# Look-ups of the merchant's own numbers go in chunks, so a large day never builds one huge IN list.
_CHUNK = 500


class SqlSettlementRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def _insert(self) -> Any:
        return postgresql.insert if self._connection.dialect.name == "postgresql" else sqlite.insert

    # ---- settings ------------------------------------------------------------------------------------

    def settings(self, merchant_id: str) -> SettlementSettings | None:
        t = merchant_settlement_settings
        row = self._connection.execute(select(t).where(t.c.merchant_id == merchant_id)).first()
        return None if row is None else _settings(row)

    def save_settings(self, settings: SettlementSettings) -> None:
        values = _settings_row(settings)
        stmt = self._insert()(merchant_settlement_settings).values(values)
        changes = {key: value for key, value in values.items() if key != "merchant_id"}
        self._connection.execute(stmt.on_conflict_do_update(index_elements=["merchant_id"], set_=changes))

    def merchant_cycles(self) -> Sequence[MerchantCycle]:
        t = merchant_settlement_settings
        query = (
            select(merchants.c.id, func.coalesce(t.c.cycle_days, DEFAULT_CYCLE_DAYS))
            .select_from(merchants.outerjoin(t, t.c.merchant_id == merchants.c.id))
            .where(merchants.c.status == MerchantStatus.ACTIVE.value)
            .order_by(merchants.c.id)
        )
        return [MerchantCycle(merchant_id, int(cycle)) for merchant_id, cycle in self._connection.execute(query)]

    # ---- what is left to settle ------------------------------------------------------------------------

    def pending_movements(self, merchant_id: str, *, before: datetime) -> Sequence[PendingMovement]:
        pending_id = self._account_id(merchant_pending(merchant_id).code)
        if pending_id is None:
            return []
        fee_id = self._account_id(PLATFORM_FEE_INCOME.code)
        on_pending = select(postings.c.entry_id).where(postings.c.account_id == pending_id)
        settled = select(settlement_lines.c.entry_id).where(settlement_lines.c.entry_id == journal_entries.c.id)
        pending_sum = func.sum(case((postings.c.account_id == pending_id, postings.c.amount_minor), else_=0))
        fee_sum = func.sum(case((postings.c.account_id == fee_id, postings.c.amount_minor), else_=0))
        query = (
            select(
                journal_entries.c.id,
                journal_entries.c.event,
                journal_entries.c.source_id,
                journal_entries.c.created_at,
                pending_sum.label("pending"),
                fee_sum.label("fee"),
            )
            .join(postings, postings.c.entry_id == journal_entries.c.id)
            .where(
                journal_entries.c.id.in_(on_pending),
                journal_entries.c.created_at < before,
                journal_entries.c.event != SETTLEMENT_SETTLED,
                ~settled.exists(),
            )
            .group_by(
                journal_entries.c.id, journal_entries.c.event, journal_entries.c.source_id, journal_entries.c.created_at
            )
            .order_by(journal_entries.c.created_at, journal_entries.c.id)
        )
        rows = self._connection.execute(query).all()
        references = self._references(row.source_id for row in rows)
        # Postings are signed debit-positive; pending is a liability and fee income revenue, so the
        # merchant's gain and the fee taken are both the negated sums.
        return [
            PendingMovement(
                entry_id=row.id,
                event=row.event,
                source_id=row.source_id,
                reference=references.get(row.source_id),
                created_at=row.created_at,
                pending_minor=-int(row.pending),
                fee_minor=-int(row.fee),
            )
            for row in rows
        ]

    def _account_id(self, code: str) -> int | None:
        value = self._connection.execute(
            select(ledger_accounts.c.id).where(ledger_accounts.c.code == code)
        ).scalar_one_or_none()
        return None if value is None else int(value)

    def _references(self, source_ids: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(source_ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            for source_id, number in self._connection.execute(
                select(payments.c.id, payments.c.out_trade_no).where(payments.c.id.in_(chunk))
            ):
                found[source_id] = number
            for source_id, number in self._connection.execute(
                select(refunds.c.id, refunds.c.out_refund_no).where(
                    refunds.c.id.in_(chunk), refunds.c.out_refund_no.is_not(None)
                )
            ):
                found[source_id] = number
        return found

    # ---- settlements -----------------------------------------------------------------------------------

    def get(self, settlement_id: str, *, merchant_id: str | None = None) -> Settlement | None:
        query = select(settlements).where(settlements.c.id == settlement_id)
        if merchant_id is not None:
            query = query.where(settlements.c.merchant_id == merchant_id)
        row = self._connection.execute(query).first()
        return None if row is None else _settlement(row)

    def of_date(self, merchant_id: str, business_date: date) -> Settlement | None:
        row = self._connection.execute(
            select(settlements).where(
                settlements.c.merchant_id == merchant_id, settlements.c.business_date == business_date.isoformat()
            )
        ).first()
        return None if row is None else _settlement(row)

    def add(self, settlement: Settlement) -> bool:
        stmt = (
            self._insert()(settlements)
            .values(_settlement_row(settlement))
            .on_conflict_do_nothing(index_elements=["merchant_id", "business_date"])
            .returning(settlements.c.id)
        )
        return self._connection.execute(stmt).first() is not None

    def replace(self, settlement: Settlement, *, expected: SettlementStatus) -> bool:
        values = _settlement_row(settlement)
        for key in ("id", "merchant_id", "business_date", "created_at"):
            values.pop(key)
        result = self._connection.execute(
            update(settlements)
            .where(settlements.c.id == settlement.id, settlements.c.status == expected.value)
            .values(values)
        )
        return result.rowcount == 1

    def add_lines(self, settlement_id: str, lines: Sequence[SettlementLine]) -> int:
        inserted = 0
        for start in range(0, len(lines), _CHUNK):
            rows = [_line_row(settlement_id, line) for line in lines[start : start + _CHUNK]]
            stmt = (
                self._insert()(settlement_lines)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["entry_id"])
                .returning(settlement_lines.c.entry_id)
            )
            inserted += len(self._connection.execute(stmt).all())
        return inserted

    def lines(self, settlement_id: str) -> Sequence[SettlementLine]:
        t = settlement_lines
        query = select(t).where(t.c.settlement_id == settlement_id).order_by(t.c.id)
        return [_line(row) for row in self._connection.execute(query)]

    def page(
        self,
        merchant_id: str,
        *,
        date_from: date | None = None,
        date_to: date | None = None,
        starting_after: str | None = None,
        limit: int = 10,
    ) -> SettlementPage:
        t = settlements.c
        query = select(settlements).where(t.merchant_id == merchant_id)
        if date_from is not None:
            query = query.where(t.business_date >= date_from.isoformat())
        if date_to is not None:
            query = query.where(t.business_date <= date_to.isoformat())
        if starting_after is not None:
            cursor = self._connection.execute(
                select(t.business_date, t.id).where(t.id == starting_after, t.merchant_id == merchant_id)
            ).first()
            if cursor is not None:
                query = query.where(
                    or_(
                        t.business_date < cursor.business_date,
                        and_(t.business_date == cursor.business_date, t.id < cursor.id),
                    )
                )
        rows = self._connection.execute(query.order_by(t.business_date.desc(), t.id.desc()).limit(limit + 1)).all()
        return SettlementPage(tuple(_settlement(row) for row in rows[:limit]), has_more=len(rows) > limit)

    def awaiting_payout(self, limit: int) -> list[Settlement]:
        s = settlements.c
        m = merchant_settlement_settings.c
        return self._auto_payable(
            limit,
            s.status == SettlementStatus.SETTLED.value,
            s.payout_id.is_(None),
            s.net_minor > 0,
            s.net_minor >= m.minimum_payout_minor,
        )

    def attach_payout(self, settlement_id: str, payout_id: str) -> bool:
        result = self._connection.execute(
            update(settlements)
            .where(
                settlements.c.id == settlement_id,
                settlements.c.status == SettlementStatus.SETTLED.value,
                settlements.c.payout_id.is_(None),
            )
            .values(payout_id=payout_id)
        )
        return result.rowcount == 1

    def mark_paid(self, settlement_id: str, payout_id: str, now: datetime) -> bool:
        result = self._connection.execute(
            update(settlements)
            .where(
                settlements.c.id == settlement_id,
                settlements.c.status == SettlementStatus.SETTLED.value,
                or_(settlements.c.payout_id.is_(None), settlements.c.payout_id == payout_id),
            )
            .values(status=SettlementStatus.PAID.value, payout_id=payout_id, paid_at=now, updated_at=now)
        )
        return result.rowcount == 1

    def mark_payout_failed(
        self, settlement_id: str, payout_id: str, *, expected: SettlementStatus, now: datetime
    ) -> bool:
        result = self._connection.execute(
            update(settlements)
            .where(
                settlements.c.id == settlement_id,
                settlements.c.status == expected.value,
                settlements.c.payout_id == payout_id,
            )
            .values(status=SettlementStatus.PAYOUT_FAILED.value, paid_at=None, updated_at=now)
        )
        return result.rowcount == 1

    def reattach_payout(self, settlement_id: str, failed_payout_id: str, payout_id: str, now: datetime) -> bool:
        result = self._connection.execute(
            update(settlements)
            .where(
                settlements.c.id == settlement_id,
                settlements.c.status == SettlementStatus.PAYOUT_FAILED.value,
                settlements.c.payout_id == failed_payout_id,
            )
            .values(status=SettlementStatus.SETTLED.value, payout_id=payout_id, updated_at=now)
        )
        return result.rowcount == 1

    def payout_failed_awaiting(self, limit: int) -> list[Settlement]:
        return self._auto_payable(limit, settlements.c.status == SettlementStatus.PAYOUT_FAILED.value)

    def _auto_payable(self, limit: int, *conditions: ColumnElement[bool]) -> list[Settlement]:
        """Settlements matching ``conditions`` of merchants paid out automatically to an account on file."""
        s = settlements.c
        m = merchant_settlement_settings.c
        query = (
            select(settlements)
            .join(merchant_settlement_settings, m.merchant_id == s.merchant_id)
            .where(*conditions, m.auto_payout.is_(True), m.account_no_ciphertext.is_not(None))
            .order_by(s.business_date, s.id)
            .limit(limit)
        )
        return [_settlement(row) for row in self._connection.execute(query)]


def _settings(row: Any) -> SettlementSettings:
    sealed = (
        None
        if row.account_no_ciphertext is None
        else SealedPii(row.account_no_ciphertext, row.account_no_fingerprint, row.account_no_masked)
    )
    return SettlementSettings(
        merchant_id=row.merchant_id,
        cycle_days=int(row.cycle_days),
        minimum_payout_minor=int(row.minimum_payout_minor),
        auto_payout=bool(row.auto_payout),
        account_bank=row.account_bank,
        account_no=sealed,
        account_name=row.account_name,
        updated_at=row.updated_at,
    )


def _settings_row(settings: SettlementSettings) -> dict[str, Any]:
    sealed = settings.account_no
    return {
        "merchant_id": settings.merchant_id,
        "cycle_days": settings.cycle_days,
        "minimum_payout_minor": settings.minimum_payout_minor,
        "auto_payout": settings.auto_payout,
        "account_bank": settings.account_bank,
        "account_no_ciphertext": None if sealed is None else sealed.ciphertext,
        "account_no_fingerprint": None if sealed is None else sealed.fingerprint,
        "account_no_masked": None if sealed is None else sealed.masked,
        "account_name": settings.account_name,
        "updated_at": settings.updated_at,
    }


def _settlement(row: Any) -> Settlement:
    return Settlement(
        id=row.id,
        merchant_id=row.merchant_id,
        business_date=date.fromisoformat(row.business_date),
        status=SettlementStatus(row.status),
        currency=Currency.parse(row.currency),
        totals=Totals(int(row.line_count), int(row.gross_minor), int(row.refunds_minor), int(row.fees_minor)),
        entry_id=row.entry_id,
        payout_id=row.payout_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        settled_at=row.settled_at,
        paid_at=row.paid_at,
    )


def _settlement_row(settlement: Settlement) -> dict[str, Any]:
    totals = settlement.totals
    return {
        "id": settlement.id,
        "merchant_id": settlement.merchant_id,
        "business_date": settlement.business_date.isoformat(),
        "status": settlement.status.value,
        "currency": settlement.currency.code,
        "line_count": totals.count,
        "gross_minor": totals.gross_minor,
        "refunds_minor": totals.refunds_minor,
        "fees_minor": totals.fees_minor,
        "net_minor": totals.net_minor,
        "entry_id": settlement.entry_id,
        "payout_id": settlement.payout_id,
        "created_at": settlement.created_at,
        "updated_at": settlement.updated_at,
        "settled_at": settlement.settled_at,
        "paid_at": settlement.paid_at,
    }


def _line(row: Any) -> SettlementLine:
    return SettlementLine(
        entry_id=row.entry_id,
        kind=LineKind(row.kind),
        source_id=row.source_id,
        reference=row.reference,
        occurred_at=row.occurred_at,
        amount_minor=int(row.amount_minor),
        fee_minor=int(row.fee_minor),
    )


def _line_row(settlement_id: str, line: SettlementLine) -> dict[str, Any]:
    return {
        "settlement_id": settlement_id,
        "entry_id": line.entry_id,
        "kind": line.kind.value,
        "source_id": line.source_id,
        "reference": line.reference,
        "occurred_at": line.occurred_at,
        "amount_minor": line.amount_minor,
        "fee_minor": line.fee_minor,
    }
