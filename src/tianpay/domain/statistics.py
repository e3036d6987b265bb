"""Daily payment statistics (查询统计): business dates and the figures kept per merchant and day.

A payment counts on the Asia/Shanghai business date it was created (the merchant's "orders of the
day"); a refund counts on the business date it succeeded (the day the money went back). Figures are
integers of minor units; rates are derived on reading, never stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Final

SHANGHAI: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
# A payment that never named a bank and never reached one (a cashier payment nobody paid) is kept
# under this bank code, so the key has no NULL in it (a NULL would never match itself in SQL).
NO_BANK: Final = ""


def business_date_of(moment: datetime) -> date:
    """The Shanghai calendar date of an aware UTC moment (China keeps no daylight saving time)."""
    if moment.tzinfo is None:
        raise ValueError("business dates are taken of aware times only")
    return moment.astimezone(SHANGHAI).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC half-open interval [start, end) that is the Shanghai business date ``day``."""
    start = datetime.combine(day, time(0), SHANGHAI).astimezone(UTC)
    return start, start + timedelta(days=1)


def days_between(first: date, last: date) -> list[date]:
    """Every date from ``first`` to ``last``, both included."""
    if last < first:
        return []
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


@dataclass(frozen=True, slots=True, order=True)
class StatsKey:
    merchant_id: str
    business_date: date
    method: str
    bank: str
    currency: str


@dataclass(frozen=True, slots=True)
class DailyStats:
    """One merchant's figures for one business date, payment method, bank and currency."""

    key: StatsKey
    payment_count: int = 0
    succeeded_count: int = 0
    failed_count: int = 0
    closed_count: int = 0
    # Sum of the amounts of the payments that succeeded, and of their fees.
    succeeded_minor: int = 0
    fee_minor: int = 0
    refund_count: int = 0
    refunded_minor: int = 0
    # Fees the platform gave back with those refunds (pro rata).
    fee_returned_minor: int = 0

    @property
    def net_minor(self) -> int:
        """What the merchant keeps: collected, less fees, less refunds, plus the fees refunded."""
        return self.succeeded_minor - self.fee_minor - self.refunded_minor + self.fee_returned_minor

    @property
    def open_count(self) -> int:
        """Payments created that day and not yet final (created or processing)."""
        return self.payment_count - self.succeeded_count - self.failed_count - self.closed_count

    def plus(self, other: DailyStats) -> DailyStats:
        return replace(
            self,
            payment_count=self.payment_count + other.payment_count,
            succeeded_count=self.succeeded_count + other.succeeded_count,
            failed_count=self.failed_count + other.failed_count,
            closed_count=self.closed_count + other.closed_count,
            succeeded_minor=self.succeeded_minor + other.succeeded_minor,
            fee_minor=self.fee_minor + other.fee_minor,
            refund_count=self.refund_count + other.refund_count,
            refunded_minor=self.refunded_minor + other.refunded_minor,
            fee_returned_minor=self.fee_returned_minor + other.fee_returned_minor,
        )


def success_rate_bps(succeeded: int, total: int) -> int | None:
    """Succeeded per ten thousand, rounded half up; None when nothing was tried (no 0/0)."""
    if total == 0:
        return None
    return (succeeded * 20_000 + total) // (2 * total)


def merge(rows: Iterable[DailyStats]) -> dict[StatsKey, DailyStats]:
    """Sums rows of the same key (a payment part and a refund part of one day become one row)."""
    merged: dict[StatsKey, DailyStats] = {}
    for row in rows:
        current = merged.get(row.key)
        merged[row.key] = row if current is None else current.plus(row)
    return merged


@dataclass(frozen=True, slots=True)
class Totals:
    """Figures summed over any set of daily rows (a range of days, a method, a bank …)."""

    payment_count: int = 0
    succeeded_count: int = 0
    succeeded_minor: int = 0
    fee_minor: int = 0
    refund_count: int = 0
    refunded_minor: int = 0
    fee_returned_minor: int = 0

    @property
    def net_minor(self) -> int:
        return self.succeeded_minor - self.fee_minor - self.refunded_minor + self.fee_returned_minor

    @property
    def success_rate_bps(self) -> int | None:
        return success_rate_bps(self.succeeded_count, self.payment_count)


def totals_of(rows: Iterable[DailyStats]) -> Totals:
    fields = dict.fromkeys(
        ("payment_count", "succeeded_count", "succeeded_minor", "fee_minor", "refund_count", "refunded_minor",
         "fee_returned_minor"),
        0,
    )
    for row in rows:
        for name in fields:
            fields[name] += getattr(row, name)
    return Totals(**fields)
