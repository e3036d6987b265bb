"""The reconciliation port: imported statement files, their staged lines, runs, exceptions, parked items.

Matching happens in the database (staged lines joined to the platform's records by id); the
repository hands the joined rows back in bounded chunks, and the pure rules in
``tianpay.domain.reconciliation`` judge them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from tianpay.domain.reconciliation import (
    ExceptionStatus,
    LineKind,
    ParkedStatus,
    PlatformRecord,
    RecordKind,
    RunStatus,
)
from tianpay.ports.statements import StatementLine


@dataclass(frozen=True, slots=True)
class StatementFile:
    """An imported statement file: where it is kept, its hash and what it declared."""

    id: str
    bank: str
    statement_date: date
    file_name: str
    path: str
    sha256: str
    size_bytes: int
    line_count: int
    amount_minor: int
    fee_minor: int
    imported_at: datetime


@dataclass(frozen=True, slots=True)
class JoinedLine:
    """A staged line with the platform record it names (None: it names none this platform has)."""

    line_no: int
    kind: LineKind
    bank_ref: str
    amount_minor: int
    fee_minor: int
    match_ref: str | None
    record: PlatformRecord | None
    # For an attempt: its payment (a make-good needs it).
    payment_id: str | None = None


@dataclass(frozen=True, slots=True)
class AbsentRecord:
    """A record final at the bank on the platform's side that no statement line names."""

    kind: RecordKind
    record_id: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    bank: str
    record_id: str
    record_kind: RecordKind
    business_date: date
    amount_minor: int
    status: ParkedStatus


@dataclass(frozen=True, slots=True)
class ReconciliationRun:
    id: str
    bank: str
    business_date: date
    status: RunStatus
    file_id: str | None
    summary: Mapping[str, int]
    lease_owner: str | None
    lease_expires_at: datetime | None
    next_try_at: datetime | None
    last_error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReconciliationException:
    """One difference for an operator (差错池); ``suspense_minor`` is what it left in suspense."""

    id: str
    run_id: str
    bank: str
    business_date: date
    kind: str
    dedupe_key: str
    suspense_minor: int
    status: ExceptionStatus
    created_at: datetime
    record_id: str | None = None
    bank_ref: str | None = None
    line_no: int | None = None
    statement_amount_minor: int | None = None
    platform_amount_minor: int | None = None
    entry_id: str | None = None
    resolution: str | None = None
    resolution_entry_id: str | None = None
    resolved_by: str | None = None
    reason: str | None = None
    resolved_at: datetime | None = None


class ReconciliationRepository(Protocol):
    # ---- statement files and staged lines ----
    def file_for(self, bank: str, statement_date: date) -> StatementFile | None:
        """The file imported for (bank, date), if any."""
        ...

    def get_file(self, file_id: str) -> StatementFile | None: ...

    def add_file(self, statement_file: StatementFile) -> None: ...

    def set_file_totals(self, file_id: str, *, line_count: int, amount_minor: int, fee_minor: int) -> None:
        """Writes what the parser counted once every line is staged."""
        ...

    def stage_lines(self, file_id: str, lines: Sequence[StatementLine]) -> None:
        """Bulk-inserts one batch of a file's lines (executemany)."""
        ...

    def resolve_switch_refs(self, file_id: str) -> int:
        """Points the file's POS lines (switch reference, no platform reference) at the POS attempt
        carrying that RRN; returns how many were resolved."""
        ...

    def charges_of_file(self, file_id: str) -> int:
        """What the bank charged on this file: every line's fee plus the charge lines' amounts."""
        ...

    # ---- matching ----
    def count_plain_matches(self, file_id: str, bank: str, duplicates: Collection[str]) -> int:
        """How many of the file's lines are plain matches (see the adapter's ``_LineQuery``): counted
        in SQL, never fetched. ``duplicates`` are records named by more than one line."""
        ...

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
        """The next chunk of the file's lines (by line number) with their records; plain matches
        are left out unless ``include_plain``."""
        ...

    def duplicate_owners(self, file_id: str) -> Mapping[str, tuple[str, int]]:
        """For each record named by a line of this file and by another line of the same bank: the
        (file id, line number) of the line that accounts for it (the earliest); the others are
        duplicates."""
        ...

    def absent_records(
        self, bank: str, start: datetime, end: datetime, *, clearing_only: bool
    ) -> Sequence[AbsentRecord]:
        """Records final at ``bank`` (or, for the card switch, through it) in [start, end) that no
        line of the bank's statements names."""
        ...

    def has_line(self, bank: str, record_id: str) -> bool: ...

    def unlisted_in_flight_refunds(self, bank: str, *, requested_before: datetime) -> Sequence[str]:
        """Ids of refunds still in flight at ``bank`` (created, processing, unknown), requested before
        ``requested_before``, that no line of the bank's statements names, oldest first."""
        ...

    def parked_records(self, bank: str, *, before: date | None = None) -> Sequence[ParkedRecord]:
        """Records still parked at ``bank`` (parked on a date before ``before``, when given)."""
        ...

    def parked_ids(self, bank: str, record_ids: Iterable[str]) -> frozenset[str]:
        """Which of these records are parked at ``bank`` now."""
        ...

    def park(self, record: ParkedRecord, run_id: str, now: datetime) -> bool:
        """Parks a record; False when it was parked before (a resumed run)."""
        ...

    def set_parked_status(self, bank: str, record_id: str, status: ParkedStatus, run_id: str, now: datetime) -> bool:
        """Moves a parked record on (compare-and-set from PARKED)."""
        ...

    # ---- runs ----
    def get_run(self, bank: str, business_date: date) -> ReconciliationRun | None: ...

    def get_run_by_id(self, run_id: str) -> ReconciliationRun | None: ...

    def add_run(self, run: ReconciliationRun) -> bool:
        """Inserts a pending run; False when one exists for (bank, date)."""
        ...

    def claim_run(self, run_id: str, owner: str, now: datetime, lease_until: datetime) -> bool:
        """Takes the run's lease: only an unfinished run whose lease is free, expired or ours."""
        ...

    def set_run_file(self, run_id: str, owner: str, file_id: str, now: datetime) -> None: ...

    def finish_run(self, run_id: str, owner: str, summary: Mapping[str, int], now: datetime) -> bool: ...

    def release_run(
        self, run_id: str, owner: str, *, error: str | None, next_try_at: datetime | None, now: datetime
    ) -> None:
        """Gives the lease back (the statement is not ready, the download failed …)."""
        ...

    def finished_banks(self, business_date: date) -> frozenset[str]:
        """Banks whose reconciliation of ``business_date`` finished (settlement waits for them)."""
        ...

    def runs(self, *, business_date: date | None = None, limit: int = 100) -> Sequence[ReconciliationRun]: ...

    # ---- exceptions ----
    def add_exception(self, exception: ReconciliationException) -> bool:
        """Opens an exception; False when one with its dedupe key exists (a resumed run)."""
        ...

    def get_exception(self, exception_id: str) -> ReconciliationException | None: ...

    def follow_ups_of(self, record_id: str) -> Sequence[ReconciliationException]:
        """The ``booked_to_suspense`` follow-ups naming a record, oldest first (what the owning service
        consults before it records the bank's success: docs/reconciliation.md)."""
        ...

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
        """open → resolved (compare-and-set)."""
        ...

    def exceptions(
        self,
        *,
        run_id: str | None = None,
        status: ExceptionStatus | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> Sequence[ReconciliationException]: ...
