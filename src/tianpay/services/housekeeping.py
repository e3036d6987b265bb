"""Housekeeping: the worker job that deletes rows past their use, a bounded batch per table per run.

Expired wallet, portal and console sessions; SMS codes past their life; rate-limit counters whose
window closed; request-replay fingerprints past the signature window; and delivered webhook events
(with their attempts) older than the retention. Pending and failed events are kept whatever their
age: the outbox still owes the first, and the second wait in the portal and console for a resend.
Every purge is idempotent (deleting what is already gone deletes nothing) and safe with several
workers (docs/worker.md, "Housekeeping").
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


@dataclass(frozen=True, slots=True)
class HousekeepingPolicy:
    batch_size: int = 500
    # How long a delivered event stays readable in GET /v1/events, the portal, and for a resend.
    event_retention: timedelta = timedelta(days=30)


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
    if any(purged.values()):
        log.info("housekeeping.purged", **{name: count for name, count in purged.items() if count})
    return purged


@dataclass
class HousekeepingJob:
    """Purges when due: every ``interval`` while there is nothing to delete, and again at once after
    a run that found work, so a backlog drains one batch per worker tick and an idle database is
    asked seven cheap questions a minute rather than a second."""

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
