"""The retry schedule arithmetic of DESIGN.md §6, and the event lifecycle table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tianpay.config import WEBHOOK_RETRY_SCHEDULE_S
from tianpay.domain.errors import IllegalTransition
from tianpay.domain.notifications import (
    TRANSITIONS,
    DeliveryStep,
    EventStatus,
    EventType,
    max_attempts,
    next_status,
    render_body,
    retry_delay_s,
)

SCHEDULE = WEBHOOK_RETRY_SCHEDULE_S


def test_the_schedule_is_the_one_merchants_are_promised() -> None:
    minutes = [s / 60 for s in SCHEDULE]
    assert minutes == [0.25, 0.25, 0.5, 3, 10, 20, 30, 30, 30, 60, 180, 180, 180, 360, 360]
    assert max_attempts(SCHEDULE) == 16


def test_each_failed_try_waits_its_step_and_the_sixteenth_failure_gives_up() -> None:
    waits = [retry_delay_s(n, SCHEDULE) for n in range(1, 17)]
    assert waits[:15] == [float(s) for s in SCHEDULE]
    assert waits[15] is None
    assert retry_delay_s(40, SCHEDULE) is None


def test_a_compressed_scale_shrinks_every_wait_in_proportion() -> None:
    waits = [retry_delay_s(n, SCHEDULE, scale=0.001) for n in range(1, 16)]
    assert waits == pytest.approx([s * 0.001 for s in SCHEDULE])
    # The whole schedule is 24 hours and 4 minutes at full scale, 87 seconds at 1/1000.
    assert sum(SCHEDULE) == 86_640
    assert sum(w for w in waits if w is not None) == pytest.approx(86.64)


def test_retry_after_lengthens_a_wait_but_never_shortens_it_and_is_capped() -> None:
    assert retry_delay_s(1, SCHEDULE, retry_after_s=120) == 120
    assert retry_delay_s(4, SCHEDULE, retry_after_s=5) == 180
    assert retry_delay_s(1, SCHEDULE, retry_after_s=10 * 86_400) == 21_600
    assert retry_delay_s(1, SCHEDULE, scale=0.01, retry_after_s=120) == pytest.approx(1.2)


def test_a_delay_before_any_try_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        retry_delay_s(0, SCHEDULE)


@pytest.mark.parametrize("status", list(EventStatus))
@pytest.mark.parametrize("step", list(DeliveryStep))
def test_every_status_and_step_pair_is_either_in_the_table_or_refused(status: EventStatus, step: DeliveryStep) -> None:
    if (status, step) in TRANSITIONS:
        assert next_status(status, step) is TRANSITIONS[(status, step)]
    else:
        with pytest.raises(IllegalTransition):
            next_status(status, step)


def test_delivered_and_failed_events_can_only_be_resent() -> None:
    for terminal in (EventStatus.DELIVERED, EventStatus.FAILED):
        allowed = {step for (status, step) in TRANSITIONS if status is terminal}
        assert allowed == {DeliveryStep.RESENT}


def test_the_body_carries_type_an_iso_utc_timestamp_and_the_data() -> None:
    shanghai = timezone(timedelta(hours=8))
    created_at = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=shanghai)
    body = render_body(
        EventType.PAYMENT_SUCCEEDED,
        created_at,
        {"id": "pay_1", "amount": 100, "status": EventStatus.DELIVERED, "paid_at": created_at},
    )
    assert json.loads(body) == {
        "type": "payment.succeeded",
        "timestamp": "2026-11-27T02:00:00.123Z",
        "data": {"id": "pay_1", "amount": 100, "status": "delivered", "paid_at": "2026-11-27T02:00:00.123Z"},
    }
    with pytest.raises(ValueError, match="naive"):
        render_body(EventType.PAYMENT_FAILED, datetime(2026, 1, 1), {})
    assert datetime.fromisoformat(json.loads(body)["timestamp"]).tzinfo == UTC
