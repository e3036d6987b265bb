"""A 补单 the owning service refuses, on both databases: booked to suspense by an operator, then
resolved from suspense (recovered, or taken back once the service records the line after all).

The refusal is a real one: the merchant's fee plan no longer prices the payment's method, so the
payment service will not record the success (``FeePlanMissing``) and the statement's money stays
outside the ledger until an operator books it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.domain.merchant import FeePlan, FeeRate
from tianpay.domain.money import Money
from tianpay.domain.payment import AttemptStatus
from tianpay.domain.reconciliation import (
    BOOKED_TO_SUSPENSE,
    MAKE_GOOD_REFUSED,
    ExceptionStatus,
    IllegalResolution,
    ResolutionAction,
)
from tianpay.ports.reconciliation import ReconciliationException
from tianpay.ports.statements import StatementItemKind
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.ledger import verify_ledger
from tianpay.services.payments import record_attempt_succeeded
from tianpay.services.reconciliation import (
    SYSTEM_OPERATOR,
    ReconciliationPolicy,
    exceptions_of,
    follow_up_id,
    reconcile,
    resolve_exception,
)

from .conftest import BUSINESS_DATE, FEE_RATES, MERCHANT_ID, Banks, LedgerBank, Row, start_payment
from .test_reconciliation_service import balances

AMOUNT = 10_098
CHARGE = 10
ACCOUNTS = ("bank:HBB:reserve", "platform:suspense", f"merchant:{MERCHANT_ID}:pending")


@pytest.fixture
def hbb() -> LedgerBank:
    return LedgerBank("HBB")


@pytest.fixture
def banks(hbb: LedgerBank) -> Banks:
    return Banks({"HBB": hbb})


def set_fee_plan(uow_factory: UnitOfWorkFactory, rates: tuple[FeeRate, ...]) -> None:
    with uow_factory() as uow:
        uow.merchants.set_fee_plan(FeePlan.of(MERCHANT_ID, rates))
        uow.commit()


def refused_make_good(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, hbb: LedgerBank, banks: Banks,
    policy: ReconciliationPolicy,
) -> tuple[str, ReconciliationException]:
    """An attempt whose notification was lost, a fee plan that stopped pricing the cashier, and the
    statement's line for it: reconciliation's 补单 is refused. Returns (attempt id, the exception)."""
    _, attempt_id = start_payment(uow_factory, clock, ids, AMOUNT)
    set_fee_plan(uow_factory, tuple(rate for rate in FEE_RATES if rate.method != "cashier"))
    hbb.add(BUSINESS_DATE, Row(StatementItemKind.COLLECTION, "Q-REFUSED", AMOUNT, CHARGE, attempt_id))
    clock.advance(timedelta(days=1))
    report = reconcile(uow_factory, clock, ids, banks, "HBB", BUSINESS_DATE, policy=policy, worker_id="w1")
    assert report.summary["make_good_refused"] == 1
    [refused] = exceptions_of(uow_factory, status=ExceptionStatus.OPEN)
    assert (refused.kind, refused.suspense_minor, refused.entry_id) == (MAKE_GOOD_REFUSED, 0, None)
    return attempt_id, refused


def test_a_refused_make_good_leaves_the_ledger_short_of_the_bank_and_cannot_be_dismissed(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    before = balances(uow_factory, *ACCOUNTS)
    _, refused = refused_make_good(uow_factory, clock, ids, hbb, banks, policy)

    # The bank's reserve grew by the line's net; the ledger only saw the charge leave.
    after = balances(uow_factory, *ACCOUNTS)
    assert after["bank:HBB:reserve"] - before["bank:HBB:reserve"] == -CHARGE
    with pytest.raises(IllegalResolution):
        resolve_exception(uow_factory, clock, refused.id, action="dismiss", operator="finance1", reason="looks odd")
    with pytest.raises(IllegalResolution):
        resolve_exception(uow_factory, clock, refused.id, action="write_off", operator="finance1", reason="loss")
    assert exceptions_of(uow_factory, status=ExceptionStatus.OPEN) == [refused]


def test_booking_a_refused_make_good_to_suspense_is_one_balanced_idempotent_entry_with_a_follow_up(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    before = balances(uow_factory, *ACCOUNTS)
    _, refused = refused_make_good(uow_factory, clock, ids, hbb, banks, policy)

    booked = resolve_exception(uow_factory, clock, refused.id, action="book_to_suspense", operator="finance1",
                               reason="fee plan was withdrawn; the money is in the reserve")
    again = resolve_exception(uow_factory, clock, refused.id, action=ResolutionAction.BOOK_TO_SUSPENSE,
                              operator="finance1", reason="double click")

    assert (booked.status, booked.resolution) == (ExceptionStatus.RESOLVED, "book_to_suspense")
    assert booked.resolution_entry_id is not None
    assert again.resolution_entry_id == booked.resolution_entry_id
    after = balances(uow_factory, *ACCOUNTS)
    # The ledger follows the bank again: the reserve holds the line's net, suspense owes the line.
    assert after["bank:HBB:reserve"] - before["bank:HBB:reserve"] == AMOUNT - CHARGE
    assert after["platform:suspense"] - before["platform:suspense"] == -AMOUNT
    assert after[f"merchant:{MERCHANT_ID}:pending"] == before[f"merchant:{MERCHANT_ID}:pending"]
    [follow_up] = exceptions_of(uow_factory, status=ExceptionStatus.OPEN)
    assert follow_up.id == follow_up_id(refused.id)
    assert (follow_up.kind, follow_up.suspense_minor) == (BOOKED_TO_SUSPENSE, -AMOUNT)
    assert follow_up.entry_id == booked.resolution_entry_id
    assert (follow_up.record_id, follow_up.bank_ref) == (refused.record_id, refused.bank_ref)
    assert verify_ledger(uow_factory).problem is None

    # From suspense the existing paths apply: the payer was paid back out of the reserve.
    recovered = resolve_exception(uow_factory, clock, follow_up.id, action="recovered", operator="finance1",
                                  reason="returned to the payer by bank transfer")
    assert recovered.status is ExceptionStatus.RESOLVED
    final = balances(uow_factory, *ACCOUNTS)
    assert final["platform:suspense"] == before["platform:suspense"]
    assert final["bank:HBB:reserve"] - before["bank:HBB:reserve"] == -CHARGE
    assert verify_ledger(uow_factory).problem is None


def test_a_line_booked_to_suspense_is_taken_back_by_the_next_run_once_its_service_records_it(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    before = balances(uow_factory, *ACCOUNTS)
    attempt_id, refused = refused_make_good(uow_factory, clock, ids, hbb, banks, policy)
    resolve_exception(uow_factory, clock, refused.id, action="book_to_suspense", operator="finance1",
                      reason="fee plan missing")
    follow_up = follow_up_id(refused.id)
    # The plan comes back and a query records the success: the service books the money itself.
    set_fee_plan(uow_factory, FEE_RATES)
    with uow_factory() as uow:
        attempt = uow.payments.get_attempt(attempt_id)
    assert attempt is not None
    record_attempt_succeeded(uow_factory, clock, attempt.payment_id, attempt_id, bank_reference="Q-REFUSED",
                             amount=Money.cny(AMOUNT))
    # Until the booking is taken back the reserve holds the money twice: only recorded_since may resolve it.
    with pytest.raises(IllegalResolution):
        resolve_exception(uow_factory, clock, follow_up, action="write_off", operator="finance1", reason="loss")

    hbb.days[BUSINESS_DATE + timedelta(days=1)] = []
    clock.advance(timedelta(days=1))
    report = reconcile(uow_factory, clock, ids, banks, "HBB", BUSINESS_DATE + timedelta(days=1), policy=policy,
                       worker_id="w1")

    assert report.status == "finished"
    resolved = [e for e in exceptions_of(uow_factory) if e.id == follow_up]
    assert [(e.status, e.resolution, e.resolved_by) for e in resolved] == [
        (ExceptionStatus.RESOLVED, "recorded_since", SYSTEM_OPERATOR)
    ]
    after = balances(uow_factory, *ACCOUNTS)
    assert after["bank:HBB:reserve"] - before["bank:HBB:reserve"] == AMOUNT - CHARGE
    assert after["platform:suspense"] == before["platform:suspense"]
    fee = 61  # 0.60 % of ¥100.98, half up
    assert after[f"merchant:{MERCHANT_ID}:pending"] - before[f"merchant:{MERCHANT_ID}:pending"] == AMOUNT - fee
    with uow_factory() as uow:
        recorded = uow.payments.get_attempt(attempt_id)
    assert recorded is not None
    assert recorded.status is AttemptStatus.SUCCEEDED
    assert verify_ledger(uow_factory).problem is None


def test_a_refused_make_good_its_service_recorded_since_is_dismissed_and_never_booked_twice(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    attempt_id, refused = refused_make_good(uow_factory, clock, ids, hbb, banks, policy)
    set_fee_plan(uow_factory, FEE_RATES)
    with uow_factory() as uow:
        attempt = uow.payments.get_attempt(attempt_id)
    assert attempt is not None
    record_attempt_succeeded(uow_factory, clock, attempt.payment_id, attempt_id, bank_reference="Q-REFUSED",
                             amount=Money.cny(AMOUNT))
    before = balances(uow_factory, *ACCOUNTS)

    with pytest.raises(IllegalResolution):
        resolve_exception(uow_factory, clock, refused.id, action="book_to_suspense", operator="finance1",
                          reason="book it")
    dismissed = resolve_exception(uow_factory, clock, refused.id, action="dismiss", operator="finance1",
                                  reason="recorded by the re-query")

    assert (dismissed.status, dismissed.resolution_entry_id) == (ExceptionStatus.RESOLVED, None)
    assert balances(uow_factory, *ACCOUNTS) == before
    assert exceptions_of(uow_factory, status=ExceptionStatus.OPEN) == []
    assert verify_ledger(uow_factory).problem is None
