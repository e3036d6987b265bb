"""Debit schedules: a merchant's standing instruction to debit a mandate once per Beijing month.

A schedule names the day of the month and either a fixed amount or ``bill`` (the merchant posts
each period's amount as a bill). Which period is due at a given moment is decided here, purely;
the worker claims a (schedule, period) row before asking a bank, so each period is debited once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from tianpay.domain.errors import DomainError
from tianpay.domain.mandate import business_date
from tianpay.domain.money import Money

# Day 29–31 do not exist every month; a schedule that needs "the last day" uses 28.
MAX_DAY_OF_MONTH: Final = 28
PERIOD_CHARS: Final = 7


class ScheduleStatus(enum.StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


class AmountKind(enum.StrEnum):
    FIXED = "fixed"
    BILL = "bill"


class RunStatus(enum.StrEnum):
    """What became of one (schedule, period): claimed by a worker, then a payment or a refusal.

    ``missed``: the period's payment closed (expired, or closed by the merchant) before it reached
    the bank, because every worker was away longer than a payment lives. The schedule does not debit
    the period again; the merchant is told (``debit_schedule.missed``) and may debit it itself
    (docs/direct-debit.md).
    """

    CLAIMED = "claimed"
    SUBMITTED = "submitted"
    REFUSED = "refused"
    MISSED = "missed"


class InvalidSchedule(DomainError):
    code = "schedule_invalid"


@dataclass(frozen=True, slots=True)
class DebitSchedule:
    id: str
    merchant_id: str
    mandate_id: str
    day_of_month: int
    amount_kind: AmountKind
    # Set for ``fixed`` schedules only; a ``bill`` schedule takes each period's amount from its bill.
    fixed_amount: Money | None
    subject: str
    first_period: str
    status: ScheduleStatus
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DueDebit:
    """A (schedule, period) the worker should debit, with the amount it should take."""

    schedule: DebitSchedule
    period: str
    amount: Money


def period_of(day: date) -> str:
    return f"{day:%Y-%m}"


def check_period(period: str) -> str:
    try:
        parsed = date.fromisoformat(f"{period}-01")
    except ValueError:
        raise InvalidSchedule("period looks like 2025-03", param="period") from None
    if len(period) != PERIOD_CHARS or period_of(parsed) != period:
        raise InvalidSchedule("period looks like 2025-03", param="period")
    return period


def first_period(created_at: datetime, day_of_month: int) -> str:
    """The first month whose debit day falls on or after the day the schedule was made."""
    today = business_date(created_at)
    if today.day <= day_of_month:
        return period_of(today)
    next_month = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return period_of(next_month)


def check_terms(day_of_month: int, amount_kind: AmountKind, fixed_amount: Money | None,
                max_per_debit: Money) -> None:
    if not 1 <= day_of_month <= MAX_DAY_OF_MONTH:
        raise InvalidSchedule(f"day_of_month must be 1–{MAX_DAY_OF_MONTH}", param="day_of_month")
    if amount_kind is AmountKind.BILL:
        if fixed_amount is not None:
            raise InvalidSchedule("a bill schedule takes its amounts from bills, not amount", param="amount")
        return
    if fixed_amount is None or not fixed_amount.is_positive:
        raise InvalidSchedule("a fixed schedule needs a positive amount", param="amount")
    if fixed_amount.minor > max_per_debit.minor:
        raise InvalidSchedule("the amount exceeds the mandate's per-debit limit", param="amount")


def due_period(schedule: DebitSchedule, now: datetime) -> str | None:
    """The period to debit at ``now``, or None: this month's, once its day has come."""
    today = business_date(now)
    period = period_of(today)
    if schedule.status is not ScheduleStatus.ACTIVE or today.day < schedule.day_of_month:
        return None
    if period < schedule.first_period:
        return None
    return period
