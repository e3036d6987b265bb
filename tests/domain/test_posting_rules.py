"""Posting rules: a succeeded bank payment and a late second success move exactly DESIGN.md §4."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tianpay.domain.ledger import entry_id_for, net_by_account
from tianpay.domain.money import MAX_AMOUNT_MINOR, Money, fee_for
from tianpay.domain.posting_rules import (
    LATE_ATTEMPT_SUCCEEDED,
    PAYMENT_SUCCEEDED,
    bank_payment_succeeded,
    late_attempt_succeeded,
)

CNY = Money.cny


def test_a_succeeded_payment_credits_the_merchant_and_takes_the_fee() -> None:
    entry = bank_payment_succeeded(payment_id="pay_1", merchant_id="mch_A", bank="HBB", amount=CNY(10_000), fee=CNY(60))
    legs = [(p.account.code, p.amount.minor) for p in entry.postings]
    assert legs == [
        ("bank:HBB:reserve", 10_000),
        ("merchant:mch_A:pending", -10_000),
        ("merchant:mch_A:pending", 60),
        ("platform:fee_income", -60),
    ]
    assert net_by_account(entry.postings) == {
        "bank:HBB:reserve": 10_000,
        "merchant:mch_A:pending": -9_940,
        "platform:fee_income": -60,
    }


def test_the_entry_id_derives_from_the_event_and_the_payment() -> None:
    entry = bank_payment_succeeded(payment_id="pay_1", merchant_id="mch_A", bank="HBB", amount=CNY(100), fee=CNY(1))
    again = bank_payment_succeeded(payment_id="pay_1", merchant_id="mch_A", bank="JHB", amount=CNY(100), fee=CNY(1))
    assert entry.id == entry_id_for(PAYMENT_SUCCEEDED, "pay_1")
    # Whichever attempt carried the money, a payment credits its merchant under one entry id.
    assert again.id == entry.id


def test_a_zero_fee_has_no_fee_legs() -> None:
    entry = bank_payment_succeeded(payment_id="pay_1", merchant_id="mch_A", bank="HBB", amount=CNY(100), fee=CNY(0))
    assert [p.account.code for p in entry.postings] == ["bank:HBB:reserve", "merchant:mch_A:pending"]


@pytest.mark.parametrize(("amount", "fee"), [(0, 0), (100, -1), (100, 101)])
def test_impossible_amounts_and_fees_are_refused(amount: int, fee: int) -> None:
    with pytest.raises(ValueError, match=r"fee|amount"):
        bank_payment_succeeded(payment_id="p", merchant_id="m", bank="HBB", amount=CNY(amount), fee=CNY(fee))


@given(
    amount=st.integers(min_value=1, max_value=MAX_AMOUNT_MINOR),
    rate_bps=st.integers(min_value=0, max_value=10_000),
    minimum=st.integers(min_value=0, max_value=10_000),
)
def test_every_succeeded_payment_entry_balances_and_the_merchant_gets_amount_minus_fee(
    amount: int, rate_bps: int, minimum: int
) -> None:
    fee = fee_for(CNY(amount), rate_bps, minimum)
    entry = bank_payment_succeeded(payment_id="pay_x", merchant_id="mch_A", bank="BCB", amount=CNY(amount), fee=fee)
    net = net_by_account(entry.postings)
    assert sum(net.values()) == 0
    assert -net["merchant:mch_A:pending"] == amount - fee.minor
    assert -net.get("platform:fee_income", 0) == fee.minor


def test_a_late_success_parks_the_money_in_suspense_under_the_attempt_id() -> None:
    entry = late_attempt_succeeded(attempt_id="att_2", payment_id="pay_1", bank="JHB", amount=CNY(500))
    assert entry.id == entry_id_for(LATE_ATTEMPT_SUCCEEDED, "att_2")
    assert net_by_account(entry.postings) == {"bank:JHB:reserve": 500, "platform:suspense": -500}
    assert entry.id != bank_payment_succeeded(
        payment_id="pay_1", merchant_id="m", bank="JHB", amount=CNY(500), fee=CNY(0)
    ).id
