"""The pure reconciliation rules: every classification case, parking, and what each outcome books."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tianpay.domain.errors import UnbalancedEntry
from tianpay.domain.ledger import check_balanced, merchant_available, net_by_account
from tianpay.domain.money import Money
from tianpay.domain.posting_rules import (
    bank_payment_succeeded,
    late_attempt_succeeded,
    payout_returned,
    refund_succeeded,
)
from tianpay.domain.reconciliation import (
    BOOKED_TO_SUSPENSE,
    MAKE_GOOD_REFUSED,
    RECORDED_AFTER_CLOSE,
    AfterClose,
    ExceptionStatus,
    IllegalResolution,
    LineKind,
    Outcome,
    PlatformRecord,
    RecordKind,
    RecordState,
    ResolutionAction,
    actions_for,
    after_close,
    after_close_suspense_minor,
    against_suspense,
    business_date_of,
    business_day_bounds,
    check_resolution,
    is_recorded_since,
    judge_absent_record,
    judge_line,
    line_difference_entry,
    record_state,
    resolution_entry,
    short_entry,
    suspense_booking,
    suspense_of,
)
from tianpay.ports.channels import ChannelResult
from tianpay.ports.channels import Outcome as ChannelOutcome
from tianpay.services.suspense_follow_ups import repeats_undone_success


def attempt(state: RecordState, amount_minor: int = 10_000, *, parked: bool = False) -> PlatformRecord:
    return PlatformRecord(RecordKind.ATTEMPT, "att_1", state, amount_minor, parked)


def test_a_collection_line_for_a_succeeded_attempt_of_the_same_amount_matches() -> None:
    assert judge_line(LineKind.COLLECTION, 10_000, attempt(RecordState.SUCCEEDED)).outcome is Outcome.MATCHED


def test_a_line_for_a_record_parked_on_an_earlier_date_matches_across_days() -> None:
    judged = judge_line(LineKind.COLLECTION, 10_000, attempt(RecordState.SUCCEEDED, parked=True))
    assert judged.outcome is Outcome.MATCHED_CROSS_DAY


def test_a_different_amount_is_a_mismatch_of_bank_minus_platform() -> None:
    judged = judge_line(LineKind.COLLECTION, 9_900, attempt(RecordState.SUCCEEDED))
    assert (judged.outcome, judged.difference_minor) == (Outcome.AMOUNT_MISMATCH, -100)


def test_a_line_for_an_attempt_still_in_flight_is_made_good() -> None:
    assert judge_line(LineKind.COLLECTION, 10_000, attempt(RecordState.IN_FLIGHT)).outcome is Outcome.MADE_GOOD


def test_an_in_flight_attempt_with_another_amount_cannot_be_made_good_and_is_bank_only() -> None:
    judged = judge_line(LineKind.COLLECTION, 12_000, attempt(RecordState.IN_FLIGHT))
    assert (judged.outcome, judged.difference_minor) == (Outcome.BANK_ONLY, 12_000)


def test_a_line_for_a_failed_attempt_is_bank_only_for_its_whole_amount() -> None:
    judged = judge_line(LineKind.COLLECTION, 10_000, attempt(RecordState.FAILED))
    assert (judged.outcome, judged.difference_minor) == (Outcome.BANK_ONLY_FAILED, 10_000)


def test_a_line_naming_nothing_the_platform_has_is_bank_only() -> None:
    judged = judge_line(LineKind.COLLECTION, 5_000, None)
    assert (judged.outcome, judged.difference_minor) == (Outcome.BANK_ONLY, 5_000)


def test_a_line_whose_kind_does_not_fit_its_record_is_bank_only() -> None:
    judged = judge_line(LineKind.REFUND, -10_000, attempt(RecordState.SUCCEEDED))
    assert judged.outcome is Outcome.BANK_ONLY


def test_a_second_line_for_the_same_record_is_a_duplicate() -> None:
    judged = judge_line(LineKind.COLLECTION, 10_000, attempt(RecordState.SUCCEEDED), is_duplicate=True)
    assert (judged.outcome, judged.difference_minor) == (Outcome.DUPLICATE, 10_000)


def test_a_charge_line_is_a_charge_whatever_it_names() -> None:
    assert judge_line(LineKind.FEE, -100, None).outcome is Outcome.CHARGE


def test_a_refund_line_matches_a_succeeded_refund_signed_as_money_out() -> None:
    refund = PlatformRecord(RecordKind.REFUND, "rfd_1", RecordState.SUCCEEDED, -3_000)
    assert judge_line(LineKind.REFUND, -3_000, refund).outcome is Outcome.MATCHED


def test_a_payout_return_matches_a_returned_payout_and_nothing_else() -> None:
    returned = PlatformRecord(RecordKind.PAYOUT, "pyo_1", RecordState.RETURNED, -8_000)
    assert judge_line(LineKind.PAYOUT_RETURN, 8_000, returned).outcome is Outcome.MATCHED
    assert judge_line(LineKind.PAYOUT_RETURN, 9_000, returned).outcome is Outcome.AMOUNT_MISMATCH
    assert judge_line(LineKind.PAYOUT, -8_000, returned).outcome is Outcome.MATCHED


def test_a_bounce_whose_notice_was_lost_is_made_good_from_the_statement() -> None:
    paid = PlatformRecord(RecordKind.PAYOUT, "pyo_1", RecordState.SUCCEEDED, -8_000)
    in_flight = PlatformRecord(RecordKind.PAYOUT, "pyo_1", RecordState.IN_FLIGHT, -8_000)
    failed = PlatformRecord(RecordKind.PAYOUT, "pyo_1", RecordState.FAILED, -8_000)
    assert judge_line(LineKind.PAYOUT_RETURN, 8_000, paid).outcome is Outcome.MADE_GOOD
    assert judge_line(LineKind.PAYOUT_RETURN, 8_000, in_flight).outcome is Outcome.MADE_GOOD
    assert judge_line(LineKind.PAYOUT_RETURN, 7_000, paid).outcome is Outcome.BANK_ONLY
    assert judge_line(LineKind.PAYOUT_RETURN, 8_000, failed).outcome is Outcome.BANK_ONLY_FAILED


def test_statuses_map_to_reconciliation_states_and_unknown_ones_count_as_in_flight() -> None:
    assert record_state(RecordKind.ATTEMPT, "processing") is RecordState.IN_FLIGHT
    assert record_state(RecordKind.ATTEMPT, "succeeded") is RecordState.SUCCEEDED
    assert record_state(RecordKind.REFUND, "failed") is RecordState.FAILED
    assert record_state(RecordKind.PAYOUT, "returned") is RecordState.RETURNED
    assert record_state(RecordKind.PAYOUT, "something_new") is RecordState.IN_FLIGHT


def test_an_absent_record_is_parked_first_and_short_once_a_later_date_is_reconciled() -> None:
    day = date(2026, 11, 26)
    assert judge_absent_record(parked_on=None, business_date=day) is Outcome.PARKED
    assert judge_absent_record(parked_on=day, business_date=day) is Outcome.PARKED
    assert judge_absent_record(parked_on=day, business_date=date(2026, 11, 27)) is Outcome.SHORT


def test_business_dates_are_shanghai_dates_cut_at_midnight_there() -> None:
    assert business_date_of(datetime(2026, 11, 26, 15, 59, 59, tzinfo=UTC)) == date(2026, 11, 26)
    assert business_date_of(datetime(2026, 11, 26, 16, 0, tzinfo=UTC)) == date(2026, 11, 27)
    start, end = business_day_bounds(date(2026, 11, 27))
    assert (start, end) == (datetime(2026, 11, 26, 16, tzinfo=UTC), datetime(2026, 11, 27, 16, tzinfo=UTC))


def test_a_surplus_line_debits_the_reserve_and_credits_suspense() -> None:
    entry = line_difference_entry(bank="HBB", bank_ref="Q1", outcome=Outcome.BANK_ONLY, difference_minor=5_000)
    assert entry is not None
    check_balanced(entry.postings)
    assert net_by_account(entry.postings) == {"bank:HBB:reserve": 5_000, "platform:suspense": -5_000}
    assert suspense_of(Outcome.BANK_ONLY, 5_000, bank="HBB") == -5_000


def test_a_shortfall_line_debits_suspense_and_credits_the_reserve() -> None:
    entry = line_difference_entry(bank="JHB", bank_ref="Q2", outcome=Outcome.AMOUNT_MISMATCH, difference_minor=-100)
    assert entry is not None
    assert net_by_account(entry.postings) == {"bank:JHB:reserve": -100, "platform:suspense": 100}


def test_matched_and_made_good_lines_book_nothing_here() -> None:
    for outcome in (Outcome.MATCHED, Outcome.MADE_GOOD, Outcome.CHARGE):
        assert line_difference_entry(bank="HBB", bank_ref="Q", outcome=outcome, difference_minor=1) is None


def test_the_card_switch_books_nothing_because_it_keeps_no_reserve() -> None:
    assert line_difference_entry(bank="TCS", bank_ref="R", outcome=Outcome.BANK_ONLY, difference_minor=9) is None
    assert short_entry(bank="TCS", record_id="att_1", amount_minor=9) is None
    assert suspense_of(Outcome.SHORT, 9, bank="TCS") == 0


def test_a_short_collection_is_taken_back_out_of_the_reserve_into_suspense() -> None:
    entry = short_entry(bank="HBB", record_id="att_9", amount_minor=10_093)
    assert entry is not None
    assert net_by_account(entry.postings) == {"platform:suspense": 10_093, "bank:HBB:reserve": -10_093}
    assert suspense_of(Outcome.SHORT, 10_093, bank="HBB") == 10_093


def test_a_short_refund_is_put_back_into_the_reserve_against_suspense() -> None:
    entry = short_entry(bank="HBB", record_id="rfd_9", amount_minor=-500)
    assert entry is not None
    assert net_by_account(entry.postings) == {"platform:suspense": -500, "bank:HBB:reserve": 500}


def test_writing_off_a_shortfall_moves_it_from_suspense_to_bank_cost() -> None:
    entry = resolution_entry(exception_id="rcx_1", bank="HBB", suspense_minor=700, action=ResolutionAction.WRITE_OFF)
    assert entry is not None
    assert net_by_account(entry.postings) == {"platform:bank_cost": 700, "platform:suspense": -700}


def test_recovering_a_surplus_pays_it_out_of_the_reserve() -> None:
    entry = resolution_entry(exception_id="rcx_2", bank="JHB", suspense_minor=-300, action=ResolutionAction.RECOVERED)
    assert entry is not None
    assert net_by_account(entry.postings) == {"bank:JHB:reserve": -300, "platform:suspense": 300}


def test_dismissal_is_only_for_exceptions_that_left_nothing_in_suspense() -> None:
    assert resolution_entry(exception_id="rcx_3", bank="TCS", suspense_minor=0, action=ResolutionAction.DISMISS) is None
    with pytest.raises(IllegalResolution):
        resolution_entry(exception_id="rcx_3", bank="HBB", suspense_minor=1, action=ResolutionAction.DISMISS)
    with pytest.raises(IllegalResolution):
        resolution_entry(exception_id="rcx_3", bank="HBB", suspense_minor=0, action=ResolutionAction.WRITE_OFF)


def test_the_same_resolution_always_has_the_same_entry_id_so_a_replay_is_a_no_op() -> None:
    first = resolution_entry(exception_id="rcx_4", bank="HBB", suspense_minor=5, action=ResolutionAction.WRITE_OFF)
    again = resolution_entry(exception_id="rcx_4", bank="HBB", suspense_minor=5, action=ResolutionAction.WRITE_OFF)
    assert first is not None
    assert again is not None
    assert first.id == again.id


def test_a_zero_difference_books_nothing() -> None:
    assert line_difference_entry(bank="HBB", bank_ref="Q", outcome=Outcome.BANK_ONLY, difference_minor=0) is None
    with pytest.raises(UnbalancedEntry):
        check_balanced(())


# ---- a refused 补单 and its follow-up in suspense (docs/reconciliation.md) ------------------------------


@pytest.mark.parametrize(
    ("kind", "bank", "action", "recorded_since", "allowed"),
    [
        ("make_good_refused", "HBB", "book_to_suspense", False, True),
        ("make_good_refused", "HBB", "book_to_suspense", True, False),
        ("make_good_refused", "HBB", "dismiss", False, False),
        ("make_good_refused", "HBB", "dismiss", True, True),
        ("make_good_refused", "HBB", "write_off", False, False),
        ("make_good_refused", "HBB", "recorded_since", True, False),
        ("make_good_refused", "TCS", "dismiss", False, True),
        ("make_good_refused", "TCS", "book_to_suspense", False, False),
        ("bank_only", "HBB", "book_to_suspense", False, False),
        ("bank_only", "HBB", "recorded_since", False, False),
        ("booked_to_suspense", "HBB", "recorded_since", True, True),
        ("booked_to_suspense", "HBB", "recorded_since", False, False),
        ("booked_to_suspense", "HBB", "write_off", True, False),
        ("booked_to_suspense", "HBB", "recovered", False, True),
    ],
)
def test_what_may_resolve_a_refused_make_good_and_its_follow_up_depends_on_its_record_now(
    kind: str, bank: str, action: str, recorded_since: bool, allowed: bool
) -> None:
    def check() -> None:
        check_resolution(kind=kind, bank=bank, action=ResolutionAction(action), is_recorded_since=recorded_since)

    if allowed:
        check()
    else:
        with pytest.raises(IllegalResolution):
            check()


@pytest.mark.parametrize(("amount_minor", "reserve", "suspense"), [(10_098, 10_098, -10_098), (-5_000, -5_000, 5_000)])
def test_booking_a_line_to_suspense_follows_the_reserve_and_leaves_the_opposite_in_suspense(
    amount_minor: int, reserve: int, suspense: int
) -> None:
    entry, suspense_minor = suspense_booking(exception_id="rcx_1", bank="HBB", statement_amount_minor=amount_minor)
    moved = {posting.account.code: posting.amount.minor for posting in entry.postings}
    assert moved == {"bank:HBB:reserve": reserve, "platform:suspense": -reserve}
    assert suspense_minor == suspense
    assert (entry.event, entry.source_id) == ("reconciliation.booked_to_suspense", "rcx_1")
    # The follow-up's resolutions clear exactly what the booking left.
    back = resolution_entry(exception_id="rcx_1_s", bank="HBB", suspense_minor=suspense_minor,
                            action=ResolutionAction.RECORDED_SINCE)
    assert back is not None
    undone = {posting.account.code: posting.amount.minor for posting in back.postings}
    assert undone == {code: -minor for code, minor in moved.items()}


def test_a_record_counts_as_recorded_since_when_its_service_holds_what_the_line_says() -> None:
    assert is_recorded_since(RecordKind.ATTEMPT, RecordState.SUCCEEDED, 100)
    assert not is_recorded_since(RecordKind.ATTEMPT, RecordState.IN_FLIGHT, 100)
    assert is_recorded_since(RecordKind.PAYOUT, RecordState.RETURNED, -100)
    assert is_recorded_since(RecordKind.PAYOUT, RecordState.SUCCEEDED, -100)
    assert not is_recorded_since(RecordKind.PAYOUT, RecordState.SUCCEEDED, 100)  # its bounce line
    assert is_recorded_since(RecordKind.PAYOUT, RecordState.RETURNED, 100)
    assert actions_for("make_good_refused") == (ResolutionAction.BOOK_TO_SUSPENSE, ResolutionAction.DISMISS)


# ---- a success after its follow-up in suspense was closed ----------------------------------------------


@pytest.mark.parametrize(
    ("status", "resolution", "expected"),
    [
        (ExceptionStatus.RESOLVED, "write_off", AfterClose.AGAINST_SUSPENSE),
        (ExceptionStatus.RESOLVED, "recovered", AfterClose.UNDONE),
        (ExceptionStatus.RESOLVED, "recorded_since", None),
        (ExceptionStatus.OPEN, None, None),
    ],
)
def test_a_closed_follow_up_decides_how_its_records_late_success_is_recorded(
    status: ExceptionStatus, resolution: str | None, expected: AfterClose | None
) -> None:
    assert after_close(kind=BOOKED_TO_SUSPENSE, status=status, resolution=resolution) is expected
    # Only a follow-up in suspense counts: a refused make-good never booked anything.
    assert after_close(kind=MAKE_GOOD_REFUSED, status=status, resolution=resolution) is None


def test_a_success_against_suspense_keeps_its_entry_id_and_never_touches_the_reserve() -> None:
    fee = Money.cny(61)
    entry = bank_payment_succeeded(payment_id="pay_1", merchant_id="M1", bank="HBB", amount=Money.cny(10_098), fee=fee)
    moved = against_suspense(entry, bank="HBB")

    assert moved is not None
    assert moved.id == entry.id
    assert net_by_account(moved.postings) == {
        "platform:suspense": 10_098, "merchant:M1:pending": -10_098 + 61, "platform:fee_income": -61,
    }
    refund = against_suspense(refund_succeeded(refund_id="rfd_1", bank="HBB", amount=Money.cny(500)), bank="HBB")
    assert refund is not None
    assert net_by_account(refund.postings) == {"bank:HBB:in_transit": 500, "platform:suspense": -500}
    # A late second success moves the reserve into suspense: against suspense it moves nothing at all.
    late = late_attempt_succeeded(attempt_id="att_2", payment_id="pay_1", bank="HBB", amount=Money.cny(100))
    assert against_suspense(late, bank="HBB") is None


def test_what_a_success_after_close_leaves_in_suspense_is_the_write_off_to_take_back() -> None:
    # Money in, written off as the platform's gain (suspense was −X): the success puts +X back.
    assert after_close_suspense_minor(-10_098, AfterClose.AGAINST_SUSPENSE) == 10_098
    assert after_close_suspense_minor(1_097, AfterClose.AGAINST_SUSPENSE) == -1_097
    assert after_close_suspense_minor(-10_098, AfterClose.UNDONE) == 0
    # Taking it back is a write-off through bank_cost; "recovered" would invent a reserve movement.
    check_resolution(kind=RECORDED_AFTER_CLOSE, bank="HBB", action=ResolutionAction.WRITE_OFF, is_recorded_since=False)
    with pytest.raises(IllegalResolution):
        check_resolution(kind=RECORDED_AFTER_CLOSE, bank="HBB", action=ResolutionAction.RECOVERED,
                         is_recorded_since=False)
    assert actions_for(RECORDED_AFTER_CLOSE) == (ResolutionAction.WRITE_OFF, ResolutionAction.DISMISS)


def test_a_bounce_against_suspense_gives_the_payouts_money_back_out_of_suspense_not_the_reserve() -> None:
    bounce = payout_returned(payout_id="pyo_1", source=merchant_available("M1"), bank="BCB", amount=Money.cny(6_600))
    moved = against_suspense(bounce, bank="BCB")

    assert moved is not None
    assert moved.id == bounce.id
    assert net_by_account(moved.postings) == {"platform:suspense": 6_600, "merchant:M1:available": -6_600}


@pytest.mark.parametrize(
    ("failure_code", "reported", "same_news"),
    [
        ("undone_by_recovery", ChannelResult(ChannelOutcome.SUCCEEDED, "Q1", Money.cny(10_098)), True),
        # A message that names no reference or no amount is still that success.
        ("undone_by_recovery", ChannelResult(ChannelOutcome.SUCCEEDED, None, None), True),
        # Another reference or another amount is other news: the bank changed its mind, an operator looks.
        ("undone_by_recovery", ChannelResult(ChannelOutcome.SUCCEEDED, "Q2", Money.cny(10_098)), False),
        ("undone_by_recovery", ChannelResult(ChannelOutcome.SUCCEEDED, "Q1", Money.cny(10_000)), False),
        # A success after a failure of the bank's own is the bank changing its mind.
        ("51", ChannelResult(ChannelOutcome.SUCCEEDED, "Q1", Money.cny(10_098)), False),
        ("undone_by_recovery", ChannelResult(ChannelOutcome.FAILED, "Q1", None), False),
    ],
)
def test_only_the_undone_success_told_again_is_the_same_news(
    failure_code: str, reported: ChannelResult, same_news: bool
) -> None:
    assert repeats_undone_success(
        reported, failure_code=failure_code, bank_reference="Q1", amount=Money.cny(10_098)
    ) is same_news
