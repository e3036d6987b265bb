"""The payout records port: how services store payouts, their batches and their transition trail.

``ports/payouts.py`` is the bank side (the channel); this is the platform's own record of what it
asked. Status writes are compare-and-set; claims of work (payouts to batch, batches to query) lock
rows and skip the rows another worker holds on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.payout import Payout, PayoutBatchRecord, PayoutStatus


@dataclass(frozen=True, slots=True)
class PayoutTransition:
    """One recorded state change of a payout, with its time and cause."""

    payout_id: str
    from_status: str | None
    to_status: str
    event: str
    cause: str
    created_at: datetime


class PayoutRepository(Protocol):
    def add(self, payout: Payout) -> None:
        """Inserts a new payout; raises Conflict if the merchant already used its out_payout_no.

        After a Conflict the unit of work is spent (PostgreSQL has aborted its transaction): let the
        error leave it so it rolls back. The idempotency claim made first keeps duplicates from
        getting this far.
        """
        ...

    def get(self, payout_id: str, *, merchant_id: str | None = None) -> Payout | None:
        """The payout, or None (also when it belongs to another merchant than ``merchant_id``)."""
        ...

    def id_of_out_payout_no(self, merchant_id: str, out_payout_no: str) -> str | None:
        """The id of the merchant's payout under ``out_payout_no``, or None when there is none."""
        ...

    def get_for_update(self, payout_id: str) -> Payout | None:
        """The payout, its row locked until the unit of work ends."""
        ...

    def update(self, payout: Payout, *, expected: PayoutStatus) -> bool:
        """Writes the payout's status, batch, bank answer and times if it is still ``expected``."""
        ...

    def of_merchant(self, merchant_id: str, *, limit: int, starting_after: str | None = None) -> Sequence[Payout]:
        """The merchant's payouts, newest first; after ``starting_after`` (a payout id) when given."""
        ...

    def of_member(self, member_id: str, *, limit: int) -> Sequence[Payout]:
        """The member's withdrawals, newest first."""
        ...

    def to_dispatch(self, *, limit: int) -> Sequence[Payout]:
        """Payouts still ``created``, oldest first (locked and skip-locked on PostgreSQL); never one
        ``pending_review``."""
        ...

    def awaiting_review(self, *, limit: int) -> Sequence[Payout]:
        """Payouts in ``pending_review``, oldest first (the console's review queue)."""
        ...

    def review_threshold(self, merchant_id: str) -> int | None:
        """The merchant's payout review threshold in fen; None when its payouts are not reviewed."""
        ...

    def set_review_threshold(
        self, merchant_id: str, threshold_minor: int | None, *, updated_by: str, updated_at: datetime
    ) -> None:
        """Sets (or, with None, removes) the merchant's payout review threshold."""
        ...

    def in_batch(self, batch_id: str) -> Sequence[Payout]:
        """The payouts of a batch, in the order they were put in it."""
        ...

    def add_batch(self, batch: PayoutBatchRecord) -> None: ...

    def get_batch(self, batch_id: str) -> PayoutBatchRecord | None: ...

    def batches_due_for_query(self, now: datetime, *, limit: int) -> Sequence[PayoutBatchRecord]:
        """Open batches whose next query is due at ``now``, most overdue first.

        On PostgreSQL the rows are locked and rows another worker holds are skipped; the caller
        reschedules them in the same unit of work, so no two workers query the same batch at once.
        """
        ...

    def reschedule_batch(self, batch_id: str, *, expected_query_count: int, next_query_at: datetime) -> bool:
        """Sets the batch's next query and counts one more, if nobody else did since it was read."""
        ...

    def close_batch(self, batch_id: str, now: datetime) -> bool:
        """Marks the batch done (nothing left to query); False if it already was."""
        ...

    def in_flight_count(self, batch_id: str) -> int:
        """How many payouts of the batch the bank may still move (processing or unknown)."""
        ...

    def record_transition(self, transition: PayoutTransition) -> None: ...

    def transitions_of(self, payout_id: str) -> Sequence[PayoutTransition]:
        """The payout's recorded transitions, oldest first."""
        ...
