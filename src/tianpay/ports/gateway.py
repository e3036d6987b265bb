"""The gateway port: the re-query schedule of payment attempts, and operator alerts.

Claiming an attempt for a query is a compare-and-set on its ``query_count``: the worker that moves
the count (and ``next_query_at``) owns that query; another worker that read the same row loses and
skips it. On PostgreSQL the due rows are also read with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.alerts import OperatorAlert
from tianpay.domain.payment import PaymentAttempt


@dataclass(frozen=True, slots=True)
class QuerySchedule:
    """An in-flight attempt with its re-query schedule and its payment's expiry."""

    attempt: PaymentAttempt
    query_count: int
    next_query_at: datetime | None
    last_queried_at: datetime | None
    payment_expires_at: datetime


class AttemptQueryRepository(Protocol):
    def due_for_query(self, now: datetime, *, never_queried_before: datetime, limit: int) -> Sequence[QuerySchedule]:
        """In-flight attempts whose query is due, oldest first.

        Due means ``next_query_at <= now``, or never queried and created before
        ``never_queried_before`` (the first query waits a while after creation).
        """
        ...

    def schedule_of(self, attempt_id: str) -> QuerySchedule | None: ...

    def claim(self, attempt_id: str, *, expected_count: int, next_query_at: datetime, now: datetime) -> bool:
        """Counts one more query and moves the next one to ``next_query_at`` if nobody else did first."""
        ...


class OperatorAlertRepository(Protocol):
    def raise_alert(self, alert: OperatorAlert) -> bool:
        """Stores the alert; False (and nothing stored) if one with its ``dedupe_key`` exists."""
        ...

    def open_alerts(self, *, limit: int = 100) -> Sequence[OperatorAlert]:
        """Open alerts, newest first."""
        ...
