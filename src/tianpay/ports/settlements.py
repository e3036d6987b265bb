"""The settlement repository port: merchants' settlement settings, settlements and their lines.

The unique (merchant, business date) settlement and the unique line per journal entry are what
make settling idempotent: the service may run a date again, or on several workers at once, and
an entry is still settled at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from tianpay.domain.settlement import (
    PendingMovement,
    Settlement,
    SettlementLine,
    SettlementSettings,
    SettlementStatus,
)


@dataclass(frozen=True, slots=True)
class SettlementPage:
    settlements: tuple[Settlement, ...]
    has_more: bool


@dataclass(frozen=True, slots=True)
class MerchantCycle:
    """A merchant the daily job settles, and its T+N."""

    merchant_id: str
    cycle_days: int


class SettlementRepository(Protocol):
    def settings(self, merchant_id: str) -> SettlementSettings | None:
        """The merchant's settings, or None when it never set any (T+1, no automatic payout)."""
        ...

    def save_settings(self, settings: SettlementSettings) -> None:
        """Inserts or replaces the merchant's settings."""
        ...

    def merchant_cycles(self) -> Sequence[MerchantCycle]:
        """Every active merchant with its cycle (the default where it set none), by merchant id."""
        ...

    def pending_movements(self, merchant_id: str, *, before: datetime) -> Sequence[PendingMovement]:
        """Journal entries on the merchant's pending account made before ``before`` that no settlement
        holds yet (settlement entries themselves excluded), oldest first."""
        ...

    def get(self, settlement_id: str, *, merchant_id: str | None = None) -> Settlement | None: ...

    def of_date(self, merchant_id: str, business_date: date) -> Settlement | None: ...

    def add(self, settlement: Settlement) -> bool:
        """Inserts the settlement; False (and nothing written) when the merchant's date already has one."""
        ...

    def replace(self, settlement: Settlement, *, expected: SettlementStatus) -> bool:
        """Compare-and-set: writes the settlement's status, totals and entry if it is still ``expected``."""
        ...

    def add_lines(self, settlement_id: str, lines: Sequence[SettlementLine]) -> int:
        """Inserts the lines; returns how many were new (an entry another settlement holds is skipped)."""
        ...

    def lines(self, settlement_id: str) -> Sequence[SettlementLine]:
        """The settlement's lines in the order they were settled."""
        ...

    def page(
        self,
        merchant_id: str,
        *,
        date_from: date | None = None,
        date_to: date | None = None,
        starting_after: str | None = None,
        limit: int = 10,
    ) -> SettlementPage:
        """The merchant's settlements, newest business date first, after the cursor settlement."""
        ...

    def awaiting_payout(self, limit: int) -> list[Settlement]:
        """Settled settlements with a positive net of at least the merchant's minimum payout, whose
        merchant has automatic payout on and a settlement account, and that no payout holds yet;
        oldest first."""
        ...

    def attach_payout(self, settlement_id: str, payout_id: str) -> bool:
        """Compare-and-set: names the payout of a settled settlement that has none; False otherwise
        (already attached to a payout, or not settled)."""
        ...

    def mark_paid(self, settlement_id: str, payout_id: str, now: datetime) -> bool:
        """Compare-and-set ``settled`` → ``paid`` with its payout; False when it was not settled."""
        ...

    def mark_payout_failed(
        self, settlement_id: str, payout_id: str, *, expected: SettlementStatus, now: datetime
    ) -> bool:
        """Compare-and-set ``expected`` (settled, or paid for a bounce) → ``payout_failed``, only while
        ``payout_id`` is the settlement's payout; clears ``paid_at``. False otherwise."""
        ...

    def reattach_payout(self, settlement_id: str, failed_payout_id: str, payout_id: str, now: datetime) -> bool:
        """Compare-and-set ``payout_failed`` with ``failed_payout_id`` → ``settled`` with the new payout;
        False when the settlement is no longer waiting for that retry (another worker or operator won)."""
        ...

    def payout_failed_awaiting(self, limit: int) -> list[Settlement]:
        """``payout_failed`` settlements whose merchant has automatic payout on and a settlement account,
        oldest first (the payout run pays them again once the account changed)."""
        ...
