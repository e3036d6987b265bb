"""Housekeeping: the worker job that deletes rows past their use, a bounded batch per table per run.

Expired wallet, portal and console sessions; SMS codes past their life; rate-limit counters whose
window closed; request-replay fingerprints past the signature window; delivered webhook events
(with their attempts), idempotency records and outbox SMS older than their retentions. Pending and
failed events are kept whatever their age: the outbox still owes the first, and the second wait in
the portal and console for a resend. Every purge is idempotent (deleting what is already gone
deletes nothing) and safe with several workers (docs/worker.md, "Housekeeping").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from tianpay.ports.housekeeping import ExpiringRows
from tianpay.ports.unit_of_work import UnitOfWorkFactory

log = structlog.stdlib.get_logger(__name__)

EVENTS = "delivered_events"
IDEMPOTENCY_RECORDS = "idempotency_records"
SMS_OUTBOX = "sms_outbox"

# A wallet form stays submittable while its CSRF token passes, which is as long as the browser keeps
# the nonce cookie the token is bound to (7 days, entrypoints/cashier/security.NONCE_MAX_AGE_S). A
# withdrawal or top-up has no number of its own for a late resend to collide with, so its form key must
# outlive that, or a resent form would move the money a second time; a day more covers clock skew.
MIN_IDEMPOTENCY_RETENTION = timedelta(days=8)


@dataclass(frozen=True, slots=True)
class HousekeepingPolicy:
    batch_size: int = 500
    # How long a delivered event stays readable in GET /v1/events, the portal, and for a resend.
    event_retention: timedelta = timedelta(days=30)
    # How long a repeated merchant request (or a resent wallet form) is still answered with its first
    # answer; after it, the resource's own unique number refuses a duplicate with a 409 (docs/api.md §5).
    idempotency_retention: timedelta = timedelta(days=30)
    # Outbox messages carry codes that die within minutes; a day leaves the development page useful.
    sms_outbox_retention: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        if self.idempotency_retention < MIN_IDEMPOTENCY_RETENTION:
            raise ValueError(f"idempotency records must be kept at least {MIN_IDEMPOTENCY_RETENTION.days} days")


def purge_once(uow_factory: UnitOfWorkFactory, now: datetime, policy: HousekeepingPolicy) -> Mapping[str, int]:
    """One batch per kind of row, each in its own short transaction; returns what each deleted."""
    purged: dict[str, int] = {}
    for rows in ExpiringRows:
        with uow_factory() as uow:
            purged[rows.value] = uow.housekeeping.purge_expired(rows, now, policy.batch_size)
            uow.commit()
    with uow_factory() as uow:
        purged[EVENTS] = uow.housekeeping.purge_delivered_events(now - policy.event_retention, policy.batch_size)
        uow.commit()
    with uow_factory() as uow:
        purged[IDEMPOTENCY_RECORDS] = uow.housekeeping.purge_idempotency_records(
            now - policy.idempotency_retention, policy.batch_size
        )
        uow.commit()
    with uow_factory() as uow:
        purged[SMS_OUTBOX] = uow.housekeeping.purge_sms_outbox(now - policy.sms_outbox_retention, policy.batch_size)
        uow.commit()
    if any(purged.values()):
        log.info("housekeeping.purged", **{name: count for name, count in purged.items() if count})
    return purged


@dataclass
class HousekeepingJob:
    """Purges when due: every ``interval`` while there is nothing to delete, and again at once after
    a run that found work, so a backlog drains one batch per worker tick and an idle database is
    asked nine cheap questions a minute rather than a second."""

    uow_factory: UnitOfWorkFactory
    policy: HousekeepingPolicy
    interval: timedelta = timedelta(minutes=1)
    name: str = "housekeeping"
    _next_run_at: datetime | None = None

    def run_once(self, now: datetime) -> int:
        if self._next_run_at is not None and now < self._next_run_at:
            return 0
        done = sum(purge_once(self.uow_factory, now, self.policy).values())
        self._next_run_at = None if done else now + self.interval
        return done
