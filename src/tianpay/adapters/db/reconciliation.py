"""The reconciliation repository: statement files, staged lines, runs, exceptions and parked records.

Lines are staged with executemany in batches and matched in SQL (a staged line joined to attempts,
refunds and payouts by id); joined rows come back in chunks by line number, so a million-line file
never sits in memory and, on SQLite, no read transaction holds the write lock while results are
written. Claims (runs, parked records, exceptions) are compare-and-set or insert-if-absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

from sqlalchemy import Connection, and_, bindparam, case, exists, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tianpay.domain.reconciliation import (
    BOOKED_TO_SUSPENSE,
    CLEARING_ONLY_BANKS,
    SWITCH_REVERSED_PREFIX,
    ExceptionStatus,
    LineKind,
    ParkedStatus,
    PlatformRecord,
    RecordKind,
    RecordState,
    RunStatus,
    record_state,
)
from tianpay.domain.refund import RefundStatus
from tianpay.ports.reconciliation import (
    AbsentRecord,
    JoinedLine,
    ParkedRecord,
    ReconciliationException,
    ReconciliationRun,
    StatementFile,
)
from tianpay.ports.statements import StatementItemKind, StatementLine

from .tables import (
    payment_attempts,
    payments,
    payouts,
    pos_transactions,
    reconciliation_exceptions,
    reconciliation_parked,
    reconciliation_runs,
    refunds,
    statement_files,
    statement_lines,
)

# POS attempts are made on the card switch's channel (services/pos.py POS_CHANNEL) and carry the
# switch's RRN as their bank reference.
POS_CHANNEL = "tcs"
WALLET_CHANNEL = "wallet"
_SWITCH_REF_BATCH = 500
_STAGE_COLUMNS = (
    "file_id, line_no, bank, kind, bank_ref, amount_minor, fee_minor, platform_ref, switch_ref, match_ref, occurred_at"
)
_STAGE_LINES_SQLITE = f"INSERT INTO statement_lines ({_STAGE_COLUMNS}) VALUES ({', '.join(['?'] * 11)})"  # noqa: S608
_STAGE_LINES_PG = f"INSERT INTO statement_lines ({_STAGE_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})"  # noqa: S608


_LINE_KINDS: Final = {kind.value: kind for kind in LineKind}
_KIND_TEXT: Final = {kind: str(kind.value) for kind in StatementItemKind}
# More duplicated records than this in one file and the fast path below is not worth its SQL.
_MAX_EXCLUDED_DUPLICATES = 1000


class _LineQuery:
    """Staged lines outer-joined to the records they name, and ``plain``: 1 for a line that is, by
    ``tianpay.domain.reconciliation.judge_line``'s rules, a plain MATCHED (a collection, refund or
    payout line naming a succeeded record of its kind at its bank, for the same amount, neither
    parked nor named twice), else 0.

    Plain matches are the bulk of every statement and book nothing one by one, so they are counted
    in SQL; every other line comes back to be judged by the domain. The equivalence is tested
    (tests/reconciliation/test_reconciliation_service.py, "fast path").
    """

    def __init__(self, bank: str, duplicates: Collection[str]) -> None:
        line = self.line = statement_lines.alias("l")
        attempt = payment_attempts.alias("a")
        payment = payments.alias("pm")
        refund = refunds.alias("r")
        payout = payouts.alias("p")
        parked = reconciliation_parked.alias("k")
        self.columns = (
            line.c.line_no, line.c.kind, line.c.bank_ref, line.c.amount_minor, line.c.fee_minor, line.c.match_ref,
            attempt.c.status, attempt.c.amount_minor, attempt.c.bank, attempt.c.channel, attempt.c.payment_id,
            payment.c.refunded_minor,
            refund.c.status, refund.c.amount_minor, refund.c.bank,
            payout.c.status, payout.c.amount_minor, payout.c.bank,
            parked.c.status,
        )
        self.joined = (
            line.outerjoin(attempt, attempt.c.id == line.c.match_ref)
            .outerjoin(payment, and_(payment.c.id == attempt.c.payment_id, attempt.c.channel == POS_CHANNEL))
            .outerjoin(refund, refund.c.id == line.c.match_ref)
            .outerjoin(payout, payout.c.id == line.c.match_ref)
            .outerjoin(
                parked,
                and_(
                    parked.c.bank == line.c.bank,
                    parked.c.record_id == line.c.match_ref,
                    parked.c.status == ParkedStatus.PARKED.value,
                ),
            )
        )
        at_bank = attempt.c.channel == POS_CHANNEL if bank in CLEARING_ONLY_BANKS else attempt.c.bank == bank
        matched = or_(
            and_(
                line.c.kind == LineKind.COLLECTION.value, attempt.c.status == "succeeded",
                attempt.c.amount_minor == line.c.amount_minor, at_bank,
            ),
            and_(
                line.c.kind == LineKind.REFUND.value, refund.c.status == "succeeded",
                refund.c.amount_minor == -line.c.amount_minor, refund.c.bank == bank,
            ),
            and_(
                line.c.kind == LineKind.PAYOUT.value, payout.c.status.in_(("succeeded", "returned")),
                payout.c.amount_minor == -line.c.amount_minor, payout.c.bank == bank,
            ),
        )
        conditions = [line.c.match_ref.is_not(None), parked.c.record_id.is_(None), matched]
        if len(duplicates) > _MAX_EXCLUDED_DUPLICATES:
            conditions.append(literal(False))
        elif duplicates:
            conditions.append(line.c.match_ref.not_in(list(duplicates)))
        # CASE, not a bare predicate: NULLs from the outer joins must read as "not plain", never
        # as unknown (which a NOT would drop from both sides).
        self.plain = case((and_(*conditions), 1), else_=0)


class SqlReconciliationRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def _insert(self) -> Callable[..., Any]:
        return postgresql.insert if self._connection.dialect.name == "postgresql" else sqlite.insert

    # ---- statement files and staged lines --------------------------------------------------------

    def file_for(self, bank: str, statement_date: date) -> StatementFile | None:
        t = statement_files.c
        row = self._connection.execute(
            select(statement_files)
            .where(t.bank == bank, t.statement_date == statement_date.isoformat())
            .order_by(t.imported_at)
            .limit(1)
        ).first()
        return None if row is None else _file(row)

    def get_file(self, file_id: str) -> StatementFile | None:
        row = self._connection.execute(select(statement_files).where(statement_files.c.id == file_id)).first()
        return None if row is None else _file(row)

    def add_file(self, statement_file: StatementFile) -> None:
        f = statement_file
        self._connection.execute(
            insert(statement_files).values(
                id=f.id, bank=f.bank, statement_date=f.statement_date.isoformat(), file_name=f.file_name,
                path=f.path, sha256=f.sha256, size_bytes=f.size_bytes, line_count=f.line_count,
                amount_minor=f.amount_minor, fee_minor=f.fee_minor, imported_at=f.imported_at,
            )
        )

    def set_file_totals(self, file_id: str, *, line_count: int, amount_minor: int, fee_minor: int) -> None:
        self._connection.execute(
            update(statement_files)
            .where(statement_files.c.id == file_id)
            .values(line_count=line_count, amount_minor=amount_minor, fee_minor=fee_minor)
        )

    def stage_lines(self, file_id: str, lines: Sequence[StatementLine]) -> None:
        if not lines:
            return
        # The driver's own executemany with plain tuples: SQLAlchemy's per-row parameter processing
        # would cost more than the insert itself on a million lines (docs/reconciliation.md). Lines
        # share their times to the second, so each distinct time is converted once per batch.
        postgres = self._connection.dialect.name == "postgresql"
        convert = _pg_time if postgres else _sqlite_time
        times: dict[datetime | None, object] = {None: None}
        rows = []
        for line in lines:
            moment = line.occurred_at
            stored = times.get(moment, times)
            if stored is times:
                stored = times[moment] = convert(moment)
            switch_key = line.switch_ref if line.original_ref is None else _switch_key(line)
            rows.append(
                (
                    file_id, line.line_no, line.bank, _KIND_TEXT[line.kind], line.bank_ref, line.amount_minor,
                    line.fee_minor, line.platform_ref, switch_key, line.platform_ref, stored,
                )
            )
        self._connection.exec_driver_sql(_STAGE_LINES_PG if postgres else _STAGE_LINES_SQLITE, rows)

    def resolve_switch_refs(self, file_id: str) -> int:
        lines = statement_lines.c
        pending = self._connection.execute(
            select(lines.line_no, lines.switch_ref).where(
                lines.file_id == file_id, lines.platform_ref.is_(None), lines.switch_ref.is_not(None)
            )
        ).all()
        resolved = 0
        for start in range(0, len(pending), _SWITCH_REF_BATCH):
            batch = pending[start : start + _SWITCH_REF_BATCH]
            a = payment_attempts.c
            by_rrn = {
                row.bank_reference: row.id
                for row in self._connection.execute(
                    select(a.id, a.bank_reference).where(
                        a.channel == POS_CHANNEL, a.bank_reference.in_([row.switch_ref for row in batch])
                    )
                )
            }
            by_rrn.update(self._voided_attempts([row.switch_ref for row in batch if row.switch_ref not in by_rrn]))
            updates = [
                {"f": file_id, "n": row.line_no, "ref": by_rrn[row.switch_ref]}
                for row in batch
                if row.switch_ref in by_rrn
            ]
            if updates:
                self._connection.execute(
                    update(statement_lines)
                    .where(lines.file_id == bindparam("f"), lines.line_no == bindparam("n"))
                    .values(match_ref=bindparam("ref")),
                    updates,
                )
            resolved += len(updates)
        return resolved + self._pair_switch_reversals(file_id)

    def _voided_attempts(self, void_rrns: Sequence[str]) -> dict[str, str]:
        # A void's line names the void's own RRN (HBB's statement cannot name the purchase): the
        # platform recorded that RRN on its void, which names the purchase's payment.
        if not void_rrns:
            return {}
        t, a = pos_transactions.c, payment_attempts.c
        rows = self._connection.execute(
            select(t.rrn, a.id)
            .join(payment_attempts, and_(a.payment_id == t.payment_id, a.channel == POS_CHANNEL))
            .where(t.kind == "void", t.rrn.in_(void_rrns), a.bank_reference.is_not(None))
        ).all()
        return {str(row.rrn): str(row.id) for row in rows}

    def _pair_switch_reversals(self, file_id: str) -> int:
        # A purchase and its reversal that both reached the reserve and name no platform record cancel
        # out: the answer to the purchase was lost, the platform reversed it, nothing moved in the end.
        lines = statement_lines.c
        pairs = self._connection.execute(
            select(lines.switch_ref)
            .where(lines.file_id == file_id, lines.match_ref.is_(None), lines.switch_ref.is_not(None))
            .group_by(lines.switch_ref)
            .having(
                and_(
                    func.count() == 2,
                    func.sum(lines.amount_minor) == 0,
                    func.sum(case((lines.amount_minor > 0, 1), else_=0)) == 1,
                )
            )
        ).scalars().all()
        for start in range(0, len(pairs), _SWITCH_REF_BATCH):
            batch = list(pairs[start : start + _SWITCH_REF_BATCH])
            for switch_ref in batch:
                self._connection.execute(
                    update(statement_lines)
                    .where(lines.file_id == file_id, lines.switch_ref == switch_ref, lines.match_ref.is_(None))
                    .values(match_ref=SWITCH_REVERSED_PREFIX + switch_ref)
                )
        return 2 * len(pairs)

    def charges_of_file(self, file_id: str) -> int:
        lines = statement_lines.c
        fees = self._connection.execute(
            select(func.coalesce(func.sum(lines.fee_minor), 0)).where(lines.file_id == file_id)
        ).scalar_one()
        charge_lines = self._connection.execute(
            select(func.coalesce(func.sum(lines.amount_minor), 0)).where(
                lines.file_id == file_id, lines.kind == LineKind.FEE.value
            )
        ).scalar_one()
        return int(fees) - int(charge_lines)

    # ---- matching --------------------------------------------------------------------------------

    def count_plain_matches(self, file_id: str, bank: str, duplicates: Collection[str]) -> int:
        query = _LineQuery(bank, duplicates)
        counted = self._connection.execute(
            select(func.count()).select_from(query.joined).where(query.line.c.file_id == file_id, query.plain == 1)
        ).scalar_one()
        return int(counted)

    def joined_lines(
        self,
        file_id: str,
        bank: str,
        *,
        after_line_no: int,
        limit: int,
        duplicates: Collection[str] = (),
        include_plain: bool = False,
    ) -> Sequence[JoinedLine]:
        query = _LineQuery(bank, duplicates)
        line = query.line
        statement = (
            select(*query.columns)
            .select_from(query.joined)
            .where(line.c.file_id == file_id, line.c.line_no > after_line_no)
            .order_by(line.c.line_no)
            .limit(limit)
        )
        if not include_plain:
            statement = statement.where(query.plain == 0)
        # Fetched whole (a chunk) and read by position: per-row attribute access would dominate.
        return [_joined(bank, row) for row in self._connection.execute(statement).all()]

    def duplicate_owners(self, file_id: str) -> Mapping[str, tuple[str, int]]:
        mine = statement_lines.alias("m")
        other = statement_lines.alias("o")
        # First only the (kind, record) pairs that some other line names too: normally none, so a
        # million-line file costs one index probe per line and no memory.
        pairs = self._connection.execute(
            select(mine.c.bank, mine.c.kind, mine.c.match_ref)
            .select_from(
                mine.join(
                    other,
                    and_(
                        other.c.bank == mine.c.bank,
                        other.c.match_ref == mine.c.match_ref,
                        other.c.kind == mine.c.kind,
                        or_(other.c.file_id != mine.c.file_id, other.c.line_no != mine.c.line_no),
                    ),
                )
            )
            .where(mine.c.file_id == file_id, mine.c.match_ref.is_not(None))
            .distinct()
        ).all()
        owners: dict[str, tuple[str, int]] = {}
        lines, files = statement_lines.c, statement_files.c
        for pair in pairs:
            seen = self._connection.execute(
                select(files.statement_date, lines.line_no, lines.file_id)
                .join(statement_files, files.id == lines.file_id)
                .where(lines.bank == pair.bank, lines.match_ref == pair.match_ref, lines.kind == pair.kind)
            ).all()
            _, line_no, owner_file = min((str(row.statement_date), int(row.line_no), str(row.file_id)) for row in seen)
            owners[f"{pair.kind}:{pair.match_ref}"] = (owner_file, line_no)
        return owners

    def absent_records(
        self, bank: str, start: datetime, end: datetime, *, clearing_only: bool
    ) -> Sequence[AbsentRecord]:
        lines = statement_lines.c

        def unlisted(record_id: Any) -> Any:
            return ~exists().where(lines.bank == bank, lines.match_ref == record_id)

        a = payment_attempts.c
        at_bank = a.channel == POS_CHANNEL if clearing_only else and_(a.bank == bank, a.channel != WALLET_CHANNEL)
        # A POS purchase voided or reversed the same day never reaches the switch's settlement, so
        # neither its purchase nor its undoing is expected on a statement (BANKS.md TCS).
        undone = exists().where(
            payments.c.id == a.payment_id, a.channel == POS_CHANNEL,
            payments.c.refunded_minor >= payments.c.amount_minor,
        )
        found = [
            AbsentRecord(RecordKind.ATTEMPT, row.id, int(row.amount_minor))
            for row in self._connection.execute(
                select(a.id, a.amount_minor)
                .where(
                    a.status == "succeeded", a.updated_at >= start, a.updated_at < end, at_bank, unlisted(a.id),
                    ~undone,
                )
                .order_by(a.id)
            )
        ]
        if clearing_only:
            return found
        r = refunds.c
        found += [
            AbsentRecord(RecordKind.REFUND, row.id, -int(row.amount_minor))
            for row in self._connection.execute(
                select(r.id, r.amount_minor)
                .where(
                    r.status == "succeeded", r.bank == bank, r.succeeded_at >= start, r.succeeded_at < end,
                    unlisted(r.id),
                )
                .order_by(r.id)
            )
        ]
        p = payouts.c
        found += [
            AbsentRecord(RecordKind.PAYOUT, row.id, -int(row.amount_minor))
            for row in self._connection.execute(
                select(p.id, p.amount_minor)
                .where(
                    p.status.in_(("succeeded", "returned")), p.bank == bank, p.succeeded_at >= start,
                    p.succeeded_at < end, unlisted(p.id),
                )
                .order_by(p.id)
            )
        ]
        return found

    def has_line(self, bank: str, record_id: str) -> bool:
        lines = statement_lines.c
        return self._connection.execute(
            select(lines.line_no).where(lines.bank == bank, lines.match_ref == record_id).limit(1)
        ).first() is not None

    def unlisted_in_flight_refunds(self, bank: str, *, requested_before: datetime) -> Sequence[str]:
        lines = statement_lines.c
        r = refunds.c
        in_flight = [status.value for status in RefundStatus if status.is_in_flight]
        return [
            str(row.id)
            for row in self._connection.execute(
                select(r.id)
                .where(
                    r.bank == bank, r.status.in_(in_flight), r.created_at < requested_before,
                    ~exists().where(lines.bank == bank, lines.match_ref == r.id),
                )
                .order_by(r.created_at, r.id)
            )
        ]

    def parked_records(self, bank: str, *, before: date | None = None) -> Sequence[ParkedRecord]:
        k = reconciliation_parked.c
        query = select(reconciliation_parked).where(k.bank == bank, k.status == ParkedStatus.PARKED.value)
        if before is not None:
            query = query.where(k.business_date < before.isoformat())
        return [_parked(row) for row in self._connection.execute(query.order_by(k.business_date, k.record_id))]

    def parked_ids(self, bank: str, record_ids: Iterable[str]) -> frozenset[str]:
        ids = list(record_ids)
        if not ids:
            return frozenset()
        k = reconciliation_parked.c
        rows = self._connection.execute(
            select(k.record_id).where(k.bank == bank, k.status == ParkedStatus.PARKED.value, k.record_id.in_(ids))
        )
        return frozenset(str(row.record_id) for row in rows)

    def park(self, record: ParkedRecord, run_id: str, now: datetime) -> bool:
        stmt = (
            self._insert()(reconciliation_parked)
            .values(
                bank=record.bank, record_id=record.record_id, record_kind=record.record_kind.value,
                business_date=record.business_date.isoformat(), amount_minor=record.amount_minor,
                status=record.status.value, run_id=run_id, created_at=now, updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["bank", "record_id"])
            .returning(reconciliation_parked.c.record_id)
        )
        return self._connection.execute(stmt).first() is not None

    def set_parked_status(self, bank: str, record_id: str, status: ParkedStatus, run_id: str, now: datetime) -> bool:
        k = reconciliation_parked.c
        result = self._connection.execute(
            update(reconciliation_parked)
            .where(k.bank == bank, k.record_id == record_id, k.status == ParkedStatus.PARKED.value)
            .values(status=status.value, resolved_run_id=run_id, updated_at=now)
        )
        return result.rowcount == 1

    # ---- runs ------------------------------------------------------------------------------------

    def get_run(self, bank: str, business_date: date) -> ReconciliationRun | None:
        t = reconciliation_runs.c
        row = self._connection.execute(
            select(reconciliation_runs).where(t.bank == bank, t.business_date == business_date.isoformat())
        ).first()
        return None if row is None else _run(row)

    def get_run_by_id(self, run_id: str) -> ReconciliationRun | None:
        row = self._connection.execute(select(reconciliation_runs).where(reconciliation_runs.c.id == run_id)).first()
        return None if row is None else _run(row)

    def add_run(self, run: ReconciliationRun) -> bool:
        stmt = (
            self._insert()(reconciliation_runs)
            .values(
                id=run.id, bank=run.bank, business_date=run.business_date.isoformat(), status=run.status.value,
                file_id=run.file_id, summary=json.dumps(dict(run.summary)), created_at=run.created_at,
                updated_at=run.created_at,
            )
            .on_conflict_do_nothing(index_elements=["bank", "business_date"])
            .returning(reconciliation_runs.c.id)
        )
        return self._connection.execute(stmt).first() is not None

    def claim_run(self, run_id: str, owner: str, now: datetime, lease_until: datetime) -> bool:
        t = reconciliation_runs.c
        result = self._connection.execute(
            update(reconciliation_runs)
            .where(
                t.id == run_id,
                t.status != RunStatus.FINISHED.value,
                or_(t.lease_owner.is_(None), t.lease_expires_at < now, t.lease_owner == owner),
            )
            .values(
                status=RunStatus.RUNNING.value, lease_owner=owner, lease_expires_at=lease_until,
                started_at=func.coalesce(t.started_at, now), updated_at=now,
            )
        )
        return result.rowcount == 1

    def set_run_file(self, run_id: str, owner: str, file_id: str, now: datetime) -> None:
        t = reconciliation_runs.c
        self._connection.execute(
            update(reconciliation_runs)
            .where(t.id == run_id, t.lease_owner == owner)
            .values(file_id=file_id, updated_at=now)
        )

    def finish_run(self, run_id: str, owner: str, summary: Mapping[str, int], now: datetime) -> bool:
        t = reconciliation_runs.c
        result = self._connection.execute(
            update(reconciliation_runs)
            .where(t.id == run_id, t.lease_owner == owner, t.status == RunStatus.RUNNING.value)
            .values(
                status=RunStatus.FINISHED.value, summary=json.dumps(dict(summary), sort_keys=True),
                lease_owner=None, lease_expires_at=None, last_error=None, finished_at=now, updated_at=now,
            )
        )
        return result.rowcount == 1

    def release_run(
        self, run_id: str, owner: str, *, error: str | None, next_try_at: datetime | None, now: datetime
    ) -> None:
        t = reconciliation_runs.c
        self._connection.execute(
            update(reconciliation_runs)
            .where(t.id == run_id, t.lease_owner == owner, t.status == RunStatus.RUNNING.value)
            .values(
                status=RunStatus.PENDING.value, lease_owner=None, lease_expires_at=None, last_error=error,
                next_try_at=next_try_at, updated_at=now,
            )
        )

    def finished_banks(self, business_date: date) -> frozenset[str]:
        t = reconciliation_runs.c
        rows = self._connection.execute(
            select(t.bank).where(t.business_date == business_date.isoformat(), t.status == RunStatus.FINISHED.value)
        )
        return frozenset(str(row.bank) for row in rows)

    def runs(self, *, business_date: date | None = None, limit: int = 100) -> Sequence[ReconciliationRun]:
        t = reconciliation_runs.c
        query = select(reconciliation_runs)
        if business_date is not None:
            query = query.where(t.business_date == business_date.isoformat())
        query = query.order_by(t.business_date.desc(), t.bank).limit(limit)
        return [_run(row) for row in self._connection.execute(query)]

    # ---- exceptions ------------------------------------------------------------------------------

    def add_exception(self, exception: ReconciliationException) -> bool:
        e = exception
        stmt = (
            self._insert()(reconciliation_exceptions)
            .values(
                id=e.id, run_id=e.run_id, bank=e.bank, business_date=e.business_date.isoformat(), kind=e.kind,
                dedupe_key=e.dedupe_key, record_id=e.record_id, bank_ref=e.bank_ref, line_no=e.line_no,
                statement_amount_minor=e.statement_amount_minor, platform_amount_minor=e.platform_amount_minor,
                suspense_minor=e.suspense_minor, entry_id=e.entry_id, status=e.status.value,
                created_at=e.created_at,
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(reconciliation_exceptions.c.id)
        )
        return self._connection.execute(stmt).first() is not None

    def get_exception(self, exception_id: str) -> ReconciliationException | None:
        row = self._connection.execute(
            select(reconciliation_exceptions).where(reconciliation_exceptions.c.id == exception_id)
        ).first()
        return None if row is None else _exception(row)

    def follow_ups_of(self, record_id: str) -> Sequence[ReconciliationException]:
        t = reconciliation_exceptions.c
        query = (
            select(reconciliation_exceptions)
            .where(t.record_id == record_id, t.kind == BOOKED_TO_SUSPENSE)
            .order_by(t.created_at, t.id)
        )
        return [_exception(row) for row in self._connection.execute(query)]

    def resolve_exception(
        self,
        exception_id: str,
        *,
        resolution: str,
        entry_id: str | None,
        resolved_by: str,
        reason: str,
        now: datetime,
    ) -> bool:
        t = reconciliation_exceptions.c
        result = self._connection.execute(
            update(reconciliation_exceptions)
            .where(t.id == exception_id, t.status == ExceptionStatus.OPEN.value)
            .values(
                status=ExceptionStatus.RESOLVED.value, resolution=resolution, resolution_entry_id=entry_id,
                resolved_by=resolved_by, reason=reason, resolved_at=now,
            )
        )
        return result.rowcount == 1

    def exceptions(
        self,
        *,
        run_id: str | None = None,
        status: ExceptionStatus | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> Sequence[ReconciliationException]:
        t = reconciliation_exceptions.c
        query = select(reconciliation_exceptions)
        if run_id is not None:
            query = query.where(t.run_id == run_id)
        if status is not None:
            query = query.where(t.status == status.value)
        if kind is not None:
            query = query.where(t.kind == kind)
        query = query.order_by(t.created_at, t.id).limit(limit)
        return [_exception(row) for row in self._connection.execute(query)]


# ---- row mapping -----------------------------------------------------------------------------------


def _sqlite_time(value: datetime | None) -> str | None:
    # How UtcDateTime stores a time on SQLite: naive UTC as text ("YYYY-MM-DD HH:MM:SS[.ffffff]").
    if value is None:
        return None
    offset = value.utcoffset()
    return (value - offset if offset else value).replace(tzinfo=None).isoformat(" ")


def _pg_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _switch_key(line: StatementLine) -> str | None:
    # A POS void or reversal is matched to the purchase it undoes, by the purchase's RRN.
    if line.original_ref and line.kind is StatementItemKind.REFUND:
        return line.original_ref
    return line.switch_ref


def _file(row: Any) -> StatementFile:
    return StatementFile(
        id=row.id, bank=row.bank, statement_date=date.fromisoformat(row.statement_date), file_name=row.file_name,
        path=row.path, sha256=row.sha256, size_bytes=int(row.size_bytes), line_count=int(row.line_count),
        amount_minor=int(row.amount_minor), fee_minor=int(row.fee_minor), imported_at=row.imported_at,
    )


def _joined(bank: str, row: Any) -> JoinedLine:
    (line_no, kind_text, bank_ref, amount_minor, fee_minor, match_ref, a_status, a_amount, a_bank, a_channel,
     payment_id, pos_refunded_minor, r_status, r_amount, r_bank, p_status, p_amount, p_bank, parked_status) = row
    kind = _LINE_KINDS[kind_text]
    record: PlatformRecord | None = None
    is_parked = parked_status is not None
    if a_status is not None:
        # A line names an attempt at its own bank; the card switch's file names POS attempts,
        # whichever reserve the switch settles them into.
        at_this_bank = a_channel == POS_CHANNEL if bank in CLEARING_ONLY_BANKS else a_bank == bank
        if at_this_bank and kind is LineKind.REFUND and a_channel == POS_CHANNEL:
            # A POS void or reversal gives the purchase's money back: the platform's side is the
            # purchase's payment, refunded in full when it recorded the undoing.
            undone = int(pos_refunded_minor or 0) >= int(a_amount)
            record = PlatformRecord(
                RecordKind.REFUND, match_ref, RecordState.SUCCEEDED if undone else RecordState.FAILED,
                -int(a_amount), is_parked,
            )
        elif at_this_bank:
            record = PlatformRecord(
                RecordKind.ATTEMPT, match_ref, record_state(RecordKind.ATTEMPT, a_status), int(a_amount), is_parked
            )
    elif r_status is not None and r_bank == bank:
        record = PlatformRecord(
            RecordKind.REFUND, match_ref, record_state(RecordKind.REFUND, r_status), -int(r_amount), is_parked
        )
    elif p_status is not None and p_bank == bank:
        record = PlatformRecord(
            RecordKind.PAYOUT, match_ref, record_state(RecordKind.PAYOUT, p_status), -int(p_amount), is_parked
        )
    return JoinedLine(
        line_no=int(line_no), kind=kind, bank_ref=bank_ref, amount_minor=int(amount_minor),
        fee_minor=int(fee_minor), match_ref=match_ref, record=record,
        payment_id=payment_id if record is not None and record.kind is RecordKind.ATTEMPT else None,
    )


def _parked(row: Any) -> ParkedRecord:
    return ParkedRecord(
        bank=row.bank, record_id=row.record_id, record_kind=RecordKind(row.record_kind),
        business_date=date.fromisoformat(row.business_date), amount_minor=int(row.amount_minor),
        status=ParkedStatus(row.status),
    )


def _run(row: Any) -> ReconciliationRun:
    return ReconciliationRun(
        id=row.id, bank=row.bank, business_date=date.fromisoformat(row.business_date), status=RunStatus(row.status),
        file_id=row.file_id, summary={k: int(v) for k, v in json.loads(row.summary or "{}").items()},
        lease_owner=row.lease_owner, lease_expires_at=row.lease_expires_at, next_try_at=row.next_try_at,
        last_error=row.last_error, started_at=row.started_at, finished_at=row.finished_at,
        created_at=row.created_at,
    )


def _exception(row: Any) -> ReconciliationException:
    return ReconciliationException(
        id=row.id, run_id=row.run_id, bank=row.bank, business_date=date.fromisoformat(row.business_date),
        kind=row.kind, dedupe_key=row.dedupe_key, suspense_minor=int(row.suspense_minor),
        status=ExceptionStatus(row.status), created_at=row.created_at, record_id=row.record_id,
        bank_ref=row.bank_ref, line_no=row.line_no, statement_amount_minor=row.statement_amount_minor,
        platform_amount_minor=row.platform_amount_minor, entry_id=row.entry_id, resolution=row.resolution,
        resolution_entry_id=row.resolution_entry_id, resolved_by=row.resolved_by, reason=row.reason,
        resolved_at=row.resolved_at,
    )
