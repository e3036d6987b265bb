"""Merchant notification rules: the event types, the event lifecycle and the retry schedule.

Pure values and arithmetic only. The outbox repository stores events, the dispatcher delivers them
and asks these functions what happens next; nothing here reads a clock or generates an id.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from tianpay.domain.errors import IllegalTransition


class EventType(enum.StrEnum):
    """The notification types of DESIGN.md §6; the value is what merchants see in ``type``."""

    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_CLOSED = "payment.closed"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    PAYOUT_SUCCEEDED = "payout.succeeded"
    PAYOUT_FAILED = "payout.failed"
    PAYOUT_RETURNED = "payout.returned"
    MANDATE_ACTIVE = "mandate.active"
    MANDATE_REVOKED = "mandate.revoked"
    # A scheduled debit's period that the schedule will not debit (refused before the bank, or its
    # payment closed unsent); not in DESIGN.md §6's first list, added under docs/webhooks.md's rule
    # that merchants ignore types they do not know.
    DEBIT_SCHEDULE_MISSED = "debit_schedule.missed"
    SETTLEMENT_PAID = "settlement.paid"


class EventStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryStep(enum.Enum):
    """What happened to an event: the inputs of its transition table."""

    ANSWERED_2XX = "answered_2xx"
    RETRY_SCHEDULED = "retry_scheduled"
    RETRIES_EXHAUSTED = "retries_exhausted"
    RESENT = "resent"


TRANSITIONS: Final[Mapping[tuple[EventStatus, DeliveryStep], EventStatus]] = {
    (EventStatus.PENDING, DeliveryStep.ANSWERED_2XX): EventStatus.DELIVERED,
    (EventStatus.PENDING, DeliveryStep.RETRY_SCHEDULED): EventStatus.PENDING,
    (EventStatus.PENDING, DeliveryStep.RETRIES_EXHAUSTED): EventStatus.FAILED,
    # A resend of a pending event only brings its next attempt forward.
    (EventStatus.PENDING, DeliveryStep.RESENT): EventStatus.PENDING,
    (EventStatus.DELIVERED, DeliveryStep.RESENT): EventStatus.PENDING,
    (EventStatus.FAILED, DeliveryStep.RESENT): EventStatus.PENDING,
}


def next_status(status: EventStatus, step: DeliveryStep) -> EventStatus:
    try:
        return TRANSITIONS[(status, step)]
    except KeyError:
        raise IllegalTransition(f"an event that is {status.value} cannot take the step {step.value}") from None


def retry_delay_s(
    attempts_made: int,
    schedule_s: Sequence[float],
    *,
    scale: float = 1.0,
    retry_after_s: float | None = None,
) -> float | None:
    """Seconds to wait before the next try after ``attempts_made`` tries failed, or None to give up.

    The first try is immediate and ``schedule_s[n - 1]`` is the wait after the n-th failed try, so a
    schedule of 15 waits allows 16 tries in all. An event's tries are counted over its whole life:
    after a resend, a failure continues the schedule where it stood, and an event that has used
    every automatic try gets exactly one try per resend. A ``Retry-After`` from the merchant may
    lengthen a wait, never shorten it, and is capped at the schedule's longest wait so a careless
    header cannot park an event for days. ``scale`` compresses the whole schedule for tests.
    """
    if attempts_made < 1:
        raise ValueError("a delay is asked for only after at least one failed try")
    if attempts_made > len(schedule_s):
        return None
    delay_s = float(schedule_s[attempts_made - 1])
    if retry_after_s is not None and retry_after_s > delay_s:
        delay_s = min(retry_after_s, float(max(schedule_s)))
    return delay_s * scale


def max_attempts(schedule_s: Sequence[float]) -> int:
    """The number of automatic tries an event gets: the first one plus one per scheduled wait."""
    return len(schedule_s) + 1


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision and a ``Z``, as the webhook body carries times."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are refused: pass aware UTC times")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_body(event_type: EventType, created_at: datetime, data: Mapping[str, object]) -> str:
    """The webhook body ``{"type", "timestamp", "data"}`` as the exact text that is signed and sent.

    It is rendered once, when the event is written, and stored: every retry sends the same bytes.
    Datetimes and enums inside ``data`` are written as ISO-8601 UTC strings and their values.
    """
    body = {"type": event_type.value, "timestamp": iso_utc(created_at), "data": data}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_json_value)


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"a webhook payload cannot carry a {type(value).__name__}")
