"""The payout domain: every state × event pair, creation rules, routing and the posting rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tianpay.domain.console import BankSwitchedOff
from tianpay.domain.errors import IllegalTransition
from tianpay.domain.ledger import member_wallet, merchant_available, net_by_account
from tianpay.domain.money import Money
from tianpay.domain.payment import AmountTooSmall
from tianpay.domain.payout import (
    MAX_REVIEW_THRESHOLD_MINOR,
    TRANSITIONS,
    InvalidOutPayoutNo,
    InvalidPayeeAccount,
    InvalidPurpose,
    InvalidReviewThreshold,
    PayeeAccount,
    Payout,
    PayoutEvent,
    PayoutNotSupported,
    PayoutRequest,
    PayoutSource,
    PayoutStatus,
    check_request,
    check_review_threshold,
    initial_status,
    mask_account_no,
    needs_review,
    next_state,
    sending_bank,
)
from tianpay.domain.posting_rules import payout_failed, payout_returned, payout_submitted, payout_succeeded

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
CNY = Money.cny
ACCOUNT = PayeeAccount("BCB", "6230990000000000033", "天津津门好物商贸有限公司")

EXPECTED = {
    (PayoutStatus.PENDING_REVIEW, PayoutEvent.APPROVED): PayoutStatus.CREATED,
    (PayoutStatus.PENDING_REVIEW, PayoutEvent.REJECTED): PayoutStatus.FAILED,
    (PayoutStatus.CREATED, PayoutEvent.BATCHED): PayoutStatus.PROCESSING,
    (PayoutStatus.PROCESSING, PayoutEvent.UNKNOWN): PayoutStatus.UNKNOWN,
    (PayoutStatus.PROCESSING, PayoutEvent.SUCCEEDED): PayoutStatus.SUCCEEDED,
    (PayoutStatus.PROCESSING, PayoutEvent.FAILED): PayoutStatus.FAILED,
    (PayoutStatus.UNKNOWN, PayoutEvent.PENDING): PayoutStatus.PROCESSING,
    (PayoutStatus.UNKNOWN, PayoutEvent.SUCCEEDED): PayoutStatus.SUCCEEDED,
    (PayoutStatus.UNKNOWN, PayoutEvent.FAILED): PayoutStatus.FAILED,
    (PayoutStatus.SUCCEEDED, PayoutEvent.RETURNED): PayoutStatus.RETURNED,
}


def payout(status: PayoutStatus = PayoutStatus.PROCESSING, source: PayoutSource = PayoutSource.MERCHANT) -> Payout:
    return Payout(
        id="pyo_1", source=source,
        merchant_id="mch_1" if source is PayoutSource.MERCHANT else None,
        member_id="mbr_1" if source is PayoutSource.MEMBER else None,
        out_payout_no="P1", amount=CNY(12_345), purpose="货款", payee_bank="BCB", account_name="某公司",
        account_masked="623099*********0033", account_fingerprint="f" * 64, account_sealed="sealed",
        card_id=None, bank="BCB", status=status, created_at=NOW, updated_at=NOW,
    )


@pytest.mark.parametrize("status", list(PayoutStatus))
@pytest.mark.parametrize("event", list(PayoutEvent))
def test_every_state_and_event_pair_follows_the_table(status: PayoutStatus, event: PayoutEvent) -> None:
    expected = EXPECTED.get((status, event))
    if expected is None:
        with pytest.raises(IllegalTransition):
            next_state(status, event)
    else:
        assert next_state(status, event) is expected


def test_the_table_is_exactly_the_documented_lifecycle() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def test_final_payouts_never_move_except_a_success_that_bounces() -> None:
    for (status, _event), _to in TRANSITIONS.items():
        assert status not in (PayoutStatus.FAILED, PayoutStatus.RETURNED)
    assert {event for (status, event) in TRANSITIONS if status is PayoutStatus.SUCCEEDED} == {PayoutEvent.RETURNED}


def test_unknown_is_shown_to_merchants_as_processing() -> None:
    assert PayoutStatus.UNKNOWN.public == "processing"
    assert PayoutStatus.RETURNED.public == "returned"
    assert {s for s in PayoutStatus if s.is_in_flight} == {PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN}


def test_a_held_payout_is_shown_as_such_is_neither_in_flight_nor_final_and_no_bank_answer_moves_it() -> None:
    held = PayoutStatus.PENDING_REVIEW
    assert held.public == "pending_review"
    assert not held.is_in_flight
    assert not held.is_final
    assert {event for (status, event) in TRANSITIONS if status is held} == {PayoutEvent.APPROVED, PayoutEvent.REJECTED}
    # Only a held payout is reviewed: a created one cannot be approved again, nor rejected.
    assert {status for (status, event) in TRANSITIONS
            if event in (PayoutEvent.APPROVED, PayoutEvent.REJECTED)} == {held}


def test_a_rejection_records_the_time_of_failure_and_an_approval_only_the_update() -> None:
    later = NOW.replace(hour=3)
    rejected = payout(PayoutStatus.PENDING_REVIEW).moved_to(PayoutEvent.REJECTED, later)
    assert (rejected.status, rejected.failed_at) == (PayoutStatus.FAILED, later)
    approved = payout(PayoutStatus.PENDING_REVIEW).moved_to(PayoutEvent.APPROVED, later)
    assert (approved.status, approved.failed_at, approved.updated_at) == (PayoutStatus.CREATED, None, later)


def test_a_payout_at_or_above_its_threshold_waits_for_review_and_none_means_never() -> None:
    assert initial_status(CNY(5_000_000), 5_000_000) is PayoutStatus.PENDING_REVIEW
    assert initial_status(CNY(5_000_001), 5_000_000) is PayoutStatus.PENDING_REVIEW
    assert initial_status(CNY(4_999_999), 5_000_000) is PayoutStatus.CREATED
    assert initial_status(CNY(10**11), None) is PayoutStatus.CREATED
    assert needs_review(CNY(1), 1)
    assert not needs_review(CNY(1), None)


def test_a_review_threshold_is_positive_and_bounded_or_none() -> None:
    assert check_review_threshold(None) is None
    assert check_review_threshold(1) == 1
    assert check_review_threshold(MAX_REVIEW_THRESHOLD_MINOR) == MAX_REVIEW_THRESHOLD_MINOR
    for bad in (0, -100, MAX_REVIEW_THRESHOLD_MINOR + 1):
        with pytest.raises(InvalidReviewThreshold) as refused:
            check_review_threshold(bad)
        assert refused.value.param == "review_threshold"


def test_moving_records_the_time_of_success_failure_and_return() -> None:
    later = NOW.replace(hour=3)
    succeeded = payout().moved_to(PayoutEvent.SUCCEEDED, later)
    assert succeeded.succeeded_at == later
    assert succeeded.updated_at == later
    returned = succeeded.moved_to(PayoutEvent.RETURNED, later.replace(hour=4))
    assert returned.returned_at == later.replace(hour=4)
    assert returned.succeeded_at == later
    assert payout().moved_to(PayoutEvent.FAILED, later).failed_at == later


def test_a_merchant_payout_leaves_available_and_a_withdrawal_leaves_the_wallet() -> None:
    assert payout().source_account == merchant_available("mch_1")
    assert payout(source=PayoutSource.MEMBER).source_account == member_wallet("mbr_1")


def test_the_payees_own_bank_pays_when_it_has_a_payout_channel_otherwise_bcb_through_clearing() -> None:
    none_off: frozenset[str] = frozenset()
    assert sending_bank("HBB", ["BCB", "HBB"], switched_off=none_off) == "HBB"
    assert sending_bank("BCB", ["BCB", "HBB"], switched_off=none_off) == "BCB"
    assert sending_bank("JHB", ["BCB", "HBB"], switched_off=none_off) == "BCB"
    assert sending_bank("HBB", ["BCB"], switched_off=none_off) == "BCB"
    with pytest.raises(PayoutNotSupported):
        sending_bank("JHB", ["HBB"], switched_off=none_off)


@pytest.mark.parametrize(("payee_bank", "switched_off"), [
    ("HBB", {"HBB"}),  # the payee's bank, which would pay from its own reserve
    ("BCB", {"BCB"}),
    ("JHB", {"JHB"}),  # the payee's bank, though BCB would pay through the clearing
    ("JHB", {"BCB"}),  # the bank that would pay through the clearing
])
def test_a_payout_to_or_through_a_switched_off_bank_is_refused_not_rerouted(
    payee_bank: str, switched_off: set[str]
) -> None:
    with pytest.raises(BankSwitchedOff) as refused:
        sending_bank(payee_bank, ["BCB", "HBB"], switched_off=switched_off, param="card_id")
    assert refused.value.code == "bank_switched_off"
    assert refused.value.param == "card_id"


def test_a_bank_switched_off_stops_only_payouts_that_go_to_it_or_through_it() -> None:
    assert sending_bank("HBB", ["BCB", "HBB"], switched_off={"BCB", "JHB"}) == "HBB"
    assert sending_bank("JHB", ["BCB", "HBB"], switched_off={"HBB"}) == "BCB"
    assert sending_bank("BCB", ["BCB", "HBB"], switched_off={"HBB", "JHB"}) == "BCB"


def test_a_request_breaking_a_rule_is_refused_with_the_rules_own_error() -> None:
    check_request(PayoutRequest("P-1", CNY(100), "货款", ACCOUNT))
    check_request(PayoutRequest("P-1", CNY(100), "货款", None))
    with pytest.raises(AmountTooSmall):
        check_request(PayoutRequest("P-1", CNY(0), "货款", ACCOUNT))
    with pytest.raises(InvalidOutPayoutNo):
        check_request(PayoutRequest("P 1", CNY(100), "货款", ACCOUNT))
    with pytest.raises(InvalidPurpose):
        check_request(PayoutRequest("P-1", CNY(100), " ", ACCOUNT))
    with pytest.raises(InvalidPayeeAccount) as bad_bank:
        check_request(PayoutRequest("P-1", CNY(100), "货款", PayeeAccount("XYZ", "6230990000000000033", "某")))
    assert bad_bank.value.param == "account.bank"
    with pytest.raises(InvalidPayeeAccount) as bad_number:
        check_request(PayoutRequest("P-1", CNY(100), "货款", PayeeAccount("BCB", "62309900000000000x3", "某")))
    assert "62309900000000000x3" not in bad_number.value.message


def test_the_request_fingerprint_changes_with_the_body_but_never_holds_the_account_number() -> None:
    first = PayoutRequest("P-1", CNY(100), "货款", ACCOUNT)
    assert first.fingerprint("fp") == PayoutRequest("P-1", CNY(100), "货款", ACCOUNT).fingerprint("fp")
    assert first.fingerprint("fp") != PayoutRequest("P-1", CNY(101), "货款", ACCOUNT).fingerprint("fp")
    assert first.fingerprint("fp") != first.fingerprint("another account")
    assert ACCOUNT.account_no not in repr(ACCOUNT)


def test_account_numbers_are_masked_to_the_bin_and_the_last_four() -> None:
    assert mask_account_no("6230990000000000033") == "623099*********0033"
    assert mask_account_no("12345678") == "****5678"


def test_submit_success_failure_and_bounce_entries_move_the_money_as_designed() -> None:
    source = merchant_available("mch_1")
    submitted = payout_submitted(payout_id="pyo_1", source=source, bank="BCB", amount=CNY(500))
    assert net_by_account(submitted.postings) == {"merchant:mch_1:available": 500, "bank:BCB:in_transit": -500}
    succeeded = payout_succeeded(payout_id="pyo_1", bank="BCB", amount=CNY(500))
    assert net_by_account(succeeded.postings) == {"bank:BCB:in_transit": 500, "bank:BCB:reserve": -500}
    failed = payout_failed(submitted)
    assert net_by_account(failed.postings) == {"merchant:mch_1:available": -500, "bank:BCB:in_transit": 500}
    assert failed.id != submitted.id
    assert failed.id == payout_failed(submitted).id
    returned = payout_returned(payout_id="pyo_1", source=source, bank="BCB", amount=CNY(500))
    assert net_by_account(returned.postings) == {"bank:BCB:reserve": 500, "merchant:mch_1:available": -500}
    with pytest.raises(ValueError, match="submit entry"):
        payout_failed(succeeded)
