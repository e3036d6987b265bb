"""The payments port: how services store payments, their attempts and the trail of their transitions.

Status writes are compare-and-set: ``update`` and ``update_attempt`` write only if the row is still
in the status the caller read, and say whether they did. A service that must see every attempt of a
payment consistently (to decide whether any is still in flight) locks the payment row first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.money import Money
from tianpay.domain.payment import AttemptStatus, Payment, PaymentAttempt, PaymentMethod, PaymentStatus


@dataclass(frozen=True, slots=True)
class PaymentFilter:
    """What a merchant may narrow a list of its payments by; None means any."""

    status: PaymentStatus | None = None
    method: PaymentMethod | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    out_trade_no: str | None = None
    # The bank that took the money (the succeeded attempt's), or the one the merchant named.
    bank: str | None = None
    # Inclusive bounds on the amount, in minor units.
    amount_min_minor: int | None = None
    amount_max_minor: int | None = None


@dataclass(frozen=True, slots=True)
class PagePosition:
    """Where a page of payments (newest first) ended: the next page starts after it."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded state change of a payment (``attempt_id`` None) or of one of its attempts."""

    payment_id: str
    attempt_id: str | None
    from_status: str | None
    to_status: str
    event: str
    cause: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LateSuccessRefund:
    """An attempt that succeeded after another attempt of its payment had: owed back to the payer."""

    attempt_id: str
    payment_id: str
    bank: str
    amount: Money
    bank_reference: str | None
    status: str
    created_at: datetime


class PaymentRepository(Protocol):
    def add(self, payment: Payment) -> None:
        """Inserts a new payment; raises Conflict if the merchant already used its out_trade_no.

        After a Conflict the unit of work is spent (PostgreSQL has aborted its transaction): let the
        error leave it so it rolls back. The idempotency claim made first keeps duplicates from
        getting this far.
        """
        ...

    def get(self, payment_id: str, *, merchant_id: str | None = None) -> Payment | None:
        """The payment, or None (also when it belongs to another merchant than ``merchant_id``)."""
        ...

    def id_of_out_trade_no(self, merchant_id: str, out_trade_no: str) -> str | None:
        """The id of the merchant's payment under ``out_trade_no``, or None when there is none."""
        ...

    def get_for_update(self, payment_id: str) -> Payment | None:
        """The payment, its row locked until the unit of work ends (serialises its attempts)."""
        ...

    def update(self, payment: Payment, *, expected: PaymentStatus) -> bool:
        """Writes the payment's status, amounts and times if its stored status is ``expected``."""
        ...

    def list_for_merchant(
        self, merchant_id: str, filters: PaymentFilter, *, after: PagePosition | None, limit: int
    ) -> Sequence[Payment]:
        """Up to ``limit`` of the merchant's payments, newest first, after ``after``."""
        ...

    def iter_for_merchant(
        self, merchant_id: str, filters: PaymentFilter, *, batch_size: int = 500
    ) -> Iterator[Payment]:
        """Every matching payment of the merchant, newest first, read from the database in batches
        (a server-side cursor on PostgreSQL), so an export of a year never sits in memory at once."""
        ...

    def due_for_expiry(self, now: datetime, *, limit: int) -> Sequence[Payment]:
        """Payments still ``created`` whose expiry has passed, oldest expiry first.

        On PostgreSQL the rows are locked and rows another worker holds are skipped, so several
        workers can expire payments at once without queueing on each other.
        """
        ...

    def add_attempt(self, attempt: PaymentAttempt) -> None: ...

    def get_attempt(self, attempt_id: str) -> PaymentAttempt | None: ...

    def attempts_of(self, payment_id: str) -> Sequence[PaymentAttempt]:
        """The payment's attempts, oldest first."""
        ...

    def update_attempt(self, attempt: PaymentAttempt, *, expected: AttemptStatus) -> bool:
        """Writes the attempt's status and bank answer if its stored status is ``expected``."""
        ...

    def record_transition(self, transition: Transition) -> None: ...

    def record_transitions(self, transitions: Sequence[Transition]) -> None:
        """Records several transitions in one statement, in the order given (``transitions_of`` order)."""
        ...

    def transitions_of(self, payment_id: str) -> Sequence[Transition]:
        """The payment's recorded transitions (its own and its attempts'), oldest first."""
        ...

    def add_late_success_refund(self, refund: LateSuccessRefund) -> None: ...

    def late_success_refunds_of(self, payment_id: str) -> Sequence[LateSuccessRefund]: ...
