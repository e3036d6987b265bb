"""The pure settlement rules: lines and totals to the fen, the T+N date rule, the lifecycle table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tianpay.domain.errors import IllegalTransition
from tianpay.domain.settlement import (
    TRANSITIONS,
    LineKind,
    Payee,
    PendingMovement,
    SettlementEvent,
    SettlementStatus,
    business_date_due,
    business_date_of,
    check_account_no,
    cutoff_of,
    is_over,
    line_of,
    mask_account_no,
    next_status,
    payee_changed,
    settlement_day,
    settlement_id_for,
    totals_of,
)

MOMENT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def movement(event: str, pending_minor: int, fee_minor: int, n: int = 0) -> PendingMovement:
    return PendingMovement(f"je_{n}", event, f"src_{n}", None, MOMENT, pending_minor, fee_minor)


def test_a_payment_line_shows_the_gross_amount_and_its_fee() -> None:
    # payment.succeeded of 10,000 with a fee of 60: pending rose by 9,940, fee income by 60.
    line = line_of(movement("payment.succeeded", 9_940, 60))

    assert (line.kind, line.amount_minor, line.fee_minor, line.net_minor) == (LineKind.PAYMENT, 10_000, 60, 9_940)


def test_a_partial_refund_line_shows_the_refund_and_the_fee_returned() -> None:
    # refund.requested of 2,500 with 15 of fee returned: pending fell by 2,485, fee income by 15.
    line = line_of(movement("refund.requested", -2_485, -15))

    assert (line.kind, line.amount_minor, line.fee_minor, line.net_minor) == (LineKind.REFUND, -2_500, -15, -2_485)


def test_a_pos_void_and_an_unknown_event_keep_their_own_kinds() -> None:
    assert line_of(movement("pos_payment.voided", -9_940, -60)).kind is LineKind.VOID
    assert line_of(movement("suspense.released", 500, 0)).kind is LineKind.ADJUSTMENT


def test_totals_are_gross_minus_refunds_minus_fees() -> None:
    lines = [
        line_of(movement("payment.succeeded", 9_940, 60, 1)),
        line_of(movement("payment.succeeded", 33_233, 100, 2)),
        line_of(movement("refund.requested", -2_485, -15, 3)),
    ]

    totals = totals_of(lines)

    assert (totals.count, totals.gross_minor, totals.refunds_minor, totals.fees_minor) == (3, 43_333, 2_500, 145)
    assert totals.net_minor == 43_333 - 2_500 - 145 == 9_940 + 33_233 - 2_485


def test_more_refunded_than_collected_gives_a_negative_net() -> None:
    totals = totals_of([line_of(movement("refund.requested", -9_940, -60))])

    assert totals.net_minor == -9_940


movements = st.lists(
    st.tuples(
        st.sampled_from(["payment.succeeded", "refund.requested", "refund.succeeded", "pos_payment.voided", "x"]),
        st.integers(-10**12, 10**12),
        st.integers(-10**9, 10**9),
    ),
    max_size=60,
)


@given(movements)
def test_the_net_always_equals_what_moved_on_pending_to_the_fen(raw: list[tuple[str, int, int]]) -> None:
    lines = [line_of(movement(event, pending, fee, n)) for n, (event, pending, fee) in enumerate(raw)]

    totals = totals_of(lines)

    assert totals.net_minor == sum(pending for _, pending, _ in raw)
    assert totals.net_minor == sum(line.net_minor for line in lines)
    assert totals.fees_minor == sum(fee for _, _, fee in raw)
    assert totals.gross_minor >= 0
    assert totals.refunds_minor >= 0


def test_the_cutoff_is_midnight_in_shanghai() -> None:
    assert cutoff_of(date(2026, 11, 26)) == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    assert business_date_of(datetime(2026, 11, 26, 15, 59, 59, tzinfo=UTC)) == date(2026, 11, 26)
    assert business_date_of(datetime(2026, 11, 26, 16, 0, tzinfo=UTC)) == date(2026, 11, 27)
    assert not is_over(date(2026, 11, 26), datetime(2026, 11, 26, 15, 59, 59, tzinfo=UTC))
    assert is_over(date(2026, 11, 26), datetime(2026, 11, 26, 16, 0, tzinfo=UTC))


@given(st.dates(date(2000, 1, 1), date(2100, 1, 1)), st.integers(0, 30))
def test_t_plus_n_settles_a_date_n_days_later_and_names_it_back(business_date: date, cycle_days: int) -> None:
    day = settlement_day(business_date, cycle_days)

    assert day - business_date == timedelta(days=cycle_days)
    assert business_date_due(day, cycle_days) == business_date


def test_a_settlement_id_is_the_same_for_the_same_merchant_and_date_only() -> None:
    first = settlement_id_for("mch_A", date(2026, 11, 26))

    assert first == settlement_id_for("mch_A", date(2026, 11, 26))
    assert first != settlement_id_for("mch_B", date(2026, 11, 26))
    assert first != settlement_id_for("mch_A", date(2026, 11, 27))
    assert first.startswith("stl_20261126")
    assert len(first) <= 40


@pytest.mark.parametrize("status", list(SettlementStatus))
@pytest.mark.parametrize("event", list(SettlementEvent))
def test_every_status_and_event_pair_follows_the_table(status: SettlementStatus, event: SettlementEvent) -> None:
    if (status, event) in TRANSITIONS:
        assert next_status(status, event) is TRANSITIONS[(status, event)]
    else:
        with pytest.raises(IllegalTransition):
            next_status(status, event)


def test_account_numbers_are_digits_and_shown_masked() -> None:
    assert check_account_no("6230 9900 0000 0000 033") == "6230990000000000033"
    assert mask_account_no("6230990000000000033") == "6230***********0033"
    with pytest.raises(Exception, match="8 to 32 digits") as refused:
        check_account_no("6230-9900")
    assert "6230" not in str(refused.value)


def test_a_failed_settlement_payout_is_paid_again_only_from_payout_failed_and_never_while_one_may_succeed() -> None:
    assert next_status(SettlementStatus.SETTLED, SettlementEvent.PAYOUT_FAILED) is SettlementStatus.PAYOUT_FAILED
    assert next_status(SettlementStatus.PAID, SettlementEvent.PAYOUT_RETURNED) is SettlementStatus.PAYOUT_FAILED
    assert next_status(SettlementStatus.PAYOUT_FAILED, SettlementEvent.PAYOUT_RETRIED) is SettlementStatus.SETTLED
    retried_from = {status for (status, event) in TRANSITIONS if event is SettlementEvent.PAYOUT_RETRIED}
    assert retried_from == {SettlementStatus.PAYOUT_FAILED}


def test_the_account_counts_as_changed_when_its_bank_number_or_holders_name_differs() -> None:
    failed = Payee("HBB", "fp-1", "王五")
    assert not payee_changed(failed, Payee("HBB", "fp-1", " 王五 "))
    assert payee_changed(failed, Payee("HBB", "fp-1", "王芳"))
    assert payee_changed(failed, Payee("HBB", "fp-2", "王五"))
    assert payee_changed(failed, Payee("BCB", "fp-1", "王五"))
