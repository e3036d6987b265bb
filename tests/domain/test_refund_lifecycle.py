"""The refund domain: every state × event pair, creation rules, the fee return and the posting rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tianpay.domain.errors import IllegalTransition
from tianpay.domain.ledger import net_by_account
from tianpay.domain.money import Money, fee_for
from tianpay.domain.payment import AmountTooSmall, Payment, PaymentMethod, PaymentStatus
from tianpay.domain.posting_rules import (
    late_success_refund_requested,
    refund_failed,
    refund_requested,
    refund_succeeded,
)
from tianpay.domain.refund import (
    TRANSITIONS,
    InvalidOutRefundNo,
    PaymentNotRefundable,
    Refund,
    RefundEvent,
    RefundExceedsPayment,
    RefundRequest,
    RefundStatus,
    check_refundable,
    check_request,
    fee_returned_with,
    new_refund,
    next_state,
)

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
CNY = Money.cny


def payment(amount_minor: int = 10_010, fee_minor: int = 60, refunded_minor: int = 0,
            status: PaymentStatus = PaymentStatus.SUCCEEDED) -> Payment:
    return Payment(
        id="pay_1", merchant_id="mch_1", out_trade_no="o1", amount=CNY(amount_minor),
        method=PaymentMethod.ONLINE_BANKING, bank="HBB", subject="茶", description=None, notify_url=None,
        return_url=None, metadata={}, expires_at=NOW + timedelta(minutes=30), status=status,
        refunded_amount=CNY(refunded_minor), fee_amount=CNY(fee_minor), created_at=NOW, updated_at=NOW,
        succeeded_attempt_id="att_1",
    )


def refund(status: RefundStatus = RefundStatus.CREATED) -> Refund:
    made = new_refund(
        payment(), RefundRequest("R1", CNY(1_000)), refund_id="rfd_1", bank="HBB", attempt_id="att_1",
        fee_returned=CNY(6), now=NOW, next_query_at=NOW + timedelta(minutes=1),
    )
    return replace(made, status=status)


@pytest.mark.parametrize("status", list(RefundStatus))
@pytest.mark.parametrize("event", list(RefundEvent))
def test_every_state_and_event_pair_follows_the_table(status: RefundStatus, event: RefundEvent) -> None:
    expected = TRANSITIONS.get((status, event))
    if expected is None:
        with pytest.raises(IllegalTransition):
            next_state(status, event)
        return
    assert next_state(status, event) is expected


def test_final_refunds_never_change_and_unknown_is_resolved_only_by_an_answer() -> None:
    for final in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        assert not [event for event in RefundEvent if (final, event) in TRANSITIONS]
    assert (RefundStatus.UNKNOWN, RefundEvent.UNKNOWN) not in TRANSITIONS
    assert (RefundStatus.PROCESSING, RefundEvent.PENDING) not in TRANSITIONS


def test_a_succeeded_refund_keeps_its_time_and_is_no_longer_queried() -> None:
    moved = refund(RefundStatus.UNKNOWN).moved_to(RefundEvent.SUCCEEDED, NOW + timedelta(minutes=2))
    assert (moved.status, moved.succeeded_at, moved.next_query_at) == (
        RefundStatus.SUCCEEDED, NOW + timedelta(minutes=2), None
    )
    pending = refund().moved_to(RefundEvent.PENDING, NOW)
    assert pending.next_query_at == NOW + timedelta(minutes=1)


def test_merchants_see_an_unknown_refund_as_processing() -> None:
    assert RefundStatus.UNKNOWN.public == "processing"
    assert RefundStatus.SUCCEEDED.public == "succeeded"


def test_creation_rules_name_the_field_at_fault() -> None:
    with pytest.raises(AmountTooSmall):
        check_request(RefundRequest("R1", CNY(0)))
    with pytest.raises(InvalidOutRefundNo):
        check_request(RefundRequest("R 1", CNY(1)))
    with pytest.raises(PaymentNotRefundable):
        check_refundable(payment(status=PaymentStatus.PROCESSING), CNY(1))
    with pytest.raises(RefundExceedsPayment) as exceeded:
        check_refundable(payment(refunded_minor=10_000), CNY(11))
    assert exceeded.value.param == "amount"
    check_refundable(payment(refunded_minor=10_000), CNY(10))


def test_the_fee_return_is_pro_rata_and_the_last_refund_takes_the_remainder() -> None:
    paid = payment()
    first = fee_returned_with(paid, CNY(0), CNY(3_333))
    second = fee_returned_with(replace(paid, refunded_amount=CNY(3_333)), first, CNY(2_222))
    last = fee_returned_with(replace(paid, refunded_amount=CNY(5_555)), first + second, CNY(4_455))
    assert [first.minor, second.minor, last.minor] == [20, 13, 27]


@given(
    amount_minor=st.integers(min_value=1, max_value=10**9),
    rate_bps=st.integers(min_value=0, max_value=1_000),
    parts=st.lists(st.tuples(st.integers(min_value=1, max_value=10**6), st.booleans()), max_size=12),
)
def test_fee_returns_sum_exactly_to_the_fee_whatever_fails_in_between(
    amount_minor: int, rate_bps: int, parts: list[tuple[int, bool]]
) -> None:
    fee = fee_for(CNY(amount_minor), rate_bps)
    refunded, returned = 0, 0
    for requested, fails in parts:
        size = min(requested, amount_minor - refunded)
        if size <= 0:
            break
        share = fee_returned_with(payment(amount_minor, fee.minor, refunded), CNY(returned), CNY(size))
        assert 0 <= share.minor <= size
        if not fails:
            refunded, returned = refunded + size, returned + share.minor
    if amount_minor > refunded:
        rest = CNY(amount_minor - refunded)
        returned += fee_returned_with(payment(amount_minor, fee.minor, refunded), CNY(returned), rest).minor
    assert returned == fee.minor


def test_a_refund_request_moves_the_money_to_transit_and_returns_the_fee() -> None:
    entry = refund_requested(refund_id="rfd_1", payment_id="pay_1", merchant_id="M", bank="HBB",
                             amount=CNY(1_000), fee_returned=CNY(6))
    assert net_by_account(entry.postings) == {
        "merchant:M:pending": 1_000 - 6, "bank:HBB:in_transit": -1_000, "platform:fee_income": 6,
    }
    free = refund_requested(refund_id="rfd_2", payment_id="pay_1", merchant_id="M", bank="HBB",
                            amount=CNY(1_000), fee_returned=CNY(0))
    assert len(free.postings) == 2


def test_success_settles_the_transit_and_failure_reverses_both_legs() -> None:
    requested = refund_requested(refund_id="rfd_1", payment_id="pay_1", merchant_id="M", bank="HBB",
                                 amount=CNY(1_000), fee_returned=CNY(6))
    assert net_by_account(refund_succeeded(refund_id="rfd_1", bank="HBB", amount=CNY(1_000)).postings) == {
        "bank:HBB:in_transit": 1_000, "bank:HBB:reserve": -1_000,
    }
    reversal = refund_failed(requested)
    combined = net_by_account((*requested.postings, *reversal.postings))
    assert set(combined.values()) == {0}
    assert refund_failed(requested).id == reversal.id


def test_a_late_success_refund_clears_suspense_and_never_touches_the_merchant() -> None:
    entry = late_success_refund_requested(refund_id="rfd_9", attempt_id="att_2", bank="JHB", amount=CNY(4_321))
    assert net_by_account(entry.postings) == {"platform:suspense": 4_321, "bank:JHB:in_transit": -4_321}
