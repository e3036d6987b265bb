"""The payment and attempt lifecycles: every state × event pair, and the creation rules."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tianpay.domain.errors import IllegalTransition
from tianpay.domain.money import Money
from tianpay.domain.payment import (
    ATTEMPT_TRANSITIONS,
    TRANSITIONS,
    AmountMismatch,
    AttemptEvent,
    AttemptStatus,
    BankNotApplicable,
    BankRequired,
    InvalidAmount,
    InvalidBank,
    InvalidExpiry,
    InvalidMetadata,
    InvalidOutTradeNo,
    InvalidPayment,
    InvalidSubject,
    InvalidUrl,
    Payment,
    PaymentAttempt,
    PaymentEvent,
    PaymentExpired,
    PaymentMethod,
    PaymentRequest,
    PaymentStatus,
    UnsupportedCurrency,
    check_attempt_allowed,
    event_after_failure,
    new_payment,
    next_attempt_state,
    next_state,
)

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)

# The whole table, written out again by hand: a change to the lifecycle must change this test too.
EXPECTED_PAYMENT = {
    (PaymentStatus.CREATED, PaymentEvent.ATTEMPT_STARTED): PaymentStatus.PROCESSING,
    (PaymentStatus.CREATED, PaymentEvent.CLOSED_BY_MERCHANT): PaymentStatus.CLOSED,
    (PaymentStatus.CREATED, PaymentEvent.EXPIRED): PaymentStatus.CLOSED,
    (PaymentStatus.PROCESSING, PaymentEvent.ATTEMPT_STARTED): PaymentStatus.PROCESSING,
    (PaymentStatus.PROCESSING, PaymentEvent.ATTEMPT_SUCCEEDED): PaymentStatus.SUCCEEDED,
    (PaymentStatus.PROCESSING, PaymentEvent.REOPENED): PaymentStatus.CREATED,
    (PaymentStatus.PROCESSING, PaymentEvent.ATTEMPTS_EXHAUSTED): PaymentStatus.FAILED,
}

EXPECTED_ATTEMPT = {
    (AttemptStatus.CREATED, AttemptEvent.PENDING): AttemptStatus.PROCESSING,
    (AttemptStatus.CREATED, AttemptEvent.UNKNOWN): AttemptStatus.UNKNOWN,
    (AttemptStatus.CREATED, AttemptEvent.SUCCEEDED): AttemptStatus.SUCCEEDED,
    (AttemptStatus.CREATED, AttemptEvent.FAILED): AttemptStatus.FAILED,
    (AttemptStatus.PROCESSING, AttemptEvent.SUCCEEDED): AttemptStatus.SUCCEEDED,
    (AttemptStatus.PROCESSING, AttemptEvent.FAILED): AttemptStatus.FAILED,
    (AttemptStatus.UNKNOWN, AttemptEvent.PENDING): AttemptStatus.PROCESSING,
    (AttemptStatus.UNKNOWN, AttemptEvent.SUCCEEDED): AttemptStatus.SUCCEEDED,
    (AttemptStatus.UNKNOWN, AttemptEvent.FAILED): AttemptStatus.FAILED,
}


@pytest.mark.parametrize(("status", "event"), list(itertools.product(PaymentStatus, PaymentEvent)))
def test_every_payment_state_and_event_pair_follows_the_table(status: PaymentStatus, event: PaymentEvent) -> None:
    expected = EXPECTED_PAYMENT.get((status, event))
    if expected is None:
        with pytest.raises(IllegalTransition):
            next_state(status, event)
    else:
        assert next_state(status, event) is expected


@pytest.mark.parametrize(("status", "event"), list(itertools.product(AttemptStatus, AttemptEvent)))
def test_every_attempt_state_and_event_pair_follows_the_table(status: AttemptStatus, event: AttemptEvent) -> None:
    expected = EXPECTED_ATTEMPT.get((status, event))
    if expected is None:
        with pytest.raises(IllegalTransition):
            next_attempt_state(status, event)
    else:
        assert next_attempt_state(status, event) is expected


def test_the_tables_hold_exactly_the_expected_rows() -> None:
    assert dict(TRANSITIONS) == EXPECTED_PAYMENT
    assert dict(ATTEMPT_TRANSITIONS) == EXPECTED_ATTEMPT


def render(table: Mapping[tuple[enum.Enum, enum.Enum], enum.Enum]) -> str:
    """A transition table as the markdown docs/lifecycles.md and docs/payments.md show it."""
    rows = ["| from | event | to |", "|---|---|---|"]
    rows += [f"| `{state.value}` | `{event.value}` | `{to.value}` |" for (state, event), to in table.items()]
    return "\n".join(rows)


def between(text: str, marker: str) -> str:
    start, end = f"<!-- {marker}:start -->\n", f"\n<!-- {marker}:end -->"
    return text[text.index(start) + len(start) : text.index(end)]


def test_the_docs_render_the_tables() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    for name in ("lifecycles.md", "payments.md"):
        text = (docs / name).read_text(encoding="utf-8")
        assert between(text, "payment-transitions") == render(TRANSITIONS), render(TRANSITIONS)
        assert between(text, "attempt-transitions") == render(ATTEMPT_TRANSITIONS), render(ATTEMPT_TRANSITIONS)


def test_final_payment_states_take_no_event() -> None:
    for status in PaymentStatus:
        if status.is_final:
            assert not [event for (s, event) in TRANSITIONS if s is status]


def test_final_attempt_states_take_no_event() -> None:
    for status in AttemptStatus:
        if not status.is_in_flight:
            assert not [event for (s, event) in ATTEMPT_TRANSITIONS if s is status]


def test_a_payment_with_an_attempt_in_flight_cannot_be_closed_or_expire() -> None:
    for event in (PaymentEvent.CLOSED_BY_MERCHANT, PaymentEvent.EXPIRED):
        with pytest.raises(IllegalTransition):
            next_state(PaymentStatus.PROCESSING, event)


# ---- creation rules ---------------------------------------------------------------------------------


def request(**overrides: object) -> PaymentRequest:
    fields: dict[str, object] = {
        "merchant_id": "mch_A",
        "out_trade_no": "order-1",
        "amount": Money.cny(10_000),
        "method": PaymentMethod.CASHIER,
        "subject": "一杯咖啡",
    }
    fields.update(overrides)
    return PaymentRequest(**fields)  # type: ignore[arg-type]


def test_a_valid_request_creates_a_payment_in_created_that_expires_in_thirty_minutes() -> None:
    payment = new_payment(request(metadata={"b": "2", "a": "1"}), payment_id="pay_1", now=NOW)
    assert payment.status is PaymentStatus.CREATED
    assert payment.expires_at == NOW + timedelta(minutes=30)
    assert payment.fee_amount == Money.cny(0)
    assert payment.refunded_amount == Money.cny(0)
    assert list(payment.metadata) == ["a", "b"]


@pytest.mark.parametrize(
    ("overrides", "error", "param"),
    [
        ({"amount": Money.cny(0)}, InvalidAmount, "amount"),
        ({"amount": Money.cny(-1)}, InvalidAmount, "amount"),
        ({"amount": Money.cny(10**12 + 1)}, InvalidAmount, "amount"),
        ({"out_trade_no": ""}, InvalidOutTradeNo, "out_trade_no"),
        ({"out_trade_no": "x" * 65}, InvalidOutTradeNo, "out_trade_no"),
        ({"out_trade_no": "order 1"}, InvalidOutTradeNo, "out_trade_no"),
        ({"out_trade_no": "订单1"}, InvalidOutTradeNo, "out_trade_no"),
        ({"subject": ""}, InvalidSubject, "subject"),
        ({"subject": "   "}, InvalidSubject, "subject"),
        ({"subject": "x" * 129}, InvalidSubject, "subject"),
        ({"notify_url": "ftp://shop.example/notify"}, InvalidUrl, "notify_url"),
        ({"return_url": "javascript:alert(1)"}, InvalidUrl, "return_url"),
        ({"notify_url": "https://"}, InvalidUrl, "notify_url"),
        ({"expires_at": NOW + timedelta(seconds=59)}, InvalidExpiry, "expires_at"),
        ({"expires_at": NOW + timedelta(days=7, seconds=1)}, InvalidExpiry, "expires_at"),
        ({"expires_at": NOW - timedelta(minutes=5)}, InvalidExpiry, "expires_at"),
        ({"method": PaymentMethod.ONLINE_BANKING}, BankRequired, "bank"),
        ({"bank": "HBB"}, BankNotApplicable, "bank"),
        ({"method": PaymentMethod.ONLINE_BANKING, "bank": "hbb"}, InvalidBank, "bank"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, InvalidMetadata, "metadata"),
        ({"metadata": {"k": "v" * 501}}, InvalidMetadata, "metadata[k]"),
        ({"metadata": {"k" * 41: "v"}}, InvalidMetadata, f"metadata[{'k' * 41}]"),
        ({"metadata": {"k": 1}}, InvalidMetadata, "metadata[k]"),
    ],
)
def test_each_creation_rule_has_its_named_error(
    overrides: dict[str, object], error: type[InvalidPayment], param: str
) -> None:
    with pytest.raises(error) as raised:
        new_payment(request(**overrides), payment_id="pay_1", now=NOW)
    assert raised.value.param == param


def test_the_bounds_themselves_are_accepted() -> None:
    for overrides in (
        {"amount": Money.cny(1)},
        {"amount": Money.cny(10**12)},
        {"out_trade_no": "A" * 64},
        {"out_trade_no": "a_b-C9"},
        {"subject": "x" * 128},
        {"expires_at": NOW + timedelta(minutes=1)},
        {"expires_at": NOW + timedelta(days=7)},
        {"method": PaymentMethod.ONLINE_BANKING, "bank": "HBB"},
        {"notify_url": "http://shop.example/notify", "return_url": "https://shop.example/done"},
    ):
        new_payment(request(**overrides), payment_id="pay_1", now=NOW)


def test_a_currency_other_than_cny_is_refused() -> None:
    fake = Money.__new__(Money)
    object.__setattr__(fake, "minor", 100)
    object.__setattr__(fake, "currency", _OtherCurrency())
    with pytest.raises(UnsupportedCurrency):
        new_payment(request(amount=fake), payment_id="pay_1", now=NOW)


class _OtherCurrency:
    """Stands in for a currency the platform does not book (only CNY exists in the enum today)."""

    code = "USD"
    exponent = 2


def test_the_fingerprint_is_the_same_for_equal_requests_and_differs_for_any_change() -> None:
    base = request(metadata={"a": "1", "b": "2"})
    assert base.fingerprint() == request(metadata={"b": "2", "a": "1"}).fingerprint()
    for changed in (
        request(amount=Money.cny(10_001)),
        request(subject="两杯咖啡"),
        request(metadata={"a": "1"}),
        request(expires_at=NOW + timedelta(minutes=30)),
        request(method=PaymentMethod.WALLET),
    ):
        assert changed.fingerprint() != base.fingerprint()


def test_the_same_expiry_in_another_time_zone_is_the_same_request() -> None:
    shanghai = timezone(timedelta(hours=8))
    in_utc = request(expires_at=NOW + timedelta(hours=1))
    assert request(expires_at=(NOW + timedelta(hours=1)).astimezone(shanghai)).fingerprint() == in_utc.fingerprint()


# ---- attempts ---------------------------------------------------------------------------------------


def payment(**overrides: object) -> Payment:
    made = new_payment(request(), payment_id="pay_1", now=NOW)
    from dataclasses import replace

    return replace(made, **overrides)  # type: ignore[arg-type]


def attempt(status: AttemptStatus, attempt_id: str = "att_1") -> PaymentAttempt:
    return PaymentAttempt(attempt_id, "pay_1", "hbb.online_banking", "HBB", status, Money.cny(10_000), NOW, NOW)


def test_no_attempt_starts_after_the_payment_expired() -> None:
    with pytest.raises(PaymentExpired):
        check_attempt_allowed(payment(), "HBB", NOW + timedelta(minutes=30))
    check_attempt_allowed(payment(), "HBB", NOW + timedelta(minutes=29, seconds=59))


def test_an_online_banking_payment_is_paid_at_the_bank_the_merchant_named() -> None:
    named = payment(method=PaymentMethod.ONLINE_BANKING, bank="HBB")
    with pytest.raises(InvalidBank):
        check_attempt_allowed(named, "JHB", NOW)
    check_attempt_allowed(named, "HBB", NOW)


def test_a_closed_payment_takes_no_attempt() -> None:
    with pytest.raises(IllegalTransition):
        check_attempt_allowed(payment(status=PaymentStatus.CLOSED), "HBB", NOW)


def test_a_failure_leaves_the_payment_processing_while_another_attempt_is_in_flight() -> None:
    processing = payment(status=PaymentStatus.PROCESSING)
    for in_flight in (AttemptStatus.CREATED, AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN):
        attempts = [attempt(AttemptStatus.FAILED), attempt(in_flight, "att_2")]
        assert event_after_failure(processing, attempts, retry_expected=False) is None


def test_the_last_failure_reopens_a_cashier_payment_and_fails_a_backend_one() -> None:
    failed = [attempt(AttemptStatus.FAILED)]
    cashier = payment(status=PaymentStatus.PROCESSING)
    quick = payment(status=PaymentStatus.PROCESSING, method=PaymentMethod.QUICK_PAY)
    assert event_after_failure(cashier, failed, retry_expected=False) is PaymentEvent.REOPENED
    assert event_after_failure(quick, failed, retry_expected=False) is PaymentEvent.ATTEMPTS_EXHAUSTED
    assert event_after_failure(quick, failed, retry_expected=True) is PaymentEvent.REOPENED


def test_a_failure_after_another_attempt_succeeded_changes_nothing() -> None:
    paid = payment(status=PaymentStatus.SUCCEEDED)
    assert event_after_failure(paid, [attempt(AttemptStatus.FAILED)], retry_expected=False) is None


def test_amount_mismatch_is_a_named_error() -> None:
    assert AmountMismatch("x").code == "amount_mismatch"
