"""The refunds port: how services store refunds, their transition trail and the refunded amounts.

Status writes are compare-and-set (``update`` writes only if the row is still in the status the
caller read). The payment's refunded amount moves only by conditional writes that keep it between
zero and the payment's amount, whatever runs concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.money import Money
from tianpay.domain.refund import Refund, RefundKind, RefundStatus
from tianpay.ports.payments import LateSuccessRefund


@dataclass(frozen=True, slots=True)
class RefundTransition:
    """One recorded state change of a refund, with its time and cause."""

    refund_id: str
    from_status: str | None
    to_status: str
    event: str
    cause: str
    created_at: datetime


class RefundRepository(Protocol):
    def add(self, refund: Refund) -> None:
        """Inserts a new refund; raises Conflict if the merchant already used its out_refund_no.

        After a Conflict the unit of work is spent (PostgreSQL has aborted its transaction): let the
        error leave it so it rolls back. The idempotency claim made first keeps duplicates from
        getting this far.
        """
        ...

    def get(self, refund_id: str, *, merchant_id: str | None = None) -> Refund | None:
        """The refund, or None (also when it belongs to another merchant than ``merchant_id``)."""
        ...

    def id_of_out_refund_no(self, merchant_id: str, out_refund_no: str) -> str | None:
        """The id of the merchant's refund under ``out_refund_no``, or None when there is none."""
        ...

    def get_for_update(self, refund_id: str) -> Refund | None:
        """The refund, its row locked until the unit of work ends."""
        ...

    def update(self, refund: Refund, *, expected: RefundStatus) -> bool:
        """Writes the refund's status, bank answer, times and query schedule if it is still ``expected``."""
        ...

    def of_payment(self, payment_id: str, *, kind: RefundKind | None = RefundKind.MERCHANT) -> Sequence[Refund]:
        """The payment's refunds of ``kind`` (None: every kind), oldest first."""
        ...

    def add_refunded(self, payment_id: str, amount: Money) -> bool:
        """Adds ``amount`` to the succeeded payment's refunded amount unless that would exceed the payment.

        One conditional write (``… WHERE refunded_minor + :amount <= amount_minor``): False means the
        refund does not fit (or the payment is not succeeded) and nothing changed.
        """
        ...

    def give_back_refunded(self, payment_id: str, amount: Money) -> bool:
        """Takes a failed refund's ``amount`` off the payment's refunded amount (never below zero)."""
        ...

    def due_for_query(self, now: datetime, *, limit: int) -> Sequence[Refund]:
        """In-flight refunds whose next query is due at ``now``, most overdue first.

        On PostgreSQL the rows are locked and rows another worker holds are skipped; the caller
        reschedules them in the same unit of work, so no two workers query the same refund at once.
        """
        ...

    def reschedule(self, refund_id: str, *, expected: RefundStatus, next_query_at: datetime, query_count: int) -> bool:
        """Sets when the refund is next queried, if it is still ``expected``."""
        ...

    def record_transition(self, transition: RefundTransition) -> None: ...

    def transitions_of(self, refund_id: str) -> Sequence[RefundTransition]:
        """The refund's recorded transitions, oldest first."""
        ...

    def pending_late_successes(self, *, limit: int) -> Sequence[LateSuccessRefund]:
        """Late-success rows still ``pending``, oldest first (locked and skip-locked on PostgreSQL)."""
        ...

    def set_late_success_status(self, attempt_id: str, *, expected: str, status: str) -> bool:
        """Moves a late-success row from ``expected`` to ``status``; False if it was not ``expected``."""
        ...
