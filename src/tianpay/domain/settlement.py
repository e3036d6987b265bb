"""Settlement (结算): what a merchant is owed for a business date, computed from its pending account.

A settlement gathers the journal entries on ``merchant:M:pending`` made before the end of its
business date (Asia/Shanghai, cutoff midnight) that no settlement has taken yet, one line per
entry, and moves their net to ``merchant:M:available``. Pure values and arithmetic only: the
repository finds the entries, the service decides when; nothing here reads a clock.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Final

from tianpay.domain import ids
from tianpay.domain.errors import DomainError, IllegalTransition
from tianpay.domain.member import SealedPii
from tianpay.domain.money import Currency, Money

SHANGHAI: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
DEFAULT_CYCLE_DAYS: Final = 1
MAX_CYCLE_DAYS: Final = 30
# Banks a settlement account may be held at (BANKS.md): any of them, others are reached by clearing.
SETTLEMENT_BANKS: Final = ("HBB", "JHB", "BCB")
MAX_ACCOUNT_NAME_CHARS: Final = 60
_ACCOUNT_NO = re.compile(r"[0-9]{8,32}")
_ID_NAMESPACE = uuid.UUID("0b4f6c9e-2d71-5a3e-9c84-7e1f3a5d2b60")


class InvalidSettlementSettings(DomainError):
    code = "settlement_settings_invalid"


class SettlementStatus(enum.StrEnum):
    """``carried``: the net was negative and ``available`` could not cover it, so nothing moved and
    the lines wait for a later date; ``settled``: the net moved to ``available`` (a payout may be on
    its way: ``payout_id``); ``paid``: its payout succeeded; ``payout_failed``: its payout failed or
    bounced, the money is back in ``available`` and the settlement waits to be paid again."""

    CARRIED = "carried"
    SETTLED = "settled"
    PAID = "paid"
    PAYOUT_FAILED = "payout_failed"


class SettlementEvent(enum.StrEnum):
    SETTLED = "settled"
    PAID = "paid"
    # The attached payout failed at the bank (its submit entry reversed: money back in available).
    PAYOUT_FAILED = "payout_failed"
    # The attached payout succeeded and then bounced (退票): the money came back to available.
    PAYOUT_RETURNED = "payout_returned"
    # A new payout was attached to a settlement whose previous one failed or bounced.
    PAYOUT_RETRIED = "payout_retried"


TRANSITIONS: Final[Mapping[tuple[SettlementStatus, SettlementEvent], SettlementStatus]] = {
    # A carried date is tried again when it is rerun (available may have grown since).
    (SettlementStatus.CARRIED, SettlementEvent.SETTLED): SettlementStatus.SETTLED,
    (SettlementStatus.SETTLED, SettlementEvent.PAID): SettlementStatus.PAID,
    (SettlementStatus.SETTLED, SettlementEvent.PAYOUT_FAILED): SettlementStatus.PAYOUT_FAILED,
    (SettlementStatus.PAID, SettlementEvent.PAYOUT_RETURNED): SettlementStatus.PAYOUT_FAILED,
    # Only from payout_failed, i.e. only once the previous payout is final and its money back: a
    # settlement never has two payouts that may both succeed.
    (SettlementStatus.PAYOUT_FAILED, SettlementEvent.PAYOUT_RETRIED): SettlementStatus.SETTLED,
}


def next_status(status: SettlementStatus, event: SettlementEvent) -> SettlementStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(f"a {status.value} settlement cannot become {event.value}") from None


class LineKind(enum.StrEnum):
    """What an entry on the pending account was, for the merchant's statement."""

    PAYMENT = "payment"
    REFUND = "refund"
    VOID = "void"
    ADJUSTMENT = "adjustment"


# Ledger events by the kind of line they make; anything else posted to pending is an adjustment.
_KIND_BY_EVENT: Final[Mapping[str, LineKind]] = {
    "payment.succeeded": LineKind.PAYMENT,
    "refund.requested": LineKind.REFUND,
    "refund.succeeded": LineKind.REFUND,
    "refund.failed": LineKind.REFUND,
    "pos_payment.voided": LineKind.VOID,
    "pos_payment.reversed": LineKind.VOID,
    "pos_payment.void_reversed": LineKind.VOID,
}


@dataclass(frozen=True, slots=True)
class PendingMovement:
    """One journal entry as it touched a merchant's pending account, read from the ledger.

    ``pending_minor`` is what the entry added to the pending balance (credits positive, as the
    merchant reads it); ``fee_minor`` what it moved into ``platform:fee_income`` (a fee charged is
    positive, a fee returned with a refund negative).
    """

    entry_id: str
    event: str
    source_id: str
    reference: str | None  # the merchant's own number (out_trade_no, out_refund_no) where known
    created_at: datetime
    pending_minor: int
    fee_minor: int


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """A statement line: ``amount_minor`` is the money itself (payments positive, refunds negative),
    ``fee_minor`` the fee on it (charged positive, returned negative), ``net_minor`` their difference."""

    entry_id: str
    kind: LineKind
    source_id: str
    reference: str | None
    occurred_at: datetime
    amount_minor: int
    fee_minor: int

    @property
    def net_minor(self) -> int:
        return self.amount_minor - self.fee_minor


def line_of(movement: PendingMovement) -> SettlementLine:
    """The statement line of an entry: its non-fee part is what moved on pending plus the fee taken."""
    return SettlementLine(
        entry_id=movement.entry_id,
        kind=_KIND_BY_EVENT.get(movement.event, LineKind.ADJUSTMENT),
        source_id=movement.source_id,
        reference=movement.reference,
        occurred_at=movement.created_at,
        amount_minor=movement.pending_minor + movement.fee_minor,
        fee_minor=movement.fee_minor,
    )


@dataclass(frozen=True, slots=True)
class Totals:
    """gross − refunds − fees = net, to the fen. ``refunds_minor`` also holds voids and any other
    money that left pending; ``fees_minor`` is fees charged less fees returned."""

    count: int
    gross_minor: int
    refunds_minor: int
    fees_minor: int

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunds_minor - self.fees_minor


def totals_of(lines: Iterable[SettlementLine]) -> Totals:
    count = gross = refunds = fees = 0
    for line in lines:
        count += 1
        if line.amount_minor >= 0:
            gross += line.amount_minor
        else:
            refunds -= line.amount_minor
        fees += line.fee_minor
    return Totals(count, gross, refunds, fees)


@dataclass(frozen=True, slots=True)
class Settlement:
    id: str
    merchant_id: str
    business_date: date
    status: SettlementStatus
    currency: Currency
    totals: Totals
    entry_id: str | None  # the ledger entry that moved the net; None when nothing moved
    payout_id: str | None
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None
    paid_at: datetime | None

    @property
    def net(self) -> Money:
        return Money(self.totals.net_minor, self.currency)


def settlement_id_for(merchant_id: str, business_date: date) -> str:
    """The id of a merchant's settlement of a date: derived, so two workers settling at once (or a
    rerun) name the same settlement, and its ledger entry id derives from it in turn."""
    digest = uuid.uuid5(_ID_NAMESPACE, f"{merchant_id}\x1f{business_date.isoformat()}").hex[:20]
    return f"{ids.SETTLEMENT}_{business_date:%Y%m%d}{digest}"


def business_date_of(moment: datetime) -> date:
    """The Shanghai calendar date of an aware moment."""
    return moment.astimezone(SHANGHAI).date()


def cutoff_of(business_date: date) -> datetime:
    """The end of a business date (midnight in Shanghai) as an aware UTC time; entries before it count."""
    return datetime.combine(business_date + timedelta(days=1), time(0), tzinfo=SHANGHAI).astimezone(UTC)


def settlement_day(business_date: date, cycle_days: int) -> date:
    """T+N: the Shanghai date on which ``business_date`` is settled."""
    return business_date + timedelta(days=cycle_days)


def business_date_due(today: date, cycle_days: int) -> date:
    """The business date a T+N merchant settles on ``today``.

    T+0 names today itself, which is not over yet; since a date is settled only once it is over
    and reconciled, a T+0 merchant is settled as soon as that happens (early on the next day).
    """
    return today - timedelta(days=cycle_days)


def is_over(business_date: date, now: datetime) -> bool:
    return now >= cutoff_of(business_date)


# ---- settings --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettlementSettings:
    """How and where a merchant is settled. The account number exists only sealed here."""

    merchant_id: str
    cycle_days: int
    minimum_payout_minor: int
    auto_payout: bool
    account_bank: str | None
    account_no: SealedPii | None
    account_name: str | None
    updated_at: datetime

    @property
    def has_account(self) -> bool:
        return self.account_bank is not None and self.account_no is not None and self.account_name is not None


def default_settings(merchant_id: str, now: datetime) -> SettlementSettings:
    return SettlementSettings(merchant_id, DEFAULT_CYCLE_DAYS, 0, False, None, None, None, now)


@dataclass(frozen=True, slots=True)
class SettlementAccount:
    """A merchant's settlement account with its number in clear: in memory only, for a payout."""

    merchant_id: str
    bank: str
    account_no: str
    account_name: str
    account_no_masked: str


def check_cycle_days(cycle_days: int) -> int:
    if not 0 <= cycle_days <= MAX_CYCLE_DAYS:
        raise InvalidSettlementSettings(f"cycle_days is 0 to {MAX_CYCLE_DAYS}", param="cycle_days")
    return cycle_days


def check_minimum_payout(minimum_payout_minor: int) -> int:
    if minimum_payout_minor < 0:
        raise InvalidSettlementSettings("minimum_payout_minor may not be negative", param="minimum_payout_minor")
    return minimum_payout_minor


def check_account_bank(bank: str) -> str:
    code = bank.strip().upper()
    if code not in SETTLEMENT_BANKS:
        raise InvalidSettlementSettings(f"account_bank is one of {', '.join(SETTLEMENT_BANKS)}", param="account_bank")
    return code


def check_account_no(raw: str) -> str:
    """8–32 digits. Corporate accounts carry no Luhn digit, so none is asked of them; the message
    never repeats what was sent."""
    account_no = raw.replace(" ", "")
    if not _ACCOUNT_NO.fullmatch(account_no):
        raise InvalidSettlementSettings("account_no is 8 to 32 digits", param="account_no")
    return account_no


def check_account_name(raw: str) -> str:
    name = raw.strip()
    if not name or len(name) > MAX_ACCOUNT_NAME_CHARS:
        raise InvalidSettlementSettings(
            f"account_name is 1 to {MAX_ACCOUNT_NAME_CHARS} characters", param="account_name"
        )
    return name


@dataclass(frozen=True, slots=True)
class Payee:
    """Who a payout went to, as far as a retry needs to compare: the bank, the account number's keyed
    fingerprint (never the number) and the holder's name."""

    bank: str
    account_fingerprint: str
    account_name: str


def payee_changed(failed_to: Payee, current: Payee) -> bool:
    """Whether the merchant's settlement account differs from the one a failed payout was sent to.

    The automatic payout run pays a failed settlement again only then: sending the same payout to
    the same account would fail the same way (a name the bank refused, a closed account). Names are
    compared after trimming, as the banks compare them.
    """
    return (
        failed_to.bank != current.bank
        or failed_to.account_fingerprint != current.account_fingerprint
        or failed_to.account_name.strip() != current.account_name.strip()
    )


def mask_account_no(account_no: str) -> str:
    """``6230************0033``: the first four and last four digits."""
    if len(account_no) <= 8:
        return "*" * len(account_no)
    return account_no[:4] + "*" * (len(account_no) - 8) + account_no[-4:]
