"""The debit-schedule repository port: schedules, per-period bills, and the per-period run claims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.debit_schedule import DebitSchedule, RunStatus


@dataclass(frozen=True, slots=True)
class StaleClaim:
    """A (schedule, period) left ``claimed``: its worker died between the claim and the payment."""

    schedule_id: str
    period: str
    claimed_by: str
    claimed_at: datetime


class DebitScheduleRepository(Protocol):
    def add(self, schedule: DebitSchedule) -> None: ...

    def get(self, schedule_id: str, *, merchant_id: str | None = None) -> DebitSchedule | None: ...

    def of_mandate(self, mandate_id: str) -> Sequence[DebitSchedule]: ...

    def add_bill(self, schedule_id: str, period: str, amount_minor: int, created_at: datetime) -> bool:
        """Records a period's bill; False when that period already has one (bills are not replaced)."""
        ...

    def bill_minor(self, schedule_id: str, period: str) -> int | None: ...

    def candidates(self, day_of_month: int, period: str, *, limit: int) -> Sequence[DebitSchedule]:
        """Active schedules on active mandates whose day has come and whose period is not yet claimed."""
        ...

    def claim_run(self, schedule_id: str, period: str, *, worker_id: str, now: datetime) -> bool:
        """Inserts the (schedule, period) row; False when another worker claimed it first."""
        ...

    def finish_run(self, schedule_id: str, period: str, status: RunStatus, *, payment_id: str | None,
                   failure_code: str | None, now: datetime) -> bool:
        """Records the run's end, from ``claimed`` only; False when another worker finished it first
        (a slow worker and the sweep that took its claim over both finish the same period)."""
        ...

    def run_of(self, schedule_id: str, period: str) -> tuple[RunStatus, str | None, str | None] | None:
        """(status, payment id, failure code) of a period's run, if claimed."""
        ...

    def stale_claims(self, claimed_before: datetime, *, limit: int) -> Sequence[StaleClaim]:
        """Runs still ``claimed`` whose claim is older than ``claimed_before`` (the lease ran out)."""
        ...

    def retake_claim(self, claim: StaleClaim, *, worker_id: str, now: datetime) -> bool:
        """Moves a stale claim to ``worker_id`` with a compare-and-set on its status, holder and
        claim time; False when another worker took it (or finished it) first."""
        ...

    def payment_for(self, merchant_id: str, out_trade_no: str) -> str | None:
        """The id of the merchant's payment under that ``out_trade_no``, if one was created."""
        ...
