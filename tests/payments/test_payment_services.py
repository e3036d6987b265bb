"""The payment services on SQLite and PostgreSQL: creation, idempotency, close, expiry, bank answers.

Every test that moves money ends by checking that ``ledger verify`` finds the ledger sound.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.domain.errors import Conflict, IdempotencyConflict, IllegalTransition, NotFound
from tianpay.domain.money import Money
from tianpay.domain.payment import (
    AmountMismatch,
    AttemptStatus,
    InvalidSubject,
    MethodNotAllowed,
    PaymentAttempt,
    PaymentExpired,
    PaymentMethod,
    PaymentStatus,
    new_payment,
)
from tianpay.ports.payments import PaymentFilter
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.payments import (
    AttemptRecorded,
    InvalidListRequest,
    MethodNotEnabled,
    Recorded,
    close_payment,
    create_payment,
    create_pos_payment,
    expire_payments,
    get_payment,
    late_success_refunds_of,
    list_payments,
    record_attempt_failed,
    record_attempt_pending,
    record_attempt_succeeded,
    record_attempt_unknown,
    start_attempt,
    transitions_of,
)

from .conftest import add_merchant, assert_ledger_sound, events_of, pay_request

CNY = Money.cny


def succeed(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, attempt: PaymentAttempt, reference: str = "R1"
) -> AttemptRecorded:
    """The bank confirms ``attempt`` for exactly its amount."""
    return record_attempt_succeeded(
        uow_factory, clock, attempt.payment_id, attempt.id, bank_reference=reference, amount=attempt.amount
    )


def unknown(uow_factory: UnitOfWorkFactory, clock: SettableClock, attempt: PaymentAttempt) -> AttemptStatus:
    return record_attempt_unknown(uow_factory, clock, attempt.payment_id, attempt.id, cause="timed out").status


def balances(uow_factory: UnitOfWorkFactory, *codes: str) -> dict[str, int]:
    with uow_factory() as uow:
        return {code: money.minor for code, money in uow.ledger.balances(list(codes)).items()}


# ---- creation and idempotency -----------------------------------------------------------------------


def test_a_new_payment_is_created_with_its_first_transition_recorded(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    created = create_payment(uow_factory, clock, ids, pay_request(merchant_id))
    payment = created.payment
    assert not created.replayed
    assert payment.id.startswith("pay_")
    assert payment.status is PaymentStatus.CREATED
    assert payment.expires_at == clock.now() + timedelta(minutes=30)
    assert get_payment(uow_factory, merchant_id, payment.id).payment == payment
    [transition] = transitions_of(uow_factory, payment.id)
    assert (transition.from_status, transition.to_status, transition.event) == (None, "created", "created")


def test_repeating_a_create_with_the_same_body_returns_the_first_payment(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    first = create_payment(uow_factory, clock, ids, pay_request(merchant_id))
    clock.advance(timedelta(minutes=2))
    again = create_payment(uow_factory, clock, ids, pay_request(merchant_id))
    assert again.replayed
    assert again.payment == first.payment


def test_the_same_out_trade_no_with_another_body_is_an_idempotency_conflict(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    create_payment(uow_factory, clock, ids, pay_request(merchant_id))
    with pytest.raises(IdempotencyConflict) as raised:
        create_payment(uow_factory, clock, ids, pay_request(merchant_id, amount=CNY(10_001)))
    assert raised.value.code == "idempotency_conflict"
    assert raised.value.param == "out_trade_no"


def test_another_merchant_may_use_the_same_out_trade_no(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    other = add_merchant(uow_factory, clock, "mch_B")
    mine = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    theirs = create_payment(uow_factory, clock, ids, pay_request(other)).payment
    assert mine.id != theirs.id
    with pytest.raises(NotFound):
        get_payment(uow_factory, other, mine.id)


def test_a_duplicate_out_trade_no_that_reaches_the_table_is_a_conflict_and_the_unit_of_work_rolls_back(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    # The idempotency claim keeps this from happening through create_payment; the table's unique
    # constraint is the backstop, and without a savepoint around the insert (docs/performance.md)
    # the whole unit of work goes, on both databases, including what it wrote before the insert.
    first = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    second = new_payment(pay_request(merchant_id), payment_id=ids.new("pay"), now=clock.now())
    with pytest.raises(Conflict) as raised, uow_factory() as uow:
        uow.payments.add(new_payment(pay_request(merchant_id, "order-2"), payment_id=ids.new("pay"), now=clock.now()))
        uow.payments.add(second)
        uow.commit()
    assert raised.value.param == "out_trade_no"
    assert list_payments(uow_factory, merchant_id).payments == (first,)


def test_a_refused_request_stores_nothing_and_may_be_corrected_under_the_same_number(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    with pytest.raises(InvalidSubject):
        create_payment(uow_factory, clock, ids, pay_request(merchant_id, subject=""))
    created = create_payment(uow_factory, clock, ids, pay_request(merchant_id))
    assert not created.replayed


def test_a_method_the_merchant_has_not_signed_up_for_is_refused(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    with pytest.raises(MethodNotEnabled):
        create_payment(uow_factory, clock, ids, pay_request(merchant_id, method=PaymentMethod.WALLET))


def test_concurrent_duplicate_creates_end_with_one_payment(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def create() -> None:
        try:
            payment_id = create_payment(uow_factory, clock, ids, pay_request(merchant_id, "race-1")).payment.id
            with lock:
                results.append(payment_id)
        except BaseException as error:
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 12
    assert len(set(results)) == 1
    page = list_payments(uow_factory, merchant_id, PaymentFilter(out_trade_no="race-1"))
    assert [p.id for p in page.payments] == results[:1]


def test_pos_payments_come_only_from_the_pos_front(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    with pytest.raises(MethodNotAllowed):
        create_payment(uow_factory, clock, ids, pay_request(merchant_id, method=PaymentMethod.POS))
    with pytest.raises(MethodNotAllowed):
        create_pos_payment(uow_factory, clock, ids, pay_request(merchant_id))
    created = create_pos_payment(uow_factory, clock, ids, pay_request(merchant_id, method=PaymentMethod.POS))
    assert created.payment.method is PaymentMethod.POS


# ---- listing ----------------------------------------------------------------------------------------


def test_payments_are_listed_newest_first_with_filters_and_a_cursor(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    made = []
    for n in range(5):
        method = PaymentMethod.QUICK_PAY if n % 2 else PaymentMethod.CASHIER
        made.append(create_payment(uow_factory, clock, ids, pay_request(merchant_id, f"o-{n}", method=method)).payment)
        clock.advance(timedelta(seconds=1))
    newest_first = [p.id for p in reversed(made)]

    first = list_payments(uow_factory, merchant_id, limit=2)
    assert [p.id for p in first.payments] == newest_first[:2]
    assert first.has_more
    second = list_payments(uow_factory, merchant_id, starting_after=first.payments[-1].id, limit=2)
    third = list_payments(uow_factory, merchant_id, starting_after=second.payments[-1].id, limit=2)
    assert [p.id for p in second.payments + third.payments] == newest_first[2:]
    assert not third.has_more

    quick = list_payments(uow_factory, merchant_id, PaymentFilter(method=PaymentMethod.QUICK_PAY))
    assert [p.id for p in quick.payments] == [made[3].id, made[1].id]
    window = PaymentFilter(created_from=made[1].created_at, created_before=made[3].created_at)
    assert [p.id for p in list_payments(uow_factory, merchant_id, window).payments] == [made[2].id, made[1].id]
    assert list_payments(uow_factory, merchant_id, PaymentFilter(status=PaymentStatus.CLOSED)).payments == ()
    assert list_payments(uow_factory, "mch_nobody").payments == ()
    with pytest.raises(InvalidListRequest):
        list_payments(uow_factory, merchant_id, starting_after="pay_unknown")
    with pytest.raises(InvalidListRequest):
        list_payments(uow_factory, merchant_id, limit=101)


# ---- close and expiry -------------------------------------------------------------------------------


def test_a_merchant_closes_a_created_payment_and_is_told_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    closed = close_payment(uow_factory, clock, merchant_id, payment.id)
    assert closed.status is PaymentStatus.CLOSED
    again = close_payment(uow_factory, clock, merchant_id, payment.id)
    assert again.status is PaymentStatus.CLOSED
    events = events_of(uow_factory, merchant_id)
    assert [e.type for e in events] == ["payment.closed"]
    assert events[0].data["id"] == payment.id
    assert events[0].data["status"] == "closed"
    assert transitions_of(uow_factory, payment.id)[-1].event == "closed_by_merchant"


def test_a_payment_with_an_attempt_in_flight_cannot_be_closed(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    with pytest.raises(IllegalTransition):
        close_payment(uow_factory, clock, merchant_id, payment.id)
    with pytest.raises(NotFound):
        close_payment(uow_factory, clock, "mch_B", payment.id)


def test_expiry_closes_created_payments_past_their_time_in_batches_and_spares_the_rest(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    due = [create_payment(uow_factory, clock, ids, pay_request(merchant_id, f"due-{n}")).payment for n in range(5)]
    in_flight = create_payment(uow_factory, clock, ids, pay_request(merchant_id, "paying")).payment
    start_attempt(uow_factory, clock, ids, in_flight.id, channel="hbb.online_banking", bank="HBB")
    later = create_payment(
        uow_factory, clock, ids, pay_request(merchant_id, "later", expires_at=clock.now() + timedelta(hours=2))
    ).payment

    assert expire_payments(uow_factory, clock.now() + timedelta(minutes=29)) == 0
    clock.advance(timedelta(minutes=30))
    assert expire_payments(uow_factory, clock.now(), batch_size=2, max_batches=1) == 2
    assert expire_payments(uow_factory, clock.now(), batch_size=2) == 3
    assert expire_payments(uow_factory, clock.now(), batch_size=2) == 0

    statuses = {p.id: p.status for p in list_payments(uow_factory, merchant_id).payments}
    assert all(statuses[p.id] is PaymentStatus.CLOSED for p in due)
    assert statuses[in_flight.id] is PaymentStatus.PROCESSING
    assert statuses[later.id] is PaymentStatus.CREATED
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.closed"] * 5
    assert transitions_of(uow_factory, due[0].id)[-1].event == "expired"


def test_no_attempt_starts_on_an_expired_payment(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    clock.advance(timedelta(minutes=30))
    with pytest.raises(PaymentExpired):
        start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")


# ---- bank answers -----------------------------------------------------------------------------------


def test_a_succeeded_attempt_pays_the_merchant_less_the_exact_fee_and_tells_it(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    # 0.60 % of ¥123.45 is 74.07 fen: rounded half up to 74.
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id, amount=CNY(12_345))).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    record_attempt_pending(uow_factory, clock, payment.id, attempt.id, bank_reference="HBB-1")
    clock.advance(timedelta(seconds=5))

    result = record_attempt_succeeded(
        uow_factory, clock, payment.id, attempt.id, bank_reference="HBB-1", amount=CNY(12_345)
    )
    assert result.outcome is Recorded.RECORDED
    assert result.payment.status is PaymentStatus.SUCCEEDED
    assert result.payment.fee_amount == CNY(74)
    assert result.payment.succeeded_attempt_id == attempt.id
    assert result.attempt.status is AttemptStatus.SUCCEEDED
    assert balances(uow_factory, "bank:HBB:reserve", "merchant:mch_A:pending", "platform:fee_income") == {
        "bank:HBB:reserve": 12_345,
        "merchant:mch_A:pending": 12_345 - 74,
        "platform:fee_income": 74,
    }
    [event] = events_of(uow_factory, merchant_id)
    assert event.type == "payment.succeeded"
    assert event.data["status"] == "succeeded"
    assert event.data["fee_amount"] == 74
    stored = get_payment(uow_factory, merchant_id, payment.id)
    assert stored.payment == result.payment
    assert [a.status for a in stored.attempts] == [AttemptStatus.SUCCEEDED]
    steps = [(t.attempt_id is None, t.from_status, t.to_status) for t in transitions_of(uow_factory, payment.id)]
    assert steps == [
        (True, None, "created"),
        (True, "created", "processing"),
        (False, None, "created"),
        (False, "created", "processing"),
        (False, "processing", "succeeded"),
        (True, "processing", "succeeded"),
    ]
    assert_ledger_sound(uow_factory)


def test_the_fee_plan_minimum_applies(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    # Online banking costs 0.50 % but at least ¥1.00: 0.50 % of ¥50.00 is 25 fen, so 100 it is.
    request = pay_request(merchant_id, method=PaymentMethod.ONLINE_BANKING, bank="JHB", amount=CNY(5_000))
    payment = create_payment(uow_factory, clock, ids, request).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="jhb.online_banking", bank="JHB")
    result = succeed(uow_factory, clock, attempt, "J1")
    assert result.payment.fee_amount == CNY(100)
    assert balances(uow_factory, "merchant:mch_A:pending") == {"merchant:mch_A:pending": 4_900}
    assert_ledger_sound(uow_factory)


def test_replaying_a_success_is_a_no_op(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    first = succeed(uow_factory, clock, attempt, "R1")
    again = succeed(uow_factory, clock, attempt, "R1")
    assert again.outcome is Recorded.REPLAYED
    assert again.payment == first.payment
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.succeeded"]
    assert balances(uow_factory, "bank:HBB:reserve") == {"bank:HBB:reserve": 10_000}
    with pytest.raises(Conflict):
        succeed(uow_factory, clock, attempt, "R2")
    assert_ledger_sound(uow_factory)


def test_concurrent_duplicate_notifications_record_one_success(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    outcomes: list[Recorded] = []
    lock = threading.Lock()

    def notify() -> None:
        result = succeed(uow_factory, clock, attempt, "R1")
        with lock:
            outcomes.append(result.outcome)

    threads = [threading.Thread(target=notify) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.value for o in outcomes) == ["recorded"] + ["replayed"] * 7
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.succeeded"]
    assert_ledger_sound(uow_factory)


def test_an_amount_mismatch_is_rejected_and_records_nothing(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    with pytest.raises(AmountMismatch):
        record_attempt_succeeded(uow_factory, clock, payment.id, attempt.id, bank_reference="R1", amount=CNY(1))
    detail = get_payment(uow_factory, merchant_id, payment.id)
    assert detail.payment.status is PaymentStatus.PROCESSING
    assert [a.status for a in detail.attempts] == [AttemptStatus.CREATED]
    assert events_of(uow_factory, merchant_id) == []
    with uow_factory() as uow:
        assert uow.ledger.stats() == (0, 0, 0)


def test_an_attempt_of_another_payment_is_not_found(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    one = create_payment(uow_factory, clock, ids, pay_request(merchant_id, "one")).payment
    two = create_payment(uow_factory, clock, ids, pay_request(merchant_id, "two")).payment
    attempt = start_attempt(uow_factory, clock, ids, one.id, channel="hbb.online_banking", bank="HBB")
    with pytest.raises(NotFound):
        record_attempt_succeeded(uow_factory, clock, two.id, attempt.id, bank_reference="R", amount=CNY(10_000))


def test_a_second_attempt_that_succeeds_late_is_recorded_and_put_aside_for_refund(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    # The payer leaves HBB's page unpaid, pays at JHB, then goes back and pays at HBB as well.
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    at_hbb = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    at_jhb = start_attempt(uow_factory, clock, ids, payment.id, channel="jhb.online_banking", bank="JHB")
    won = succeed(uow_factory, clock, at_jhb, "J1")
    late = succeed(uow_factory, clock, at_hbb, "H1")

    assert late.outcome is Recorded.LATE_SUCCESS
    assert late.payment == won.payment
    assert late.payment.succeeded_attempt_id == at_jhb.id
    assert late.attempt.status is AttemptStatus.SUCCEEDED
    [refund] = late_success_refunds_of(uow_factory, payment.id)
    assert (refund.attempt_id, refund.bank, refund.amount, refund.status) == (at_hbb.id, "HBB", CNY(10_000), "pending")
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.succeeded"]
    codes = ("bank:HBB:reserve", "bank:JHB:reserve", "platform:suspense", "merchant:mch_A:pending")
    assert balances(uow_factory, *codes) == {
        "bank:HBB:reserve": 10_000,
        "bank:JHB:reserve": 10_000,
        "platform:suspense": -10_000,
        "merchant:mch_A:pending": 10_000 - 60,
    }
    again = succeed(uow_factory, clock, at_hbb, "H1")
    assert again.outcome is Recorded.REPLAYED
    assert len(late_success_refunds_of(uow_factory, payment.id)) == 1
    assert_ledger_sound(uow_factory)


def test_a_failed_attempt_reopens_a_cashier_payment_for_another_bank(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    first = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    result = record_attempt_failed(
        uow_factory, clock, payment.id, first.id, failure_code="insufficient_funds", failure_message="余额不足"
    )
    assert result.payment.status is PaymentStatus.CREATED
    assert result.attempt.failure_code == "insufficient_funds"
    replay = record_attempt_failed(uow_factory, clock, payment.id, first.id, failure_code="insufficient_funds")
    assert replay.outcome is Recorded.REPLAYED
    second = start_attempt(uow_factory, clock, ids, payment.id, channel="jhb.online_banking", bank="JHB")
    paid = succeed(uow_factory, clock, second, "J")
    assert paid.payment.status is PaymentStatus.SUCCEEDED
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.succeeded"]
    assert_ledger_sound(uow_factory)


def test_a_failure_keeps_the_payment_processing_while_another_attempt_is_in_flight(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    first = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    second = start_attempt(uow_factory, clock, ids, payment.id, channel="jhb.online_banking", bank="JHB")
    record_attempt_unknown(uow_factory, clock, payment.id, second.id, cause="timed out after 10 s")
    result = record_attempt_failed(uow_factory, clock, payment.id, first.id, failure_code="declined")
    assert result.payment.status is PaymentStatus.PROCESSING
    assert get_payment(uow_factory, merchant_id, payment.id).attempts[1].status is AttemptStatus.UNKNOWN


def test_the_last_failure_of_a_quick_payment_fails_it_and_tells_the_merchant(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id, method=PaymentMethod.QUICK_PAY)).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="jhb.quick_pay", bank="JHB")
    result = record_attempt_failed(uow_factory, clock, payment.id, attempt.id, failure_code="card_frozen")
    assert result.payment.status is PaymentStatus.FAILED
    [event] = events_of(uow_factory, merchant_id)
    assert (event.type, event.data["status"]) == ("payment.failed", "failed")
    with pytest.raises(IllegalTransition):
        start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.quick_pay", bank="HBB")


def test_a_router_failing_over_keeps_a_quick_payment_open_for_the_next_channel(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id, method=PaymentMethod.QUICK_PAY)).payment
    first = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.quick_pay", bank="HBB")
    result = record_attempt_failed(
        uow_factory, clock, payment.id, first.id, failure_code="not_submitted", retry_expected=True
    )
    assert result.payment.status is PaymentStatus.CREATED
    second = start_attempt(uow_factory, clock, ids, payment.id, channel="jhb.quick_pay", bank="JHB")
    assert second.status is AttemptStatus.CREATED


def test_a_payment_whose_last_attempt_fails_after_its_expiry_is_closed_at_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    clock.advance(timedelta(hours=1))
    assert expire_payments(uow_factory, clock.now()) == 0
    result = record_attempt_failed(uow_factory, clock, payment.id, attempt.id, failure_code="payer_abandoned")
    assert result.payment.status is PaymentStatus.CLOSED
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.closed"]
    assert [t.event for t in transitions_of(uow_factory, payment.id) if t.attempt_id is None][-2:] == [
        "reopened",
        "expired",
    ]


def test_a_success_that_arrives_after_expiry_still_pays_the_merchant(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    # The payer's bank took the money in time; its notification came late. Money moved: honour it.
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    clock.advance(timedelta(hours=1))
    expire_payments(uow_factory, clock.now())
    result = succeed(uow_factory, clock, attempt, "R")
    assert result.payment.status is PaymentStatus.SUCCEEDED
    assert_ledger_sound(uow_factory)


def test_late_or_repeated_pending_and_unknown_answers_change_nothing(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant_id: str
) -> None:
    payment = create_payment(uow_factory, clock, ids, pay_request(merchant_id)).payment
    attempt = start_attempt(uow_factory, clock, ids, payment.id, channel="hbb.online_banking", bank="HBB")
    assert unknown(uow_factory, clock, attempt) is AttemptStatus.UNKNOWN
    assert unknown(uow_factory, clock, attempt) is AttemptStatus.UNKNOWN
    assert record_attempt_pending(uow_factory, clock, payment.id, attempt.id).status is AttemptStatus.PROCESSING
    assert unknown(uow_factory, clock, attempt) is AttemptStatus.PROCESSING
    succeed(uow_factory, clock, attempt, "R")
    assert record_attempt_pending(uow_factory, clock, payment.id, attempt.id).status is AttemptStatus.SUCCEEDED
    with pytest.raises(IllegalTransition):
        record_attempt_failed(uow_factory, clock, payment.id, attempt.id, failure_code="declined")
    assert_ledger_sound(uow_factory)
