"""Merchant notifications: outbox dispatch with retries, the event log, and manual resend.

Events are written by other services through ``uow.outbox.add_event`` inside their own unit of
work. ``dispatch_due_events`` is the worker job: claim a batch under a lease (one short database
transaction), deliver each event with no transaction open, then record each attempt and the
event's next state (another short transaction per attempt). Delivery is at least once; the
``webhook-id`` (the event id) lets merchants drop duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from tianpay.domain.errors import Conflict, NotFound
from tianpay.domain.notifications import (
    DeliveryStep,
    EventStatus,
    EventType,
    next_status,
    retry_delay_s,
)
from tianpay.ports.clock import Clock
from tianpay.ports.outbox import AttemptOutcome, AttemptRecord, ClaimedEvent, EventPage, EventRecord
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.ports.webhooks import DeliveryResult, WebhookSender

log = structlog.stdlib.get_logger(__name__)

MAX_PAGE_LIMIT = 100


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """How the dispatcher paces itself; built from Settings by the worker.

    The lease must outlast a whole batch of deliveries, each bounded by the HTTP timeout, or another
    worker could take over an event that is still being delivered and send it a second time.
    """

    retry_schedule_s: Sequence[float]
    retry_scale: float = 1.0
    batch_size: int = 20
    timeout_s: float = 10.0
    lease_margin_s: float = 30.0

    @property
    def lease_s(self) -> float:
        return self.batch_size * self.timeout_s + self.lease_margin_s


@dataclass(frozen=True, slots=True)
class DispatchReport:
    claimed: int
    delivered: int
    retried: int
    failed: int
    lost_leases: int

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.failed


@dataclass(frozen=True, slots=True)
class _Decision:
    status: EventStatus
    next_attempt_at: datetime | None
    delivered_at: datetime | None


def dispatch_due_events(
    uow_factory: UnitOfWorkFactory,
    sender: WebhookSender,
    clock: Clock,
    policy: DispatchPolicy,
    *,
    worker_id: str,
    now: datetime,
) -> DispatchReport:
    """Delivers one batch of events due at ``now``; returns what happened to them."""
    claimed = _claim(uow_factory, policy, worker_id=worker_id, now=now)
    counts = {EventStatus.DELIVERED: 0, EventStatus.PENDING: 0, EventStatus.FAILED: 0}
    lost_leases = 0
    for event in claimed:
        started_at = clock.now()
        result = sender.send(event.target, event.id, event.body, started_at)
        finished_at = clock.now()
        decision = decide(event.attempt_count + 1, result, policy, finished_at)
        if _record(uow_factory, event, worker_id, started_at, result, decision):
            counts[decision.status] += 1
        else:
            lost_leases += 1
    return DispatchReport(
        claimed=len(claimed),
        delivered=counts[EventStatus.DELIVERED],
        retried=counts[EventStatus.PENDING],
        failed=counts[EventStatus.FAILED],
        lost_leases=lost_leases,
    )


def decide(attempt_no: int, result: DeliveryResult, policy: DispatchPolicy, now: datetime) -> _Decision:
    """The event's next state after its ``attempt_no``-th try had ``result``."""
    if result.succeeded:
        return _Decision(next_status(EventStatus.PENDING, DeliveryStep.ANSWERED_2XX), None, now)
    delay_s = retry_delay_s(
        attempt_no, policy.retry_schedule_s, scale=policy.retry_scale, retry_after_s=result.retry_after_s
    )
    if delay_s is None:
        return _Decision(next_status(EventStatus.PENDING, DeliveryStep.RETRIES_EXHAUSTED), None, None)
    return _Decision(
        next_status(EventStatus.PENDING, DeliveryStep.RETRY_SCHEDULED), now + timedelta(seconds=delay_s), None
    )


def resend_event(uow_factory: UnitOfWorkFactory, clock: Clock, merchant_id: str, event_id: str) -> EventRecord:
    """Puts the merchant's event back to pending for an immediate new attempt.

    Attempt numbers continue from the event's history. Resending an event that is still pending
    only brings its next attempt forward; if a worker is delivering it at this moment, that
    delivery counts as the resend.
    """
    with uow_factory() as uow:
        event = uow.outbox.get_event(merchant_id, event_id)
        if event is None:
            raise NotFound(f"no event {event_id}", param="id")
        # Every status may be resent today; asking the table keeps a future status honest.
        next_status(event.status, DeliveryStep.RESENT)
        if not uow.outbox.mark_pending(event_id, expected=event.status, due_at=clock.now()):
            # Only a worker finishing an attempt can change the status in between; the merchant
            # sees the newer state and may simply resend again.
            raise Conflict(f"event {event_id} changed while being resent; try again")
        uow.commit()
    log.info("webhook_resend_requested", merchant_id=merchant_id, event_id=event_id)
    return get_event(uow_factory, merchant_id, event_id)


def get_event(uow_factory: UnitOfWorkFactory, merchant_id: str, event_id: str) -> EventRecord:
    with uow_factory() as uow:
        event = uow.outbox.get_event(merchant_id, event_id)
    if event is None:
        raise NotFound(f"no event {event_id}", param="id")
    return event


def list_events(
    uow_factory: UnitOfWorkFactory,
    merchant_id: str,
    *,
    type: EventType | None = None,
    starting_after: str | None = None,
    limit: int = 10,
) -> EventPage:
    """The merchant's event log, newest first; ``limit`` is clamped to 1…100."""
    limit = max(1, min(limit, MAX_PAGE_LIMIT))
    with uow_factory() as uow:
        return uow.outbox.list_events(merchant_id, type=type, starting_after=starting_after, limit=limit)


def _claim(
    uow_factory: UnitOfWorkFactory, policy: DispatchPolicy, *, worker_id: str, now: datetime
) -> Sequence[ClaimedEvent]:
    with uow_factory() as uow:
        claimed = uow.outbox.claim_due(
            now,
            worker_id=worker_id,
            lease_until=now + timedelta(seconds=policy.lease_s),
            limit=policy.batch_size,
        )
        uow.commit()
    return claimed


def _record(
    uow_factory: UnitOfWorkFactory,
    event: ClaimedEvent,
    worker_id: str,
    started_at: datetime,
    result: DeliveryResult,
    decision: _Decision,
) -> bool:
    attempt = AttemptRecord(
        attempt_no=event.attempt_count + 1,
        started_at=started_at,
        succeeded=result.succeeded,
        response_status=result.response_status,
        latency_ms=result.latency_ms,
        error=None if result.succeeded else result.error,
    )
    outcome = AttemptOutcome(
        event_id=event.id,
        worker_id=worker_id,
        attempt=attempt,
        status=decision.status,
        next_attempt_at=decision.next_attempt_at,
        delivered_at=decision.delivered_at,
    )
    with uow_factory() as uow:
        recorded = uow.outbox.record_attempt(outcome)
        uow.commit()
    fields = {
        "event_id": event.id,
        "merchant_id": event.merchant_id,
        "attempt_no": attempt.attempt_no,
        "response_status": result.response_status,
        "latency_ms": result.latency_ms,
        "event_status": decision.status.value,
    }
    if not recorded:
        log.warning("webhook_lease_lost", worker_id=worker_id, **fields)
    elif result.succeeded:
        log.info("webhook_delivered", **fields)
    else:
        log.info("webhook_attempt_failed", error=result.error, **fields)
    return recorded
