"""The housekeeping port: deletes rows that nothing reads any more, a bounded batch at a time.

Every kind of row here has a moment after which no page, API or check can use it (a session past
its expiry, an SMS code past its life, a rate-limit window that closed, a replay fingerprint whose
signature can no longer be fresh, an event delivered longer ago than the retention, an idempotency
record or an outbox SMS older than theirs). Each purge is one short transaction that deletes at most
``limit`` rows and is safe with several workers.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol


class ExpiringRows(enum.StrEnum):
    """Tables whose rows carry an ``expires_at`` after which they are dead weight."""

    MEMBER_SESSIONS = "member_sessions"
    MERCHANT_USER_SESSIONS = "merchant_user_sessions"
    OPERATOR_SESSIONS = "operator_sessions"
    SMS_CODES = "sms_codes"
    RATE_LIMIT_COUNTERS = "rate_limit_counters"
    REQUEST_REPLAYS = "request_replays"


class HousekeepingRepository(Protocol):
    def purge_expired(self, rows: ExpiringRows, now: datetime, limit: int) -> int:
        """Deletes up to ``limit`` rows that expired at or before ``now``; returns how many."""
        ...

    def purge_delivered_events(self, delivered_before: datetime, limit: int) -> int:
        """Deletes up to ``limit`` events delivered before then, with their delivery attempts.

        Pending and failed events are never touched: the outbox still has to send them, and a
        failed one waits in the portal and the console for a manual resend.
        """
        ...

    def purge_idempotency_records(self, created_before: datetime, limit: int) -> int:
        """Deletes up to ``limit`` completed idempotency records created before then; returns how many.

        A record still pending (claimed by a unit of work that has not completed it) is never touched.
        """
        ...

    def purge_sms_outbox(self, created_before: datetime, limit: int) -> int:
        """Deletes up to ``limit`` outbox messages created before then; returns how many."""
        ...
