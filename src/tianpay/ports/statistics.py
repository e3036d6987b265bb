"""The statistics port: daily aggregates, the watermarks that keep them current, and operational counts.

The aggregates (``DailyStats`` per merchant, Shanghai business date, method, bank and currency) are
recomputed from the payments and refunds of a (merchant, day) whenever a transition touches it, so a
rerun rewrites the same figures and can never count twice. ``scan`` computes the same rows without
writing, which is how tests and ``tianpay stats verify`` prove the table equals a full scan.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from tianpay.domain.statistics import DailyStats

# The two change logs the aggregation job follows.
SOURCE_PAYMENTS = "payment_transitions"
SOURCE_REFUNDS = "refund_transitions"
SOURCES = (SOURCE_PAYMENTS, SOURCE_REFUNDS)


@dataclass(frozen=True, slots=True)
class Watermark:
    """How far the job has read a change log.

    Every change with an id up to ``settled_id`` is older than the settle margin, so committed and
    aggregated. ``seen_id`` is the highest id read so far. Ids are handed out before commit, so a
    change in (settled_id, seen_id] may still appear after a run read that range: ``pending_count``
    is how many of that range the run read, and more on the next run means a late commit to read.
    """

    source: str
    settled_id: int
    seen_id: int
    pending_count: int


@dataclass(frozen=True, slots=True)
class Change:
    """One transition: whose figures it touches, and when it was recorded."""

    id: int
    merchant_id: str
    # When the changed record counts: a payment's creation, a refund's success (None: not yet).
    counts_at: datetime | None
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class MethodBankVolume:
    """Platform-wide figures of a date range for one method and bank (every merchant summed)."""

    method: str
    bank: str
    currency: str
    payment_count: int
    succeeded_count: int
    succeeded_minor: int
    fee_minor: int
    refunded_minor: int


@dataclass(frozen=True, slots=True)
class ChannelAttempts:
    """Attempts made on one channel in a time range, and how many of them succeeded."""

    channel: str
    bank: str
    attempt_count: int
    succeeded_count: int
    failed_count: int


@dataclass(frozen=True, slots=True)
class StatusCount:
    """Payments of one business date by method, bank and status (for /metrics)."""

    method: str
    bank: str
    status: str
    count: int


class StatisticsRepository(Protocol):
    def lock_watermarks(self, *, wait: bool) -> Mapping[str, Watermark] | None:
        """Every source's watermark, row-locked until the unit of work ends.

        Only one aggregation (job run or rebuild) holds them at a time, so two never rewrite the same
        day at once. With ``wait`` False, None when another process holds them (the job skips a turn).
        """
        ...

    def save_watermark(self, watermark: Watermark) -> None: ...

    def changes_after(self, source: str, after_id: int, *, limit: int) -> Sequence[Change]:
        """Up to ``limit`` changes of ``source`` with an id above ``after_id``, in id order."""
        ...

    def changes_between(self, source: str, low_id: int, high_id: int) -> Sequence[Change]:
        """Every change of ``source`` with low_id < id <= high_id, in id order."""
        ...

    def first_payment_at(self) -> datetime | None:
        """When the oldest payment was created (where a full rebuild starts)."""
        ...

    def scan(self, business_date: date, merchant_ids: Collection[str] | None = None) -> Sequence[DailyStats]:
        """The day's figures computed from payments and refunds (of these merchants; None: all)."""
        ...

    def replace_day(self, business_date: date, merchant_ids: Collection[str] | None = None) -> int:
        """Rewrites the stored figures of the day (for these merchants) from ``scan``; rows written."""
        ...

    def daily(self, merchant_id: str | None, first: date, last: date) -> Sequence[DailyStats]:
        """Stored rows of the merchant (None: every merchant) from ``first`` to ``last`` included."""
        ...

    def volume_by_method_bank(self, first: date, last: date) -> Sequence[MethodBankVolume]: ...

    def attempts_by_channel(self, start: datetime, end: datetime) -> Sequence[ChannelAttempts]:
        """Attempts created in [start, end) grouped by channel and bank."""
        ...

    def ledger_movements(self, codes: Sequence[str], start: datetime, end: datetime) -> Mapping[str, int]:
        """The signed sum of the postings on each account code in entries made in [start, end)."""
        ...

    def payments_by_status(self, business_date: date) -> Sequence[StatusCount]: ...

    def pending_event_count(self) -> int:
        """Webhook events still waiting to be delivered (the outbox backlog)."""
        ...

    def record_job_runs(self, runs: Mapping[str, datetime]) -> None:
        """Remembers when each worker job last ran (shared by every process through the database)."""
        ...

    def job_runs(self) -> Mapping[str, datetime]: ...
