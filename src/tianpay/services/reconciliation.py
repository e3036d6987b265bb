"""Reconciliation (对账) use cases: import a bank's statement, reconcile a (bank, business date), resolve.

A run downloads the statement through the bank's StatementChannel, keeps the raw file and its hash,
stages its lines in bulk inside one unit of work (nothing is used unless the whole file parsed),
then walks the staged lines in chunks joined to the platform's records, judges each pair with the
pure rules of ``tianpay.domain.reconciliation`` and books every resolution as a new ledger entry.
Runs are claimed with a lease, so several workers never run the same one; a finished run is final.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from tianpay.domain.errors import Conflict, DomainError, NotFound
from tianpay.domain.ledger import JournalEntry
from tianpay.domain.money import Money
from tianpay.domain.posting_rules import bank_charges
from tianpay.domain.reconciliation import (
    BOOKED_TO_SUSPENSE,
    CLEARING_ONLY_BANKS,
    EXCEPTION_OUTCOMES,
    MAKE_GOOD_REFUSED,
    SWITCH_REVERSED_PREFIX,
    ExceptionStatus,
    LineKind,
    Outcome,
    ParkedStatus,
    RecordKind,
    ResolutionAction,
    RunStatus,
    business_date_of,
    business_day_bounds,
    check_resolution,
    is_recorded_since,
    judge_absent_record,
    judge_line,
    line_difference_entry,
    record_state,
    resolution_entry,
    short_entry,
    suspense_booking,
    suspense_of,
)
from tianpay.ports.channels import ChannelResult
from tianpay.ports.channels import Outcome as ChannelOutcome
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.reconciliation import (
    JoinedLine,
    ParkedRecord,
    ReconciliationException,
    ReconciliationRun,
    StatementFile,
)
from tianpay.ports.statements import (
    DownloadedStatement,
    StatementChannel,
    StatementDirectory,
    StatementMalformed,
    StatementNotReady,
    StatementUnavailable,
)
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services.payouts import apply_payout_result, apply_payout_return

log = structlog.stdlib.get_logger(__name__)

RUN_ID_PREFIX = "rcn"
# Who resolves what reconciliation settles by itself (a follow-up whose line its service recorded since).
SYSTEM_OPERATOR = "reconciliation"
EXCEPTION_ID_PREFIX = "rcx"
FILE_ID_PREFIX = "stf"

# What a run reports, in this order (the CLI prints them; the JSON carries them all).
SUMMARY_KEYS = (
    "lines", "matched", "matched_cross_day", "reversed_at_switch", "made_good", "parked", "short",
    "amount_mismatch", "bank_only", "bank_only_failed", "duplicate", "make_good_refused", "charge_lines",
    "exceptions", "charges_minor", "suspense_minor", "statement_amount_minor",
)

Progress = Callable[[int, int], None]


class StatementConflict(Conflict):
    """A different file for a (bank, date) whose statement is already imported: an operator decides."""

    code = "statement_conflict"


class InvalidResolution(DomainError):
    code = "resolution_invalid"


@dataclass(frozen=True, slots=True)
class ReconciliationPolicy:
    """Where statements are kept and how runs are paced (``Settings`` supplies the values)."""

    statements_dir: Path
    lease_s: float = 1800.0
    retry_s: float = 300.0
    chunk_lines: int = 5000
    stage_batch: int = 5000


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one call to ``reconcile`` did. ``status``: finished, already_finished, not_ready,
    unavailable, malformed, busy (another worker holds the run)."""

    bank: str
    business_date: date
    status: str
    run_id: str | None
    summary: Mapping[str, int]
    detail: str = ""

    @property
    def is_finished(self) -> bool:
        return self.status in ("finished", "already_finished")


# ---- import --------------------------------------------------------------------------------------------


def statement_path(statements_dir: Path, bank: str, business_date: date) -> Path:
    """Where a downloaded statement is written: ``<data-dir>/statements/<bank>/<date>/``."""
    return statements_dir / bank / business_date.isoformat() / f"{bank}-{business_date.isoformat()}.statement"


def download_statement(channel: StatementChannel, business_date: date, statements_dir: Path) -> DownloadedStatement:
    """Fetches the raw file; raises StatementNotReady or StatementUnavailable from the channel."""
    into = statement_path(statements_dir, channel.code, business_date)
    into.parent.mkdir(parents=True, exist_ok=True)
    return channel.download_statement(business_date, into)


def import_statement(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channel: StatementChannel,
    downloaded: DownloadedStatement,
    *,
    batch_size: int = 5000,
) -> StatementFile:
    """Stages a downloaded file's lines; importing the same file again returns the first import.

    The whole file is parsed and staged in one unit of work, so a file that turns out malformed at
    its end (StatementMalformed, raised by the parser when its lines do not add up to its totals)
    leaves nothing behind. Raises StatementConflict for another file of an imported (bank, date).
    """
    bank, business_date = downloaded.bank, downloaded.statement_date
    sha256, size_bytes = _digest(downloaded.path)
    with uow_factory() as uow:
        existing = uow.reconciliation.file_for(bank, business_date)
    if existing is not None:
        if existing.sha256 == sha256:
            return existing
        raise StatementConflict(
            f"{bank}'s statement of {business_date} was imported from another file ({existing.file_name}, "
            f"sha256 {existing.sha256[:12]}…); an operator must supersede it first",
            param="statement",
        )
    file_id = ids.new(FILE_ID_PREFIX)
    with uow_factory() as uow:
        # The file row goes first (the lines refer to it) with provisional totals, rewritten below
        # once the parser has seen every line; it commits only with all of them.
        count = amount_minor = fee_minor = 0
        batch = []
        placeholder = StatementFile(
            id=file_id, bank=bank, statement_date=business_date, file_name=downloaded.file_name,
            path=str(downloaded.path), sha256=sha256, size_bytes=size_bytes, line_count=0, amount_minor=0,
            fee_minor=0, imported_at=clock.now(),
        )
        uow.reconciliation.add_file(placeholder)
        for line in channel.read_statement(downloaded.path, business_date):
            if line.bank != bank:
                raise StatementMalformed(f"line {line.line_no} belongs to {line.bank}, not {bank}")
            batch.append(line)
            count += 1
            amount_minor += line.amount_minor
            fee_minor += line.fee_minor
            if len(batch) >= batch_size:
                uow.reconciliation.stage_lines(file_id, batch)
                batch = []
        uow.reconciliation.stage_lines(file_id, batch)
        uow.reconciliation.set_file_totals(file_id, line_count=count, amount_minor=amount_minor, fee_minor=fee_minor)
        uow.reconciliation.resolve_switch_refs(file_id)
        uow.commit()
    log.info("reconciliation.statement_imported", bank=bank, date=business_date.isoformat(), lines=count)
    with uow_factory() as uow:
        imported = uow.reconciliation.get_file(file_id)
    if imported is None:
        raise NotFound(f"statement file {file_id} vanished after its import")
    return imported


def _digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


# ---- a run ---------------------------------------------------------------------------------------------


def reconcile(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    statements: StatementDirectory,
    bank: str,
    business_date: date,
    *,
    policy: ReconciliationPolicy,
    worker_id: str,
    progress: Progress | None = None,
) -> RunReport:
    """Reconciles ``bank``'s statement of ``business_date`` against the platform; idempotent.

    A finished run is returned as it is (rerunning a date changes nothing); a run another worker
    holds is left alone (``busy``); a statement the bank has not published yet releases the run
    for a later try (``not_ready``).
    """
    statements.statements(bank)  # NotFound for a bank that sends no statement, before any run exists
    run = _ensure_run(uow_factory, clock, ids, bank, business_date)
    if run.status is RunStatus.FINISHED:
        return RunReport(bank, business_date, "already_finished", run.id, run.summary)
    now = clock.now()
    with uow_factory() as uow:
        claimed = uow.reconciliation.claim_run(run.id, worker_id, now, now + timedelta(seconds=policy.lease_s))
        uow.commit()
    if not claimed:
        return RunReport(bank, business_date, "busy", run.id, {})
    try:
        statement_file = _statement_file(uow_factory, clock, ids, statements, bank, business_date, policy)
    except (StatementNotReady, StatementUnavailable, StatementMalformed, StatementConflict) as error:
        status = {
            StatementNotReady: "not_ready", StatementUnavailable: "unavailable", StatementMalformed: "malformed",
        }.get(type(error), "conflict")
        _release(uow_factory, clock, run.id, worker_id, f"{status}: {error}", policy.retry_s)
        log.warning("reconciliation.statement_not_used", bank=bank, date=business_date.isoformat(), status=status)
        return RunReport(bank, business_date, status, run.id, {}, detail=str(error))
    except BaseException:
        _release(uow_factory, clock, run.id, worker_id, "interrupted", policy.retry_s)
        raise
    with uow_factory() as uow:
        uow.reconciliation.set_run_file(run.id, worker_id, statement_file.id, clock.now())
        uow.commit()
    try:
        summary = _run(uow_factory, clock, ids, run, statement_file, policy, progress)
    except BaseException:
        # The lease stays with this worker until it expires, then another resumes: every write of
        # a run is idempotent (entry ids, exception dedupe keys, parked claims).
        log.exception("reconciliation.run_failed", bank=bank, date=business_date.isoformat())
        raise
    with uow_factory() as uow:
        finished = uow.reconciliation.finish_run(run.id, worker_id, summary, clock.now())
        uow.commit()
    if not finished:
        return RunReport(bank, business_date, "busy", run.id, summary, detail="the lease was lost before the end")
    log.info("reconciliation.run_finished", bank=bank, date=business_date.isoformat(), **summary)
    return RunReport(bank, business_date, "finished", run.id, summary)


def _ensure_run(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, bank: str, business_date: date
) -> ReconciliationRun:
    with uow_factory() as uow:
        run = uow.reconciliation.get_run(bank, business_date)
        if run is None:
            now = clock.now()
            uow.reconciliation.add_run(
                ReconciliationRun(
                    id=ids.new(RUN_ID_PREFIX), bank=bank, business_date=business_date, status=RunStatus.PENDING,
                    file_id=None, summary={}, lease_owner=None, lease_expires_at=None, next_try_at=None,
                    last_error=None, started_at=None, finished_at=None, created_at=now,
                )
            )
            uow.commit()
    with uow_factory() as uow:
        run = uow.reconciliation.get_run(bank, business_date)
    if run is None:
        raise NotFound(f"no reconciliation run for {bank} {business_date}")
    return run


def _release(
    uow_factory: UnitOfWorkFactory, clock: Clock, run_id: str, worker_id: str, error: str, retry_s: float
) -> None:
    now = clock.now()
    with uow_factory() as uow:
        uow.reconciliation.release_run(
            run_id, worker_id, error=error[:500], next_try_at=now + timedelta(seconds=retry_s), now=now
        )
        uow.commit()


def _statement_file(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    statements: StatementDirectory,
    bank: str,
    business_date: date,
    policy: ReconciliationPolicy,
) -> StatementFile:
    with uow_factory() as uow:
        existing = uow.reconciliation.file_for(bank, business_date)
    if existing is not None:
        return existing
    channel = statements.statements(bank)
    downloaded = download_statement(channel, business_date, policy.statements_dir)
    return import_statement(uow_factory, clock, ids, channel, downloaded, batch_size=policy.stage_batch)


@dataclass
class _Tally:
    counts: Counter[str]

    def add(self, key: str, amount: int = 1) -> None:
        self.counts[key] += amount

    def summary(self) -> dict[str, int]:
        return {key: int(self.counts.get(key, 0)) for key in SUMMARY_KEYS}


def _run(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    run: ReconciliationRun,
    statement_file: StatementFile,
    policy: ReconciliationPolicy,
    progress: Progress | None,
) -> dict[str, int]:
    bank, business_date = run.bank, run.business_date
    tally = _Tally(Counter())
    tally.add("statement_amount_minor", statement_file.amount_minor)
    with uow_factory() as uow:
        duplicates = uow.reconciliation.duplicate_owners(statement_file.id)
    duplicated = {key.split(":", 1)[1] for key in duplicates}
    # The bulk of a statement, plain matches, never leaves the database: only the other lines come
    # back to be judged, and the plain ones are what remains of the file's line count.
    judged = 0
    after = 0
    while True:
        with uow_factory() as uow:
            chunk = uow.reconciliation.joined_lines(
                statement_file.id, bank, after_line_no=after, limit=policy.chunk_lines, duplicates=duplicated
            )
        if not chunk:
            break
        judged += len(chunk)
        _reconcile_chunk(uow_factory, clock, ids, run, statement_file, chunk, duplicates, tally)
        after = chunk[-1].line_no
        if progress is not None:
            progress(after, statement_file.line_count)
    plain = statement_file.line_count - judged
    tally.add("lines", plain)
    tally.add("matched", plain)
    if progress is not None:
        progress(statement_file.line_count, statement_file.line_count)
    _book_charges(uow_factory, bank, business_date, statement_file, tally)
    _park_absent(uow_factory, clock, run, tally)
    _query_absent_refunds(uow_factory, clock, run)
    _expire_parked(uow_factory, clock, ids, run, tally)
    settle_recorded_since(uow_factory, clock, bank=bank)
    return tally.summary()


def _reconcile_chunk(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    run: ReconciliationRun,
    statement_file: StatementFile,
    chunk: Sequence[JoinedLine],
    duplicates: Mapping[str, tuple[str, int]],
    tally: _Tally,
) -> None:
    bank = run.bank
    make_goods: list[JoinedLine] = []
    with uow_factory() as uow:
        wrote = False
        for line in chunk:
            tally.add("lines")
            if line.record is None and (line.match_ref or "").startswith(SWITCH_REVERSED_PREFIX):
                tally.add("reversed_at_switch")
                continue
            owner = duplicates.get(f"{line.kind.value}:{line.match_ref}")
            is_duplicate = owner is not None and owner != (statement_file.id, line.line_no)
            judged = judge_line(line.kind, line.amount_minor, line.record, is_duplicate=is_duplicate)
            outcome = judged.outcome
            if outcome is Outcome.MATCHED:
                tally.add("matched")
            elif outcome is Outcome.CHARGE:
                tally.add("charge_lines")
            elif outcome is Outcome.MATCHED_CROSS_DAY:
                tally.add("matched_cross_day")
                assert line.record is not None
                uow.reconciliation.set_parked_status(
                    bank, line.record.record_id, ParkedStatus.MATCHED, run.id, clock.now()
                )
                wrote = True
            elif outcome is Outcome.MADE_GOOD:
                make_goods.append(line)
            elif outcome in EXCEPTION_OUTCOMES:
                _open_line_exception(uow, clock, ids, run, line, outcome, judged.difference_minor, tally)
                wrote = True
        if wrote:
            uow.commit()
    for line in make_goods:
        _make_good(uow_factory, clock, ids, run, line, tally)


def _open_line_exception(
    uow: Any,
    clock: Clock,
    ids: IdGenerator,
    run: ReconciliationRun,
    line: JoinedLine,
    outcome: Outcome,
    difference_minor: int,
    tally: _Tally,
) -> None:
    entry = line_difference_entry(
        bank=run.bank, bank_ref=line.bank_ref, outcome=outcome, difference_minor=difference_minor
    )
    if entry is not None:
        uow.ledger.post(entry)
    suspense_minor = suspense_of(outcome, difference_minor, bank=run.bank)
    uow.reconciliation.add_exception(
        ReconciliationException(
            id=ids.new(EXCEPTION_ID_PREFIX), run_id=run.id, bank=run.bank, business_date=run.business_date,
            kind=outcome.value, dedupe_key=f"{run.id}:line:{line.line_no}", suspense_minor=suspense_minor,
            status=ExceptionStatus.OPEN, created_at=clock.now(), record_id=line.match_ref, bank_ref=line.bank_ref,
            line_no=line.line_no, statement_amount_minor=line.amount_minor,
            platform_amount_minor=line.record.amount_minor if line.record is not None else None,
            entry_id=entry.id if entry is not None else None,
        )
    )
    tally.add(outcome.value)
    tally.add("exceptions")
    tally.add("suspense_minor", suspense_minor)


def _make_good(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    run: ReconciliationRun,
    line: JoinedLine,
    tally: _Tally,
) -> None:
    """补单: the statement is the bank's explicit answer about a record still in flight here."""
    record = line.record
    assert record is not None
    result = ChannelResult(
        ChannelOutcome.SUCCEEDED, bank_reference=line.bank_ref, amount=Money.cny(abs(line.amount_minor)),
        bank_message=f"{run.bank} statement of {run.business_date.isoformat()}",
    )
    source = f"{run.bank} statement {run.business_date.isoformat()}"
    accepted = False
    if record.kind is RecordKind.ATTEMPT:
        from tianpay.services.gateway import Applied, apply_payment_result

        applied = apply_payment_result(uow_factory, clock, ids, record.record_id, result, source=source)
        accepted = applied is not Applied.REJECTED
    elif record.kind is RecordKind.REFUND:
        from tianpay.services.refunds import apply_refund_result

        try:
            apply_refund_result(uow_factory, clock, ids, record.record_id, result)
            accepted = True
        except DomainError as error:
            log.error("reconciliation.refund_make_good_refused", refund_id=record.record_id, error=error.code)
    else:
        accepted = _make_good_payout(
            uow_factory, clock, record.record_id, result, is_return=line.kind is LineKind.PAYOUT_RETURN
        )
    if accepted:
        tally.add("made_good")
        log.info("reconciliation.made_good", bank=run.bank, record_id=record.record_id, kind=record.kind.value)
        return
    # The money is in the reserve, the platform could not record it: nothing is booked (a later
    # query may still record it, and booking it twice would be worse); an operator looks.
    with uow_factory() as uow:
        uow.reconciliation.add_exception(
            ReconciliationException(
                id=ids.new(EXCEPTION_ID_PREFIX), run_id=run.id, bank=run.bank, business_date=run.business_date,
                kind=MAKE_GOOD_REFUSED, dedupe_key=f"{run.id}:line:{line.line_no}", suspense_minor=0,
                status=ExceptionStatus.OPEN, created_at=clock.now(), record_id=record.record_id,
                bank_ref=line.bank_ref, line_no=line.line_no, statement_amount_minor=line.amount_minor,
                platform_amount_minor=record.amount_minor,
            )
        )
        uow.commit()
    tally.add("make_good_refused")
    tally.add("exceptions")


def _make_good_payout(
    uow_factory: UnitOfWorkFactory, clock: Clock, payout_id: str, result: ChannelResult, *, is_return: bool
) -> bool:
    # A payout line completes a payout still in flight; a bounce line (退票) records the bounce whose
    # notice never came (the payouts service records the success first if that was lost too).
    apply = apply_payout_return if is_return else apply_payout_result
    try:
        apply(uow_factory, clock, payout_id, result)
    except DomainError as error:
        log.error("reconciliation.payout_make_good_refused", payout_id=payout_id, error=error.code)
        return False
    return True


def _book_charges(
    uow_factory: UnitOfWorkFactory, bank: str, business_date: date, statement_file: StatementFile, tally: _Tally
) -> None:
    with uow_factory() as uow:
        charges_minor = uow.reconciliation.charges_of_file(statement_file.id)
        if charges_minor > 0 and bank not in CLEARING_ONLY_BANKS:
            entry = bank_charges(bank=bank, statement_date=business_date.isoformat(), amount=Money.cny(charges_minor))
            uow.ledger.post(entry)
            uow.commit()
    tally.add("charges_minor", charges_minor)


def _park_absent(uow_factory: UnitOfWorkFactory, clock: Clock, run: ReconciliationRun, tally: _Tally) -> None:
    """Records final here during the date that no statement line names wait for the next statement."""
    start, end = business_day_bounds(run.business_date)
    with uow_factory() as uow:
        absent = uow.reconciliation.absent_records(
            run.bank, start, end, clearing_only=run.bank in CLEARING_ONLY_BANKS
        )
        for record in absent:
            uow.reconciliation.park(
                ParkedRecord(
                    bank=run.bank, record_id=record.record_id, record_kind=record.kind,
                    business_date=run.business_date, amount_minor=record.amount_minor, status=ParkedStatus.PARKED,
                ),
                run.id,
                clock.now(),
            )
        uow.commit()
    tally.add("parked", len(absent))


def _query_absent_refunds(uow_factory: UnitOfWorkFactory, clock: Clock, run: ReconciliationRun) -> None:
    """Refunds still in flight that the date's statement does not name are queried now, not left.

    The statement cannot settle them (no line, no answer), and their bank's query can: the refund
    re-query job asks at its next tick instead of at the end of a doubling wait, and a bank that
    still has no record of the refund after its window fails it (docs/refunds.md).
    """
    _, end = business_day_bounds(run.business_date)
    now = clock.now()
    with uow_factory() as uow:
        requeried = 0
        for refund_id in uow.reconciliation.unlisted_in_flight_refunds(run.bank, requested_before=end):
            refund = uow.refunds.get(refund_id)
            if refund is None or refund.next_query_at is None or refund.next_query_at <= now:
                continue
            if uow.refunds.reschedule(refund.id, expected=refund.status, next_query_at=now,
                                      query_count=refund.query_count):  # fmt: skip
                requeried += 1
        uow.commit()
    if requeried:
        log.info("reconciliation.refunds_requeried", bank=run.bank, business_date=str(run.business_date),
                 refunds=requeried)  # fmt: skip


def _expire_parked(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, run: ReconciliationRun, tally: _Tally
) -> None:
    """Records parked on an earlier date: found since (cross-day), or 短款 now."""
    with uow_factory() as uow:
        parked = uow.reconciliation.parked_records(run.bank, before=run.business_date)
        for record in parked:
            if uow.reconciliation.has_line(run.bank, record.record_id):
                uow.reconciliation.set_parked_status(
                    run.bank, record.record_id, ParkedStatus.MATCHED, run.id, clock.now()
                )
                tally.add("matched_cross_day")
                continue
            judged = judge_absent_record(parked_on=record.business_date, business_date=run.business_date)
            if judged is not Outcome.SHORT:
                continue
            entry = short_entry(bank=run.bank, record_id=record.record_id, amount_minor=record.amount_minor)
            if entry is not None:
                uow.ledger.post(entry)
            suspense_minor = suspense_of(Outcome.SHORT, record.amount_minor, bank=run.bank)
            uow.reconciliation.add_exception(
                ReconciliationException(
                    id=ids.new(EXCEPTION_ID_PREFIX), run_id=run.id, bank=run.bank, business_date=run.business_date,
                    kind=Outcome.SHORT.value, dedupe_key=f"short:{run.bank}:{record.record_id}",
                    suspense_minor=suspense_minor, status=ExceptionStatus.OPEN, created_at=clock.now(),
                    record_id=record.record_id, platform_amount_minor=record.amount_minor,
                    entry_id=entry.id if entry is not None else None,
                )
            )
            uow.reconciliation.set_parked_status(run.bank, record.record_id, ParkedStatus.SHORT, run.id, clock.now())
            tally.add("short")
            tally.add("exceptions")
            tally.add("suspense_minor", suspense_minor)
        uow.commit()


# ---- the worker's schedule -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DailySchedule:
    """When statements are fetched: ``delay_s`` after the business date's cutoff (the banks publish
    after midnight), for dates up to ``window_days`` back that are not finished yet."""

    delay_s: float = 3600.0
    window_days: int = 3


def dates_due(now: datetime, schedule: DailySchedule) -> list[date]:
    """Business dates whose statements should be published by ``now``, oldest first."""
    today = business_date_of(now)
    due = []
    for back in range(schedule.window_days, 0, -1):
        day = today - timedelta(days=back)
        _, cutoff = business_day_bounds(day)
        if now >= cutoff + timedelta(seconds=schedule.delay_s):
            due.append(day)
    return due


def reconcile_due(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    statements: StatementDirectory,
    now: datetime,
    *,
    policy: ReconciliationPolicy,
    schedule: DailySchedule,
    worker_id: str,
) -> int:
    """One tick of the daily job: tries every unfinished (bank, date) that is due; returns how many
    runs finished. A statement not ready yet is tried again ``policy.retry_s`` later."""
    finished = 0
    for business_date in dates_due(now, schedule):
        for bank in statements.statement_banks():
            with uow_factory() as uow:
                run = uow.reconciliation.get_run(bank, business_date)
            if run is not None and run.status is RunStatus.FINISHED:
                continue
            if run is not None and run.next_try_at is not None and run.next_try_at > now:
                continue
            if run is not None and run.lease_owner not in (None, worker_id) and (
                run.lease_expires_at is not None and run.lease_expires_at > now
            ):
                continue
            try:
                report = reconcile(
                    uow_factory, clock, ids, statements, bank, business_date, policy=policy, worker_id=worker_id
                )
            except Exception:
                # One bank's failure must not hold up the others; its lease expires and it is retried.
                log.exception("reconciliation.due_run_failed", bank=bank, date=business_date.isoformat())
                continue
            if report.status == "finished":
                finished += 1
    return finished


# ---- reading and resolving ---------------------------------------------------------------------------


def finished_banks(uow_factory: UnitOfWorkFactory, business_date: date) -> frozenset[str]:
    """Banks whose reconciliation of ``business_date`` finished (what settlement waits for)."""
    with uow_factory() as uow:
        return uow.reconciliation.finished_banks(business_date)


def run_of(uow_factory: UnitOfWorkFactory, bank: str, business_date: date) -> ReconciliationRun | None:
    with uow_factory() as uow:
        return uow.reconciliation.get_run(bank, business_date)


def exceptions_of(
    uow_factory: UnitOfWorkFactory,
    *,
    run_id: str | None = None,
    status: ExceptionStatus | None = None,
    limit: int = 100,
) -> list[ReconciliationException]:
    with uow_factory() as uow:
        return list(uow.reconciliation.exceptions(run_id=run_id, status=status, limit=limit))


def resolve_exception(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    exception_id: str,
    *,
    action: ResolutionAction | str,
    operator: str,
    reason: str,
) -> ReconciliationException:
    """Closes an open exception, booking what it left in suspense as a new entry (docs/reconciliation.md).

    ``write_off`` books it to ``platform:bank_cost``, ``recovered`` through ``bank:B:reserve``,
    ``dismiss`` books nothing and is allowed only when nothing is in suspense (and, for a refused
    make-good, only once its service has recorded the line). ``book_to_suspense`` books a refused
    make-good's line between the reserve and suspense and opens the follow-up exception that holds
    it; ``recorded_since`` takes such a booking back once the service recorded the line itself.
    Resolving again with the same action is a no-op; with another action it is a Conflict.
    """
    try:
        chosen = ResolutionAction(action)
    except ValueError:
        raise InvalidResolution(
            f"action must be one of {', '.join(a.value for a in ResolutionAction)}", param="action"
        ) from None
    if not reason.strip():
        raise InvalidResolution("a resolution needs a reason", param="reason")
    if not operator.strip():
        raise InvalidResolution("a resolution names its operator", param="operator")
    with uow_factory() as uow:
        exception = uow.reconciliation.get_exception(exception_id)
        if exception is None:
            raise NotFound(f"no reconciliation exception {exception_id}", param="exception_id")
        if exception.status is ExceptionStatus.RESOLVED:
            if exception.resolution == chosen.value:
                return exception
            raise Conflict(f"exception {exception_id} was already resolved ({exception.resolution})", param="action")
        check_resolution(
            kind=exception.kind, bank=exception.bank, action=chosen,
            is_recorded_since=_is_recorded_since(uow, exception),
        )
        entry: JournalEntry | None
        if chosen is ResolutionAction.BOOK_TO_SUSPENSE:
            entry = _book_to_suspense(uow, clock, exception)
        else:
            entry = resolution_entry(
                exception_id=exception.id, bank=exception.bank, suspense_minor=exception.suspense_minor, action=chosen
            )
        if entry is not None:
            uow.ledger.post(entry)
        if not uow.reconciliation.resolve_exception(
            exception_id, resolution=chosen.value, entry_id=entry.id if entry is not None else None,
            resolved_by=operator, reason=reason, now=clock.now(),
        ):
            raise Conflict(f"exception {exception_id} changed while it was being resolved", param="exception_id")
        uow.commit()
    with uow_factory() as uow:
        resolved = uow.reconciliation.get_exception(exception_id)
    assert resolved is not None
    log.info("reconciliation.exception_resolved", exception_id=exception_id, action=chosen.value, operator=operator)
    return resolved


def follow_up_id(exception_id: str) -> str:
    """The id of the exception a ``book_to_suspense`` opens: derived from the refused one, so the
    booking, the resolution and the follow-up are one idempotent step."""
    return f"{exception_id}_s"


def _book_to_suspense(uow: UnitOfWork, clock: Clock, exception: ReconciliationException) -> JournalEntry:
    """Opens the follow-up that holds the line in suspense, inside the resolving unit of work; returns
    the entry (the caller posts it with the resolution)."""
    amount_minor = exception.statement_amount_minor or 0
    entry, suspense_minor = suspense_booking(
        exception_id=exception.id, bank=exception.bank, statement_amount_minor=amount_minor
    )
    uow.reconciliation.add_exception(
        ReconciliationException(
            id=follow_up_id(exception.id), run_id=exception.run_id, bank=exception.bank,
            business_date=exception.business_date, kind=BOOKED_TO_SUSPENSE,
            dedupe_key=f"suspense:{exception.id}", suspense_minor=suspense_minor, status=ExceptionStatus.OPEN,
            created_at=clock.now(), record_id=exception.record_id, bank_ref=exception.bank_ref,
            line_no=exception.line_no, statement_amount_minor=exception.statement_amount_minor,
            platform_amount_minor=exception.platform_amount_minor, entry_id=entry.id,
        )
    )
    return entry


def _is_recorded_since(uow: UnitOfWork, exception: ReconciliationException) -> bool:
    """Whether the record a refused make-good (or its follow-up) names is now recorded by its service."""
    if exception.kind not in (MAKE_GOOD_REFUSED, BOOKED_TO_SUSPENSE) or exception.record_id is None:
        return False
    found = _record_now(uow, exception.record_id)
    if found is None:
        return False
    kind, status = found
    return is_recorded_since(kind, record_state(kind, status), exception.statement_amount_minor or 0)


def _record_now(uow: UnitOfWork, record_id: str) -> tuple[RecordKind, str] | None:
    attempt = uow.payments.get_attempt(record_id)
    if attempt is not None:
        return RecordKind.ATTEMPT, attempt.status.value
    refund = uow.refunds.get(record_id)
    if refund is not None:
        return RecordKind.REFUND, refund.status.value
    payout = uow.payouts.get(record_id)
    if payout is not None:
        return RecordKind.PAYOUT, payout.status.value
    return None


def settle_recorded_since(uow_factory: UnitOfWorkFactory, clock: Clock, *, bank: str | None = None) -> int:
    """Resolves ``recorded_since`` every open follow-up in suspense whose service has recorded its line
    since (a query after the fee plan came back …); returns how many. Each run calls it for its bank,
    so the reserve is never counted twice for longer than a day."""
    with uow_factory() as uow:
        follow_ups = uow.reconciliation.exceptions(status=ExceptionStatus.OPEN, kind=BOOKED_TO_SUSPENSE, limit=1000)
        due = [e for e in follow_ups if (bank is None or e.bank == bank) and _is_recorded_since(uow, e)]
    settled = 0
    for exception in due:
        try:
            resolve_exception(
                uow_factory, clock, exception.id, action=ResolutionAction.RECORDED_SINCE,
                operator=SYSTEM_OPERATOR, reason="its service recorded the line since; the booking is taken back",
            )
        except DomainError as error:
            # An operator resolved it in between: theirs stands.
            log.warning("reconciliation.recorded_since_not_applied", exception_id=exception.id, error=error.code)
            continue
        settled += 1
    return settled
