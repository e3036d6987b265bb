"""The mandate repository port: mandates and the debits taken under them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.mandate import Mandate, MandateStatus


@dataclass(frozen=True, slots=True)
class MandateDebit:
    payment_id: str
    mandate_id: str
    period: str
    amount_minor: int
    created_at: datetime


class MandateRepository(Protocol):
    def add(self, mandate: Mandate) -> None: ...

    def get(self, mandate_id: str, *, merchant_id: str | None = None) -> Mandate | None: ...

    def get_for_update(self, mandate_id: str) -> Mandate | None:
        """Locks the row: debits of one mandate are checked against its limits one at a time."""
        ...

    def update(self, mandate: Mandate, *, expected: MandateStatus) -> bool:
        """Compare-and-set on ``status``; False when another writer got there first."""
        ...

    def add_debit(self, debit: MandateDebit) -> None: ...

    def debit_of(self, payment_id: str) -> MandateDebit | None:
        """The debit recorded for ``payment_id``, if one was (a payment is recorded at most once)."""
        ...

    def month_total_minor(self, mandate_id: str, period: str, *, excluding_payment_id: str | None = None) -> int:
        """The sum of the period's debits whose payment has not failed or closed, leaving out
        ``excluding_payment_id``'s own debit (a repeat must not count its debit twice)."""
        ...

    def due_for_expiry(self, today_iso: str, *, limit: int) -> Sequence[Mandate]: ...

    def of_member(self, member_id: str) -> Sequence[Mandate]:
        """The member's mandates at every merchant, newest first (the wallet lists them)."""
        ...
