"""Money, fees and splits: integer minor units, half-up rounding and exact remainders."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tianpay.domain.money import (
    Currency,
    CurrencyMismatch,
    Money,
    allocate,
    divide_half_up,
    fee_for,
    fee_to_return,
    pro_rata,
)

CNY = Money.cny


def test_money_refuses_floats_and_bools() -> None:
    with pytest.raises(TypeError):
        Money(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True)


def test_money_formats_in_major_units() -> None:
    assert CNY(1234).format() == "12.34 CNY"
    assert CNY(-5).format() == "-0.05 CNY"
    assert str(CNY(100_000)) == "1000.00 CNY"


def test_only_supported_currencies_parse() -> None:
    assert Currency.parse("CNY") is Currency.CNY
    with pytest.raises(ValueError, match="unsupported"):
        Currency.parse("USD")


def test_currencies_do_not_mix() -> None:
    class _Other:
        code = "XXX"

    other = Money(1)
    object.__setattr__(other, "currency", _Other())
    with pytest.raises(CurrencyMismatch):
        CNY(1) + other


def test_fees_round_half_up_not_to_even() -> None:
    # 250 fen at 60 bps is 1.5 fen: half-up gives 2, banker's rounding would give 2 too; 150 fen
    # at 100 bps is exactly 1.5 → 2 (half-even also 2); 50 fen at 100 bps is 0.5 → 1 (half-even: 0).
    assert fee_for(CNY(50), 100) == CNY(1)
    assert fee_for(CNY(249), 60) == CNY(1)
    assert fee_for(CNY(10_000), 60) == CNY(60)
    assert fee_for(CNY(12_345), 38) == CNY(47)


def test_a_fee_minimum_applies_but_never_exceeds_the_amount() -> None:
    assert fee_for(CNY(100), 60, minimum_minor=10) == CNY(10)
    assert fee_for(CNY(5), 60, minimum_minor=10) == CNY(5)
    assert fee_for(CNY(0), 60, minimum_minor=10) == CNY(0)


def test_divide_half_up_is_symmetric_around_zero() -> None:
    assert divide_half_up(5, 10) == 1
    assert divide_half_up(-5, 10) == -1
    assert divide_half_up(4, 10) == 0


def test_refund_fee_returns_add_up_to_the_fee() -> None:
    fee = fee_for(CNY(1_001), 60)
    first = fee_to_return(fee, CNY(1_001), CNY(0), CNY(333))
    second = fee_to_return(fee, CNY(1_001), CNY(333), CNY(333))
    last = fee_to_return(fee, CNY(1_001), CNY(666), CNY(335))
    assert first + second + last == fee


def test_refunds_beyond_the_amount_are_refused() -> None:
    with pytest.raises(ValueError, match="exceed"):
        fee_to_return(CNY(6), CNY(1_000), CNY(900), CNY(101))


@given(
    amount=st.integers(min_value=1, max_value=10**12),
    rate_bps=st.integers(min_value=0, max_value=10_000),
    cuts=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=8),
)
def test_pro_rata_fee_returns_always_close_exactly(amount: int, rate_bps: int, cuts: list[int]) -> None:
    total = CNY(amount)
    fee = fee_for(total, rate_bps)
    parts = allocate(total, cuts)
    refunded = CNY(0)
    returned = CNY(0)
    for part in parts:
        returned = returned + fee_to_return(fee, total, refunded, part)
        refunded = refunded + part
        assert CNY(0) <= returned <= fee
    assert refunded == total
    assert returned == fee


@given(
    total=st.integers(min_value=-(10**12), max_value=10**12),
    weights=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=10).filter(lambda w: sum(w) > 0),
)
def test_allocate_parts_sum_to_the_whole_and_stay_within_one_fen_of_fair(total: int, weights: list[int]) -> None:
    parts = allocate(CNY(total), weights)
    assert sum(p.minor for p in parts) == total
    for part, weight in zip(parts, weights, strict=True):
        fair = total * weight / sum(weights)
        assert abs(part.minor - fair) < 1


def test_pro_rata_rounds_half_up() -> None:
    assert pro_rata(CNY(3), CNY(1), CNY(2)) == CNY(2)
