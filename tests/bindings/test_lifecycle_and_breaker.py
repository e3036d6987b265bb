"""Pure rules: the card-binding transition table (every state × event), the inputs, and the breaker."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tianpay.domain.card_binding import (
    TRANSITIONS,
    BindingEvent,
    BindingStatus,
    CardNumberInvalid,
    IdNumberInvalid,
    PhoneInvalid,
    bank_for_card,
    check_card_number,
    check_id_number,
    check_phone,
    mask_card,
    next_state,
)
from tianpay.domain.channel_health import BreakerPolicy, BreakerState, ChannelHealth, Signal
from tianpay.domain.errors import IllegalTransition

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(("status", "event"), list(itertools.product(BindingStatus, BindingEvent)))
def test_every_state_and_event_pair_follows_the_table(status: BindingStatus, event: BindingEvent) -> None:
    if (status, event) in TRANSITIONS:
        assert next_state(status, event) is TRANSITIONS[(status, event)]
    else:
        with pytest.raises(IllegalTransition):
            next_state(status, event)


def test_the_bin_names_the_bank_and_the_mask_keeps_six_and_four() -> None:
    assert [bank_for_card(c) for c in ("6217990000000000014", "6227990000000000013", "6230990000000000017")] == [
        "HBB", "JHB", "BCB"
    ]
    assert mask_card("6217990000000000014") == "621799*********0014"


def test_inputs_are_checked_without_echoing_them() -> None:
    with pytest.raises(CardNumberInvalid) as card:
        check_card_number("6217990000000000015")
    assert "6217990000000000015" not in str(card.value)
    with pytest.raises(IdNumberInvalid):
        check_id_number("110105198503120013")
    with pytest.raises(PhoneInvalid):
        check_phone("12800138001")
    assert check_id_number("12010119900725002x") == "12010119900725002X"


POLICY = BreakerPolicy(failure_threshold=3, window=timedelta(seconds=60), cool_down=timedelta(seconds=30))


def test_the_breaker_opens_after_n_bad_results_in_a_window_and_a_good_probe_closes_it() -> None:
    health = ChannelHealth.fresh("hbb.quick_pay", T0)
    for second in range(3):
        assert health.admits(POLICY, T0 + timedelta(seconds=second))
        health = health.recorded(Signal.UNHEALTHY, POLICY, T0 + timedelta(seconds=second))
    assert health.state is BreakerState.OPEN
    assert not health.admits(POLICY, T0 + timedelta(seconds=20))
    probing = health.admitted(POLICY, T0 + timedelta(seconds=33))
    assert probing.state is BreakerState.HALF_OPEN
    assert not probing.admits(POLICY, T0 + timedelta(seconds=34)), "one probe at a time"
    assert probing.recorded(Signal.HEALTHY, POLICY, T0 + timedelta(seconds=34)).state is BreakerState.CLOSED
    reopened = probing.recorded(Signal.UNHEALTHY, POLICY, T0 + timedelta(seconds=34))
    assert (reopened.state, reopened.opened_at) == (BreakerState.OPEN, T0 + timedelta(seconds=34))


def test_bad_results_spread_beyond_the_window_and_payer_declines_do_not_open_it() -> None:
    health = ChannelHealth.fresh("jhb.quick_pay", T0)
    for minutes in (0, 2, 4):
        health = health.recorded(Signal.UNHEALTHY, POLICY, T0 + timedelta(minutes=minutes))
    assert (health.state, health.consecutive_failures) == (BreakerState.CLOSED, 1)
    for second in range(10):
        health = health.recorded(Signal.NEUTRAL, POLICY, T0 + timedelta(minutes=5, seconds=second))
    assert health.state is BreakerState.CLOSED


def test_a_probe_that_never_reports_is_replaced_after_another_cool_down() -> None:
    health = ChannelHealth.fresh("hbb.quick_pay", T0)
    for _ in range(3):
        health = health.recorded(Signal.UNHEALTHY, POLICY, T0)
    probing = health.admitted(POLICY, T0 + timedelta(seconds=30))
    assert probing.admits(POLICY, T0 + timedelta(seconds=61))
