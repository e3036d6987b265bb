"""The outbox port: merchant notifications written in the same database transaction as the change.

Services call ``uow.outbox.add_event(...)`` inside their own unit of work, so an event exists if and
only if the state change it announces committed. The dispatcher claims due events with a lease,
delivers them outside any transaction and records each attempt (DESIGN.md §6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from tianpay.domain.notifications import EventStatus, EventType


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """Where and with which secret a merchant's webhooks go; the secret never shows in a repr."""

    url: str | None
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    """An event this worker holds a lease on: deliver it, then record the attempt."""

    id: str
    merchant_id: str
    body: str
    attempt_count: int
    target: DeliveryTarget


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One delivery attempt as the merchant sees it in the event log."""

    attempt_no: int
    started_at: datetime
    succeeded: bool
    response_status: int | None
    latency_ms: int
    error: str | None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What the dispatcher writes after an attempt: the attempt row and the event's next state."""

    event_id: str
    worker_id: str
    attempt: AttemptRecord
    status: EventStatus
    next_attempt_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: str
    merchant_id: str
    type: EventType
    body: str
    created_at: datetime
    status: EventStatus
    attempt_count: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    attempts: tuple[AttemptRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class EventPage:
    events: tuple[EventRecord, ...]
    has_more: bool


class OutboxRepository(Protocol):
    def add_event(self, merchant_id: str, type: EventType | str, data: Mapping[str, object]) -> str:
        """Writes a pending event due now and returns its id (``evt_…``, the ``webhook-id``).

        Call it inside the unit of work that makes the change the event announces; it commits or
        rolls back with that change. ``data`` must be JSON-serialisable (datetimes and enums are
        converted). An unknown ``type`` raises ValueError.
        """
        ...

    def claim_due(self, now: datetime, *, worker_id: str, lease_until: datetime, limit: int) -> Sequence[ClaimedEvent]:
        """Leases up to ``limit`` pending events due at ``now`` that no live lease holds."""
        ...

    def record_attempt(self, outcome: AttemptOutcome) -> bool:
        """Writes the attempt and the event's next state if this worker still holds the lease.

        Returns False (and writes nothing) when the lease was lost to another worker, which will
        then deliver the event itself: delivery is at least once.
        """
        ...

    def get_event(self, merchant_id: str, event_id: str) -> EventRecord | None:
        """The merchant's event with its attempts, or None (also for another merchant's event)."""
        ...

    def list_events(
        self,
        merchant_id: str,
        *,
        type: EventType | None = None,
        starting_after: str | None = None,
        limit: int = 10,
    ) -> EventPage:
        """The merchant's events newest first, with their attempts, after the cursor event."""
        ...

    def mark_pending(self, event_id: str, *, expected: EventStatus, due_at: datetime) -> bool:
        """Compare-and-set: puts the event to pending, due at ``due_at``, if it is ``expected``."""
        ...
