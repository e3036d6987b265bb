"""The debit-schedule repository port: schedules, per-period bills, and the per-period run claims."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tianpay.domain.debit_schedule import DebitSchedule, RunStatus


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
                   failure_code: str | None, now: datetime) -> None: ...

    def run_of(self, schedule_id: str, period: str) -> tuple[RunStatus, str | None, str | None] | None:
        """(status, payment id, failure code) of a period's run, if claimed."""
        ...
