"""Fixtures for reconciliation service tests: a merchant, payments recorded through the payment
service, and a small bank whose statement is a real file written and parsed streaming.

``LedgerBank`` is a test bank at the edge (like the settable clock): it keeps the lines it would
print and serves them through the StatementChannel port as a tab-separated file with a totals
trailer, so import, hashing, staging and malformed-file handling run for real. The tests of
``test_reconciliation_at_the_banks.py`` use the real adapters and simulators instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.domain.merchant import FeePlan, FeeRate, Merchant, MerchantStatus
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentMethod, PaymentRequest
from tianpay.domain.reconciliation import business_day_bounds
from tianpay.ports.statements import (
    DownloadedStatement,
    StatementItemKind,
    StatementLine,
    StatementMalformed,
    StatementNotReady,
)
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.payments import (
    create_payment,
    create_pos_payment,
    record_attempt_succeeded,
    start_attempt,
)
from tianpay.services.reconciliation import ReconciliationPolicy

MERCHANT_ID = "mch_recon"
# 0.60 % at the cashier (a ¥100.00 payment pays ¥0.60), 0.50 % for POS.
FEE_RATES = (FeeRate("cashier", 60), FeeRate("pos", 50))
BUSINESS_DATE = date(2026, 11, 26)
_orders = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Row:
    kind: StatementItemKind
    bank_ref: str
    amount_minor: int
    fee_minor: int = 0
    platform_ref: str | None = None
    switch_ref: str | None = None
    original_ref: str | None = None


@dataclass
class LedgerBank:
    """A statement channel over lines kept in memory, rendered to a file on download."""

    code: str
    days: dict[date, list[Row]] = field(default_factory=dict)
    # When set, the trailer lies by this much, so the file fails its own totals check at the end.
    corrupt_total_by: int = 0
    downloads: int = 0

    def add(self, day: date, row: Row) -> None:
        self.days.setdefault(day, []).append(row)

    def download_statement(self, statement_date: date, into: Path) -> DownloadedStatement:
        if statement_date not in self.days:
            raise StatementNotReady(f"{self.code} has not closed {statement_date}")
        self.downloads += 1
        rows = self.days[statement_date]
        with into.open("w", encoding="utf-8") as out:
            out.write(f"#{self.code}\t{statement_date.isoformat()}\n")
            for row in rows:
                out.write(
                    "\t".join(
                        [row.kind.value, row.bank_ref, str(row.amount_minor), str(row.fee_minor),
                         row.platform_ref or "", row.switch_ref or "", row.original_ref or ""]
                    )
                    + "\n"
                )
            total = sum(r.amount_minor for r in rows) + self.corrupt_total_by
            out.write(f"#total\t{len(rows)}\t{total}\t{sum(r.fee_minor for r in rows)}\n")
        return DownloadedStatement(self.code, statement_date, into, into.name)

    def read_statement(self, path: Path, statement_date: date) -> Iterator[StatementLine]:
        count = amount = fee = 0
        declared: list[str] | None = None
        with path.open(encoding="utf-8") as lines:
            for number, text in enumerate(lines, start=1):
                fields = text.rstrip("\n").split("\t")
                if fields[0] == "#total":
                    declared = fields[1:]
                    continue
                if fields[0].startswith("#"):
                    continue
                kind, bank_ref, amount_text, fee_text, platform_ref, switch_ref, original_ref = fields
                count += 1
                amount += int(amount_text)
                fee += int(fee_text)
                yield StatementLine(
                    bank=self.code, statement_date=statement_date, line_no=number - 1,
                    kind=StatementItemKind(kind), bank_ref=bank_ref, amount_minor=int(amount_text),
                    fee_minor=int(fee_text), platform_ref=platform_ref or None, switch_ref=switch_ref or None,
                    original_ref=original_ref or None,
                )
        if declared != [str(count), str(amount), str(fee)]:
            raise StatementMalformed(f"the lines add up to {count}/{amount}/{fee}, the trailer says {declared}")


@dataclass
class Banks:
    """The StatementDirectory port over test banks."""

    banks: dict[str, LedgerBank]

    def statements(self, bank: str) -> LedgerBank:
        return self.banks[bank]

    def statement_banks(self) -> list[str]:
        return sorted(self.banks)


@pytest.fixture
def clock() -> SettableClock:
    # 10:00 in Shanghai on the business date.
    start, _ = business_day_bounds(BUSINESS_DATE)
    return SettableClock(start + timedelta(hours=10))


@pytest.fixture
def ids() -> UlidGenerator:
    return UlidGenerator()


@pytest.fixture
def merchant(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> str:
    with uow_factory() as uow:
        uow.merchants.add(Merchant(MERCHANT_ID, "对账测试商户", MerchantStatus.ACTIVE, None, "whsec_test", clock.now()))
        uow.merchants.set_fee_plan(FeePlan.of(MERCHANT_ID, FEE_RATES))
        uow.commit()
    return MERCHANT_ID


@pytest.fixture
def policy(tmp_path: Path) -> ReconciliationPolicy:
    return ReconciliationPolicy(statements_dir=tmp_path / "statements", chunk_lines=3, stage_batch=2)


def start_payment(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, amount_minor: int, bank: str = "HBB"
) -> tuple[str, str]:
    """A cashier payment with one attempt at ``bank``, still processing: (payment id, attempt id)."""
    request = PaymentRequest(
        merchant_id=MERCHANT_ID, out_trade_no=f"recon-{next(_orders)}", amount=Money.cny(amount_minor),
        method=PaymentMethod.CASHIER, subject="对账 测试",
    )
    payment = create_payment(uow_factory, clock, ids, request).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="online_banking", bank=bank)
    return payment.id, attempt.id


def paid(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, amount_minor: int, bank: str = "HBB"
) -> tuple[str, str]:
    """A payment whose attempt succeeded at ``bank`` (bank reference ``Q-<attempt id>``)."""
    payment_id, attempt_id = start_payment(uow_factory, clock, ids, amount_minor, bank)
    record_attempt_succeeded(
        uow_factory, clock, payment_id, attempt_id, bank_reference=f"Q-{attempt_id}", amount=Money.cny(amount_minor)
    )
    return payment_id, attempt_id


def pos_paid(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, amount_minor: int, rrn: str
) -> tuple[str, str]:
    """A POS purchase as the POS front records it: an attempt on the switch's channel, settled into
    HBB's reserve, whose bank reference is the switch's RRN (services/pos.py)."""
    request = PaymentRequest(
        merchant_id=MERCHANT_ID, out_trade_no=f"pos-{next(_orders)}", amount=Money.cny(amount_minor),
        method=PaymentMethod.POS, subject="POS 对账",
    )
    payment = create_pos_payment(uow_factory, clock, ids, request).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="tcs", bank="HBB")
    record_attempt_succeeded(
        uow_factory, clock, payment.id, attempt.id, bank_reference=rrn, amount=Money.cny(amount_minor)
    )
    return payment.id, attempt.id
