"""The statistics repository: daily aggregates, their watermarks, and the counts /metrics reads.

A day's figures are computed by two grouped queries bounded by the day's UTC interval (payments by
``created_at``, refunds by ``succeeded_at``), each answered by an index, then merged and written in
place of the stored rows. Nothing here adds to a stored figure, so nothing can be counted twice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, case, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from tianpay.domain.payment import PaymentStatus
from tianpay.domain.refund import RefundKind, RefundStatus
from tianpay.domain.statistics import NO_BANK, DailyStats, StatsKey, day_bounds, merge
from tianpay.ports.statistics import (
    SOURCE_PAYMENTS,
    SOURCE_REFUNDS,
    SOURCES,
    Change,
    ChannelAttempts,
    MethodBankVolume,
    StatusCount,
    Watermark,
)

from .tables import (
    daily_payment_stats,
    events,
    journal_entries,
    ledger_accounts,
    payment_attempts,
    payment_transitions,
    payments,
    postings,
    refund_transitions,
    refunds,
    statistics_watermarks,
    worker_job_runs,
)

COUNTERS = (
    "payment_count",
    "succeeded_count",
    "failed_count",
    "closed_count",
    "succeeded_minor",
    "fee_minor",
    "refund_count",
    "refunded_minor",
    "fee_returned_minor",
)


class SqlStatisticsRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # ---- the aggregation job's bookkeeping ------------------------------------------------------------

    def lock_watermarks(self, *, wait: bool) -> Mapping[str, Watermark] | None:
        self._ensure_watermarks()
        query = select(statistics_watermarks).order_by(statistics_watermarks.c.source)
        # SQLite ignores FOR UPDATE; there BEGIN IMMEDIATE already serialises every writer.
        query = query.with_for_update(skip_locked=not wait)
        rows = self._connection.execute(query).all()
        if len(rows) < len(SOURCES):
            return None
        return {
            row.source: Watermark(row.source, int(row.settled_id), int(row.seen_id), int(row.pending_count))
            for row in rows
        }

    def save_watermark(self, watermark: Watermark) -> None:
        self._connection.execute(
            update(statistics_watermarks)
            .where(statistics_watermarks.c.source == watermark.source)
            .values(
                settled_id=watermark.settled_id,
                seen_id=watermark.seen_id,
                pending_count=watermark.pending_count,
            )
        )

    def _ensure_watermarks(self) -> None:
        present = set(self._connection.execute(select(statistics_watermarks.c.source)).scalars())
        for source in SOURCES:
            if source in present:
                continue
            try:
                with self._connection.begin_nested():
                    self._connection.execute(
                        insert(statistics_watermarks).values(source=source, settled_id=0, seen_id=0, pending_count=0)
                    )
            except IntegrityError:
                pass

    def changes_after(self, source: str, after_id: int, *, limit: int) -> Sequence[Change]:
        query, ids = _changes(source)
        rows = self._connection.execute(query.where(ids > after_id).order_by(ids).limit(limit))
        return [Change(int(row.id), row.merchant_id, row.counts_at, row.recorded_at) for row in rows]

    def changes_between(self, source: str, low_id: int, high_id: int) -> Sequence[Change]:
        query, ids = _changes(source)
        rows = self._connection.execute(query.where(ids > low_id, ids <= high_id).order_by(ids))
        return [Change(int(row.id), row.merchant_id, row.counts_at, row.recorded_at) for row in rows]

    def first_payment_at(self) -> datetime | None:
        found: datetime | None = self._connection.execute(select(func.min(payments.c.created_at))).scalar_one()
        return found

    # ---- a day's figures ------------------------------------------------------------------------------

    def scan(self, business_date: date, merchant_ids: Collection[str] | None = None) -> Sequence[DailyStats]:
        start, end = day_bounds(business_date)
        rows = [*self._payment_part(business_date, start, end, merchant_ids),
                *self._refund_part(business_date, start, end, merchant_ids)]
        return sorted(merge(rows).values(), key=lambda row: row.key)

    def replace_day(self, business_date: date, merchant_ids: Collection[str] | None = None) -> int:
        computed = self.scan(business_date, merchant_ids)
        stored = daily_payment_stats.c
        statement = delete(daily_payment_stats).where(stored.business_date == business_date)
        if merchant_ids is not None:
            statement = statement.where(stored.merchant_id.in_(sorted(merchant_ids)))
        self._connection.execute(statement)
        if computed:
            self._connection.execute(insert(daily_payment_stats), [_stats_row(row) for row in computed])
        return len(computed)

    def _payment_part(
        self, business_date: date, start: datetime, end: datetime, merchant_ids: Collection[str] | None
    ) -> list[DailyStats]:
        p, a = payments.c, payment_attempts.c
        succeeded = p.status == PaymentStatus.SUCCEEDED.value
        bank = func.coalesce(a.bank, p.bank, literal(NO_BANK)).label("bank")
        query = (
            select(
                p.merchant_id, p.method, bank, p.currency,
                func.count().label("payment_count"),
                _count_if(succeeded).label("succeeded_count"),
                _count_if(p.status == PaymentStatus.FAILED.value).label("failed_count"),
                _count_if(p.status == PaymentStatus.CLOSED.value).label("closed_count"),
                func.sum(case((succeeded, p.amount_minor), else_=0)).label("succeeded_minor"),
                func.sum(case((succeeded, p.fee_minor), else_=0)).label("fee_minor"),
            )
            .select_from(payments.outerjoin(payment_attempts, a.id == p.succeeded_attempt_id))
            .where(p.created_at >= start, p.created_at < end)
            .group_by(p.merchant_id, p.method, bank, p.currency)
        )
        if merchant_ids is not None:
            query = query.where(p.merchant_id.in_(sorted(merchant_ids)))
        return [
            DailyStats(
                StatsKey(row.merchant_id, business_date, row.method, row.bank, row.currency),
                payment_count=int(row.payment_count),
                succeeded_count=int(row.succeeded_count),
                failed_count=int(row.failed_count),
                closed_count=int(row.closed_count),
                succeeded_minor=int(row.succeeded_minor),
                fee_minor=int(row.fee_minor),
            )
            for row in self._connection.execute(query)
        ]

    def _refund_part(
        self, business_date: date, start: datetime, end: datetime, merchant_ids: Collection[str] | None
    ) -> list[DailyStats]:
        r, p = refunds.c, payments.c
        # Only the refunds merchants asked for: a late-success refund returns a second charge the
        # merchant never saw, from the platform's suspense account, and is none of its figures.
        query = (
            select(
                r.merchant_id, p.method, r.bank, r.currency,
                func.count().label("refund_count"),
                func.sum(r.amount_minor).label("refunded_minor"),
                func.sum(r.fee_returned_minor).label("fee_returned_minor"),
            )
            .join_from(refunds, payments, p.id == r.payment_id)
            .where(
                r.succeeded_at >= start, r.succeeded_at < end,
                r.status == RefundStatus.SUCCEEDED.value, r.kind == RefundKind.MERCHANT.value,
            )
            .group_by(r.merchant_id, p.method, r.bank, r.currency)
        )
        if merchant_ids is not None:
            query = query.where(r.merchant_id.in_(sorted(merchant_ids)))
        return [
            DailyStats(
                StatsKey(row.merchant_id, business_date, row.method, row.bank, row.currency),
                refund_count=int(row.refund_count),
                refunded_minor=int(row.refunded_minor),
                fee_returned_minor=int(row.fee_returned_minor),
            )
            for row in self._connection.execute(query)
        ]

    # ---- reading the figures --------------------------------------------------------------------------

    def daily(self, merchant_id: str | None, first: date, last: date) -> Sequence[DailyStats]:
        s = daily_payment_stats.c
        query = select(daily_payment_stats).where(s.business_date >= first, s.business_date <= last)
        if merchant_id is not None:
            query = query.where(s.merchant_id == merchant_id)
        query = query.order_by(s.business_date, s.merchant_id, s.method, s.bank, s.currency)
        return [_stats_from(row) for row in self._connection.execute(query)]

    def volume_by_method_bank(self, first: date, last: date) -> Sequence[MethodBankVolume]:
        s = daily_payment_stats.c
        query = (
            select(
                s.method, s.bank, s.currency,
                func.sum(s.payment_count), func.sum(s.succeeded_count), func.sum(s.succeeded_minor),
                func.sum(s.fee_minor), func.sum(s.refunded_minor),
            )
            .where(s.business_date >= first, s.business_date <= last)
            .group_by(s.method, s.bank, s.currency)
            .order_by(s.method, s.bank, s.currency)
        )
        return [
            MethodBankVolume(row[0], row[1], row[2], *(int(value) for value in row[3:]))
            for row in self._connection.execute(query)
        ]

    def attempts_by_channel(self, start: datetime, end: datetime) -> Sequence[ChannelAttempts]:
        a = payment_attempts.c
        query = (
            select(
                a.channel, a.bank, func.count(),
                _count_if(a.status == "succeeded"), _count_if(a.status == "failed"),
            )
            .where(a.created_at >= start, a.created_at < end)
            .group_by(a.channel, a.bank)
            .order_by(a.channel, a.bank)
        )
        return [
            ChannelAttempts(row[0], row[1], int(row[2]), int(row[3]), int(row[4]))
            for row in self._connection.execute(query)
        ]

    def ledger_movements(self, codes: Sequence[str], start: datetime, end: datetime) -> Mapping[str, int]:
        query = (
            select(ledger_accounts.c.code, func.coalesce(func.sum(postings.c.amount_minor), 0))
            .select_from(
                postings.join(ledger_accounts, ledger_accounts.c.id == postings.c.account_id).join(
                    journal_entries, journal_entries.c.id == postings.c.entry_id
                )
            )
            .where(
                ledger_accounts.c.code.in_(list(codes)),
                journal_entries.c.created_at >= start,
                journal_entries.c.created_at < end,
            )
            .group_by(ledger_accounts.c.code)
        )
        found = {code: int(total) for code, total in self._connection.execute(query)}
        return {code: found.get(code, 0) for code in codes}

    def payments_by_status(self, business_date: date) -> Sequence[StatusCount]:
        s = daily_payment_stats.c
        query = (
            select(
                s.method, s.bank, func.sum(s.payment_count), func.sum(s.succeeded_count),
                func.sum(s.failed_count), func.sum(s.closed_count),
            )
            .where(s.business_date == business_date)
            .group_by(s.method, s.bank)
        )
        counts: list[StatusCount] = []
        for method, bank, total, succeeded, failed, closed in self._connection.execute(query):
            by_status = {"succeeded": int(succeeded), "failed": int(failed), "closed": int(closed)}
            by_status["open"] = int(total) - sum(by_status.values())
            counts.extend(StatusCount(method, bank, status, count) for status, count in by_status.items())
        return counts

    def pending_event_count(self) -> int:
        query = select(func.count()).select_from(events).where(events.c.status == "pending")
        return int(self._connection.execute(query).scalar_one())

    def record_job_runs(self, runs: Mapping[str, datetime]) -> None:
        for job, ran_at in runs.items():
            updated = self._connection.execute(
                update(worker_job_runs)
                .where(worker_job_runs.c.job == job, worker_job_runs.c.last_run_at < ran_at)
                .values(last_run_at=ran_at)
            )
            if updated.rowcount:
                continue
            exists = self._connection.execute(
                select(worker_job_runs.c.job).where(worker_job_runs.c.job == job)
            ).first()
            if exists is not None:
                continue
            try:
                with self._connection.begin_nested():
                    self._connection.execute(insert(worker_job_runs).values(job=job, last_run_at=ran_at))
            except IntegrityError:
                # Another worker recorded the job first; its time is as good as ours.
                pass

    def job_runs(self) -> Mapping[str, datetime]:
        rows = self._connection.execute(select(worker_job_runs.c.job, worker_job_runs.c.last_run_at))
        return {job: ran_at for job, ran_at in rows}


def _log(source: str) -> Table:
    if source == SOURCE_PAYMENTS:
        return payment_transitions
    if source == SOURCE_REFUNDS:
        return refund_transitions
    raise ValueError(f"unknown change log {source!r}")


def _changes(source: str) -> tuple[Select[Any], Any]:
    """The query of a change log's rows with whose figures they touch, and its id column."""
    if _log(source) is payment_transitions:
        t, p = payment_transitions.c, payments.c
        query = select(
            t.id, p.merchant_id, p.created_at.label("counts_at"), t.created_at.label("recorded_at")
        ).join_from(payment_transitions, payments, p.id == t.payment_id)
        return query, t.id
    rt, r = refund_transitions.c, refunds.c
    query = select(
        rt.id, r.merchant_id, r.succeeded_at.label("counts_at"), rt.created_at.label("recorded_at")
    ).join_from(refund_transitions, refunds, r.id == rt.refund_id)
    return query, rt.id


def _count_if(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _stats_row(row: DailyStats) -> dict[str, object]:
    key = row.key
    return {
        "merchant_id": key.merchant_id,
        "business_date": key.business_date,
        "method": key.method,
        "bank": key.bank,
        "currency": key.currency,
        **{name: getattr(row, name) for name in COUNTERS},
    }


def _stats_from(row: Any) -> DailyStats:
    key = StatsKey(row.merchant_id, row.business_date, row.method, row.bank, row.currency)
    return DailyStats(key, **{name: int(getattr(row, name)) for name in COUNTERS})

