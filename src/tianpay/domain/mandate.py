"""Direct-debit mandates (代扣协议): a payer's standing consent for a merchant to debit a card.

The lifecycle is a transition table (DESIGN.md §5): ``applied`` (the bank texted a code) →
``active`` | ``failed``; ``active`` → ``revoked`` | ``expired``. The limits (per debit, per Beijing
calendar month, validity) are checked here, before any bank is asked, so a debit outside the
mandate never reaches a bank (research/protocols.md §3.3).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Final

from tianpay.domain.errors import DomainError, IllegalTransition
from tianpay.domain.money import Money

BEIJING: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
PURPOSE_PATTERN: Final = re.compile(r"[a-z_]{2,20}(:[a-z0-9_]{1,40})?")
MANDATE_NO_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MandateStatus(enum.StrEnum):
    APPLIED = "applied"
    ACTIVE = "active"
    FAILED = "failed"
    REVOKED = "revoked"
    EXPIRED = "expired"


class MandateEvent(enum.StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"


TRANSITIONS: Final[Mapping[tuple[MandateStatus, MandateEvent], MandateStatus]] = {
    (MandateStatus.APPLIED, MandateEvent.CONFIRMED): MandateStatus.ACTIVE,
    (MandateStatus.APPLIED, MandateEvent.REJECTED): MandateStatus.FAILED,
    (MandateStatus.ACTIVE, MandateEvent.REVOKED): MandateStatus.REVOKED,
    (MandateStatus.ACTIVE, MandateEvent.EXPIRED): MandateStatus.EXPIRED,
}


def next_state(status: MandateStatus, event: MandateEvent) -> MandateStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(
            f"a mandate that is {status.value} cannot take the event {event.value}", param="status"
        ) from None


class InvalidMandate(DomainError):
    code = "mandate_invalid"


class MandateNotActive(DomainError):
    """A debit on a mandate that is not active (applied, failed, revoked or expired)."""

    code = "mandate_not_active"


class MandateLimitExceeded(DomainError):
    """A debit over the mandate's per-debit or per-month limit, or after its validity."""

    code = "mandate_limit_exceeded"


@dataclass(frozen=True, slots=True)
class Mandate:
    id: str
    merchant_id: str
    member_id: str
    merchant_mandate_no: str
    bank: str
    card_masked: str
    max_per_debit: Money
    max_per_month: Money
    valid_until: date
    purpose: str
    status: MandateStatus
    created_at: datetime
    updated_at: datetime
    # The bank's token while applied, then the bank's mandate number: sealed, never in a repr.
    bank_ref_sealed: str | None = None
    failure_code: str | None = None

    def moved_to(self, event: MandateEvent, now: datetime, **changes: object) -> Mandate:
        return replace(self, status=next_state(self.status, event), updated_at=now, **changes)  # type: ignore[arg-type]

    def has_expired_at(self, now: datetime) -> bool:
        return business_date(now) > self.valid_until


def business_date(moment: datetime) -> date:
    return moment.astimezone(BEIJING).date()


def debit_period(moment: datetime) -> str:
    """The Beijing calendar month a debit counts against (``2025-03``)."""
    return f"{business_date(moment):%Y-%m}"


def check_terms(max_per_debit: Money, max_per_month: Money, valid_until: date, purpose: str, now: datetime) -> None:
    if not max_per_debit.is_positive:
        raise InvalidMandate("max_amount_per_debit must be positive", param="max_amount_per_debit")
    if max_per_month.minor < max_per_debit.minor:
        raise InvalidMandate("max_amount_per_month is below max_amount_per_debit", param="max_amount_per_month")
    if valid_until <= business_date(now):
        raise InvalidMandate("valid_until must be a future date", param="valid_until")
    if PURPOSE_PATTERN.fullmatch(purpose) is None:
        raise InvalidMandate("purpose looks like utility:electricity", param="purpose")


def check_debit(mandate: Mandate, amount: Money, month_total: Money, now: datetime) -> None:
    """The platform's own guard (before the bank): status, validity, per-debit and per-month limits.

    ``month_total`` sums the mandate's debits this month that may have moved money (not failed).
    """
    if mandate.status is not MandateStatus.ACTIVE:
        raise MandateNotActive(f"mandate {mandate.id} is {mandate.status.value}", param="id")
    if mandate.has_expired_at(now):
        raise MandateNotActive(f"mandate {mandate.id} expired on {mandate.valid_until}", param="id")
    if amount.minor > mandate.max_per_debit.minor:
        raise MandateLimitExceeded(
            f"the amount exceeds the mandate's {mandate.max_per_debit.minor} per debit", param="amount"
        )
    if month_total.minor + amount.minor > mandate.max_per_month.minor:
        raise MandateLimitExceeded(
            f"the amount exceeds what is left of the mandate's {mandate.max_per_month.minor} this month",
            param="amount",
        )
