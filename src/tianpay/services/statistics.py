"""Statistics use cases: keep the daily aggregates current, rebuild and verify them, and read them.

``refresh_statistics`` is the worker job: it follows the payment and refund transition logs past a
watermark and rewrites, from the base tables, every (merchant, day) a new change touched — never an
increment, so a rerun or an overlap writes the same figures again. Reads (a merchant's statistics,
the platform's, the CSV export) take a read-side unit-of-work factory: the replica when configured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tianpay.domain.errors import DomainError
from tianpay.domain.ledger import PLATFORM_BANK_COST, PLATFORM_FEE_INCOME
from tianpay.domain.payment import Payment
from tianpay.domain.statistics import (
    DailyStats,
    StatsKey,
    Totals,
    business_date_of,
    day_bounds,
    days_between,
    success_rate_bps,
    totals_of,
)
from tianpay.ports.payments import PaymentFilter
from tianpay.ports.statistics import (
    SOURCES,
    Change,
    ChannelAttempts,
    MethodBankVolume,
    StatisticsRepository,
    StatusCount,
    Watermark,
)
from tianpay.ports.unit_of_work import UnitOfWorkFactory

# Changes read per source and run: bounds the transaction of one run.
REFRESH_BATCH_SIZE = 2000
# A merchant asks for at most about a year of days at once.
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30


class InvalidStatisticsRequest(DomainError):
    code = "parameter_invalid"


# ---- keeping the aggregates current -------------------------------------------------------------------


def refresh_statistics(
    uow_factory: UnitOfWorkFactory,
    now: datetime,
    *,
    settle_margin: timedelta = timedelta(seconds=60),
    batch_size: int = REFRESH_BATCH_SIZE,
) -> int:
    """One run of the aggregation job; returns how many new changes it read (0 when idle).

    In one unit of work, holding the watermark rows, for each change log: (1) the changes in the
    unsettled range (settled_id, seen_id] are read again — if there are more than last time, a late
    commit landed there and their days are recomputed; (2) changes after ``seen_id`` are read and
    their days recomputed; (3) ``settled_id`` moves up to the newest change older than
    ``settle_margin``. Recomputing rewrites a (merchant, day) from the base tables, so reading a
    change twice is harmless. When another worker holds the watermarks, this run does nothing.
    """
    cutoff = now - settle_margin
    with uow_factory() as uow:
        stats = uow.statistics
        watermarks = stats.lock_watermarks(wait=False)
        if watermarks is None:
            return 0
        touched: dict[date, set[str]] = {}
        new_changes = 0
        advanced: list[Watermark] = []
        for source in SOURCES:
            mark = watermarks[source]
            unsettled = list(stats.changes_between(source, mark.settled_id, mark.seen_id))
            fresh = list(stats.changes_after(source, mark.seen_id, limit=batch_size))
            if len(unsettled) != mark.pending_count:
                _collect(unsettled, touched)
            _collect(fresh, touched)
            new_changes += len(fresh)
            known = unsettled + fresh
            seen_id = fresh[-1].id if fresh else mark.seen_id
            settled_id = max((c.id for c in known if c.recorded_at <= cutoff), default=mark.settled_id)
            # Counted from the rows this run read, not by a later query: a row committed after the
            # reads must make next run's count differ, so that it is read then.
            pending = sum(1 for c in known if c.id > settled_id)
            advanced.append(Watermark(source, settled_id, seen_id, pending))
        for day, merchants in sorted(touched.items()):
            stats.replace_day(day, merchants)
        for mark in advanced:
            if mark != watermarks[mark.source]:
                stats.save_watermark(mark)
        uow.commit()
    return new_changes


def _collect(changes: Iterable[Change], touched: dict[date, set[str]]) -> None:
    for change in changes:
        # A refund's transitions before it succeeded touch no figure (refunds count when they succeed).
        if change.counts_at is not None:
            touched.setdefault(business_date_of(change.counts_at), set()).add(change.merchant_id)


def rebuild_statistics(uow_factory: UnitOfWorkFactory, first: date | None, last: date | None, today: date) -> int:
    """Recomputes every stored figure of the days from ``first`` to ``last`` (default: from the oldest
    payment to ``today``) from the base tables; returns the rows written. One unit of work per day,
    each holding the watermark rows, so a rebuild never races the job over a day."""
    if first is None:
        with uow_factory() as uow:
            oldest = uow.statistics.first_payment_at()
        first = today if oldest is None else business_date_of(oldest)
    last = last or today
    if last < first:
        raise InvalidStatisticsRequest("the range ends before it starts", param="to")
    written = 0
    for day in days_between(first, last):
        with uow_factory() as uow:
            uow.statistics.lock_watermarks(wait=True)
            written += uow.statistics.replace_day(day)
            uow.commit()
    return written


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """A stored row that differs from a fresh scan (``stored`` or ``scanned`` None: missing there)."""

    key: StatsKey
    stored: DailyStats | None
    scanned: DailyStats | None


def verify_statistics(uow_factory: UnitOfWorkFactory, first: date, last: date) -> list[Discrepancy]:
    """Compares the stored figures of every day in the range with a full scan of that day."""
    found: list[Discrepancy] = []
    with uow_factory() as uow:
        stored = {row.key: row for row in uow.statistics.daily(None, first, last)}
        for day in days_between(first, last):
            for row in uow.statistics.scan(day):
                kept = stored.pop(row.key, None)
                if kept != row:
                    found.append(Discrepancy(row.key, kept, row))
    found.extend(Discrepancy(key, row, None) for key, row in sorted(stored.items()))
    return found


# ---- a merchant's statistics ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MerchantStatistics:
    merchant_id: str
    first: date
    last: date
    rows: tuple[DailyStats, ...]

    @property
    def totals(self) -> Totals:
        return totals_of(self.rows)

    def by_day(self) -> dict[date, Totals]:
        return {day: totals_of(r for r in self.rows if r.key.business_date == day) for day in self._days()}

    def by_method(self) -> dict[str, Totals]:
        return _grouped(self.rows, lambda key: key.method)

    def by_bank(self) -> dict[str, Totals]:
        return _grouped(self.rows, lambda key: key.bank)

    def _days(self) -> list[date]:
        return days_between(self.first, self.last)


def _grouped(rows: Sequence[DailyStats], part: Callable[[StatsKey], str]) -> dict[str, Totals]:
    names = sorted({part(row.key) for row in rows})
    return {name: totals_of(row for row in rows if part(row.key) == name) for name in names}


def date_range(first: date | None, last: date | None, today: date) -> tuple[date, date]:
    """The range a request names, defaulting to the last 30 days up to today; at most 366 days."""
    last = last or today
    first = first or last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if last < first:
        raise InvalidStatisticsRequest("date_to is before date_from", param="date_to")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InvalidStatisticsRequest(f"ask for at most {MAX_RANGE_DAYS} days at once", param="date_from")
    return first, last


def merchant_statistics(
    read_uow_factory: UnitOfWorkFactory,
    merchant_id: str,
    first: date,
    last: date,
    *,
    method: str | None = None,
    bank: str | None = None,
) -> MerchantStatistics:
    """The merchant's stored daily figures in the range (primary key range read), optionally one
    method's or one bank's."""
    with read_uow_factory() as uow:
        rows = uow.statistics.daily(merchant_id, first, last)
    chosen = tuple(
        row for row in rows
        if (method is None or row.key.method == method) and (bank is None or row.key.bank == bank)
    )
    return MerchantStatistics(merchant_id, first, last, chosen)


# ---- the platform's statistics (for the operator console) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelSuccess:
    channel: str
    bank: str
    attempt_count: int
    succeeded_count: int
    failed_count: int

    @property
    def success_rate_bps(self) -> int | None:
        return success_rate_bps(self.succeeded_count, self.attempt_count)


@dataclass(frozen=True, slots=True)
class PlatformStatistics:
    first: date
    last: date
    volume: tuple[MethodBankVolume, ...]
    channels: tuple[ChannelSuccess, ...]
    # From the ledger, as people read them: income and cost both positive.
    fee_income_minor: int
    bank_cost_minor: int

    @property
    def margin_minor(self) -> int:
        return self.fee_income_minor - self.bank_cost_minor


def platform_statistics(read_uow_factory: UnitOfWorkFactory, first: date, last: date) -> PlatformStatistics:
    """Volume by method and bank (every merchant), success rate per channel (attempts made in the
    range), and fee income against what the banks charged (postings of the range's entries)."""
    start, _ = day_bounds(first)
    _, end = day_bounds(last)
    codes = (PLATFORM_FEE_INCOME.code, PLATFORM_BANK_COST.code)
    with read_uow_factory() as uow:
        volume = tuple(uow.statistics.volume_by_method_bank(first, last))
        channels = tuple(_channel_success(row) for row in uow.statistics.attempts_by_channel(start, end))
        movements = uow.statistics.ledger_movements(codes, start, end)
    # Postings are signed debit positive: revenue is credited (negative), an expense debited.
    return PlatformStatistics(
        first, last, volume, channels,
        fee_income_minor=-movements[PLATFORM_FEE_INCOME.code],
        bank_cost_minor=movements[PLATFORM_BANK_COST.code],
    )


def _channel_success(row: ChannelAttempts) -> ChannelSuccess:
    return ChannelSuccess(row.channel, row.bank, row.attempt_count, row.succeeded_count, row.failed_count)


# ---- exports and operational figures ----------------------------------------------------------------------


def export_payments(
    read_uow_factory: UnitOfWorkFactory, merchant_id: str, filters: PaymentFilter, *, batch_size: int = 500
) -> Iterator[Payment]:
    """The merchant's matching payments, newest first, streamed from one read transaction.

    The unit of work stays open while the caller iterates and closes when the iterator is exhausted
    or closed (a client that hangs up), so only one batch is ever held in memory.
    """
    with read_uow_factory() as uow:
        yield from uow.payments.iter_for_merchant(merchant_id, filters, batch_size=batch_size)


@dataclass(frozen=True, slots=True)
class OperationalSnapshot:
    """What /metrics reads from the database at each scrape."""

    business_date: date
    payments_today: tuple[StatusCount, ...]
    pending_events: int
    job_runs: Mapping[str, datetime]


def operational_snapshot(read_uow_factory: UnitOfWorkFactory, now: datetime) -> OperationalSnapshot:
    today = business_date_of(now)
    with read_uow_factory() as uow:
        repository: StatisticsRepository = uow.statistics
        return OperationalSnapshot(
            today,
            tuple(repository.payments_by_status(today)),
            repository.pending_event_count(),
            dict(repository.job_runs()),
        )


def record_job_runs(uow_factory: UnitOfWorkFactory, runs: Mapping[str, datetime]) -> None:
    with uow_factory() as uow:
        uow.statistics.record_job_runs(runs)
        uow.commit()
