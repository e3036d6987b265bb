"""The gateway services against the real simulated banks, on SQLite and PostgreSQL.

Notifications here go to a closed port, so what the platform learns it learns by re-query (driven
with a settable clock) or from the signed form HBB posts back through the payer's browser. The
payer's browser is httpx on the banks' own pages.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from structlog.testing import capture_logs

from tests.gateway.conftest import (
    HBB_CARD,
    BankWorld,
    add_merchant,
    form_ending,
    gateway_settings_for,
    new_payment,
    pay_on_hbb_pages,
    resp_codes_on,
)
from tests.payments.conftest import assert_ledger_sound, events_of
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.alerts import AlertKind
from tianpay.domain.money import Money
from tianpay.domain.payment import AttemptStatus, PaymentAttempt, PaymentStatus
from tianpay.ports.channels import (
    BankNotification,
    ChannelResult,
    NotificationAck,
    OnlineBankingChannel,
    OnlineBankingOrder,
    Outcome,
    RedirectForm,
    RefundChannel,
)
from tianpay.ports.gateway import QuerySchedule
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.gateway import (
    Applied,
    BankRefused,
    GatewaySettings,
    handle_bank_notification,
    handle_front_return,
    open_alerts,
    pay_at_bank,
    requery_attempts,
    settle_absence,
)

pytestmark = pytest.mark.e2e

# Nothing listens on port 9 (discard): every notification is lost, as with a platform that is down.
SETTINGS = gateway_settings_for("http://127.0.0.1:9")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@pytest.fixture
def merchant_id(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> str:
    return add_merchant(uow_factory, clock, "mch_GW")


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, follow_redirects=True) as client:
        yield client


def attempts_of(uow_factory: UnitOfWorkFactory, payment_id: str) -> list[PaymentAttempt]:
    with uow_factory() as uow:
        return list(uow.payments.attempts_of(payment_id))


def status_of(uow_factory: UnitOfWorkFactory, payment_id: str) -> PaymentStatus:
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id)
    assert payment is not None
    return payment.status


def requery_later(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    *, after: timedelta = timedelta(hours=1), settings: GatewaySettings = SETTINGS,
) -> int:
    clock.advance(after)
    return requery_attempts(uow_factory, clock, ids, channels, settings, clock.now())


def fields_of(form: RedirectForm) -> tuple[str, dict[str, str]]:
    return form.url, dict(form.fields)


def back_form_body(result_page: httpx.Response) -> bytes:
    """The signed result HBB's page auto-posts to our frontUrl, as the browser would post it."""
    back = form_ending(result_page, "")
    return urlencode(back.fields).encode()


# ---- pay_at_bank ------------------------------------------------------------------------------------------


def test_an_hbb_form_is_signed_and_the_attempt_waits_at_the_bank(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, bank_world: BankWorld,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 12_345)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    (attempt,) = attempts_of(uow_factory, payment.id)
    assert form.method == "POST"
    assert form.url.startswith(bank_world.urls["HBB"])
    assert form.fields["txnAmt"] == "12345"
    assert form.fields["backUrl"] == "http://127.0.0.1:9/channels/HBB/notify"
    assert form.fields["frontUrl"] == f"http://127.0.0.1:9/cashier/{payment.id}/return/{attempt.id}"
    assert form.fields["signature"]
    assert (attempt.status, attempt.channel) == (AttemptStatus.PROCESSING, "hbb.online_banking")
    assert status_of(uow_factory, payment.id) is PaymentStatus.PROCESSING


def test_magic_91_at_jhb_fails_the_attempt_and_lets_the_payer_choose_again(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 10_091)
    with pytest.raises(BankRefused) as refused:
        pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "JHB")
    assert refused.value.may_try_another_bank
    (attempt,) = attempts_of(uow_factory, payment.id)
    assert (attempt.status, attempt.failure_code) == (AttemptStatus.FAILED, "1091")
    assert status_of(uow_factory, payment.id) is PaymentStatus.CREATED
    pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    assert [a.status for a in attempts_of(uow_factory, payment.id)] == [AttemptStatus.FAILED, AttemptStatus.PROCESSING]


def test_magic_96_at_jhb_leaves_the_attempt_unknown_until_a_query_finds_the_order(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 10_096)
    with pytest.raises(BankRefused) as refused:
        pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "JHB")
    assert not refused.value.may_try_another_bank
    assert [a.status for a in attempts_of(uow_factory, payment.id)] == [AttemptStatus.UNKNOWN]
    assert status_of(uow_factory, payment.id) is PaymentStatus.PROCESSING
    assert requery_later(uow_factory, clock, ids, channels) == 1
    # JHB has the order, waiting for a payer who never got its page: processing, not failed.
    assert [a.status for a in attempts_of(uow_factory, payment.id)] == [AttemptStatus.PROCESSING]


# ---- magic amounts at HBB, resolved by the front return or by re-query ---------------------------------


def test_magic_51_is_learned_from_the_signed_front_return_and_the_payer_may_retry(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, browser: httpx.Client,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 10_051)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    result_page = pay_on_hbb_pages(browser, fields_of(form))
    assert resp_codes_on(result_page) == ["51"]
    (attempt,) = attempts_of(uow_factory, payment.id)
    applied = handle_front_return(
        uow_factory, clock, ids, channels, payment.id, attempt.id, back_form_body(result_page), FORM_CONTENT_TYPE
    )
    assert applied is Applied.RECORDED
    (attempt,) = attempts_of(uow_factory, payment.id)
    assert (attempt.status, attempt.failure_code) == (AttemptStatus.FAILED, "51")
    assert status_of(uow_factory, payment.id) is PaymentStatus.CREATED
    assert events_of(uow_factory, merchant_id) == []
    pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    assert status_of(uow_factory, payment.id) is PaymentStatus.PROCESSING


def test_magic_91_at_hbb_is_learned_only_from_the_signed_front_return(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, browser: httpx.Client,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 10_091)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    refused_page = browser.post(form.url, data=dict(form.fields))
    assert resp_codes_on(refused_page) == ["91"]
    (attempt,) = attempts_of(uow_factory, payment.id)
    # A query finds nothing at HBB (34): an absence, so the attempt stays in flight.
    assert requery_later(uow_factory, clock, ids, channels, after=timedelta(minutes=2)) == 1
    assert attempts_of(uow_factory, payment.id)[0].status is AttemptStatus.PROCESSING
    handle_front_return(
        uow_factory, clock, ids, channels, payment.id, attempt.id, back_form_body(refused_page), FORM_CONTENT_TYPE
    )
    (attempt,) = attempts_of(uow_factory, payment.id)
    assert (attempt.status, attempt.failure_code) == (AttemptStatus.FAILED, "91")


def test_magic_94_succeeds_on_the_third_query(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, browser: httpx.Client,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 10_094)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    assert resp_codes_on(pay_on_hbb_pages(browser, fields_of(form))) == ["05"]
    seen = []
    for _ in range(3):
        assert requery_later(uow_factory, clock, ids, channels) == 1
        seen.append(attempts_of(uow_factory, payment.id)[0].status)
    assert seen == [AttemptStatus.PROCESSING, AttemptStatus.PROCESSING, AttemptStatus.SUCCEEDED]
    assert status_of(uow_factory, payment.id) is PaymentStatus.SUCCEEDED
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.succeeded"]
    # Succeeded attempts are no longer queried.
    assert requery_later(uow_factory, clock, ids, channels) == 0


def test_magic_96_moves_the_money_without_answering_and_the_requery_finds_it(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, browser: httpx.Client, bank_world: BankWorld,
) -> None:
    card_before = bank_world.balance("HBB", HBB_CARD)
    payment = new_payment(uow_factory, clock, ids, merchant_id, 10_096)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    with pytest.raises(httpx.TimeoutException):
        pay_on_hbb_pages(browser, fields_of(form), confirm_timeout_s=1.0)
    assert status_of(uow_factory, payment.id) is PaymentStatus.PROCESSING
    # Not due yet: the first query waits requery_first_after_s after the attempt began.
    assert requery_attempts(uow_factory, clock, ids, channels, SETTINGS, clock.now()) == 0
    assert requery_later(uow_factory, clock, ids, channels, after=timedelta(seconds=61)) == 1
    assert status_of(uow_factory, payment.id) is PaymentStatus.SUCCEEDED
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.succeeded"]
    assert bank_world.balance("HBB", HBB_CARD) == card_before - 10_096
    assert_ledger_sound(uow_factory)


def test_magic_98_is_never_notified_and_ends_succeeded_by_requery(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, browser: httpx.Client,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 10_098)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    assert resp_codes_on(pay_on_hbb_pages(browser, fields_of(form))) == ["00"]
    assert requery_later(uow_factory, clock, ids, channels) == 1
    (attempt,) = attempts_of(uow_factory, payment.id)
    assert attempt.status is AttemptStatus.SUCCEEDED
    assert attempt.bank_reference
    with uow_factory() as uow:
        paid = uow.payments.get(payment.id)
    assert paid is not None
    assert paid.fee_amount == Money.cny(61)
    assert_ledger_sound(uow_factory)


def test_magic_97_is_never_recorded_and_fails_only_after_expiry_and_the_margin(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, browser: httpx.Client,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 10_097)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    with pytest.raises(httpx.TimeoutException):
        browser.post(form.url, data=dict(form.fields), timeout=1.0)
    assert requery_later(uow_factory, clock, ids, channels, after=timedelta(seconds=61)) == 1
    assert attempts_of(uow_factory, payment.id)[0].status is AttemptStatus.PROCESSING
    # Past expiry but inside the margin: HBB's "no such order" is still only an absence.
    clock.set(payment.expires_at + timedelta(minutes=5))
    assert requery_attempts(uow_factory, clock, ids, channels, SETTINGS, clock.now()) == 1
    assert attempts_of(uow_factory, payment.id)[0].status is AttemptStatus.PROCESSING
    clock.set(payment.expires_at + timedelta(minutes=16))
    assert requery_attempts(uow_factory, clock, ids, channels, SETTINGS, clock.now()) == 1
    (attempt,) = attempts_of(uow_factory, payment.id)
    assert (attempt.status, attempt.failure_code) == (AttemptStatus.FAILED, "34")
    assert status_of(uow_factory, payment.id) is PaymentStatus.CLOSED
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.closed"]


# ---- notifications ------------------------------------------------------------------------------------------


def _paid_at_hbb(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, browser: httpx.Client, amount_minor: int,
) -> tuple[str, PaymentAttempt, bytes]:
    """A payment the payer paid at HBB whose outcome we have not heard; returns HBB's signed result."""
    payment = new_payment(uow_factory, clock, ids, merchant_id, amount_minor)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    result_page = pay_on_hbb_pages(browser, fields_of(form))
    (attempt,) = attempts_of(uow_factory, payment.id)
    return payment.id, attempt, back_form_body(result_page)


def _altered(body: bytes, **changes: str) -> bytes:
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    fields.update(changes)
    return urlencode(fields).encode()


def test_a_genuine_notification_is_applied_once_and_its_replays_change_nothing(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, browser: httpx.Client,
) -> None:
    payment_id, _, body = _paid_at_hbb(uow_factory, clock, ids, channels, merchant_id, browser, 20_000)
    for _ in range(3):
        ack = handle_bank_notification(uow_factory, clock, ids, channels, "HBB", body, FORM_CONTENT_TYPE)
        assert (ack.status_code, ack.body) == (200, b"ok")
    assert status_of(uow_factory, payment_id) is PaymentStatus.SUCCEEDED
    assert [e.type for e in events_of(uow_factory, merchant_id)] == ["payment.succeeded"]
    assert_ledger_sound(uow_factory)


@pytest.mark.parametrize("forgery", ["bad signature", "wrong certificate", "altered amount", "another order"])
def test_a_forged_hbb_notification_changes_nothing_and_is_logged(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str, browser: httpx.Client, onboarded_dir: object, forgery: str,
) -> None:
    payment_id, attempt, body = _paid_at_hbb(uow_factory, clock, ids, channels, merchant_id, browser, 30_000)
    other = new_payment(uow_factory, clock, ids, merchant_id, 30_000)
    pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, other.id, "HBB")
    (other_attempt,) = attempts_of(uow_factory, other.id)
    fields = dict(parse_qsl(body.decode()))
    if forgery == "bad signature":
        signature = base64.b64decode(fields["signature"])
        forged = _altered(body, signature=base64.b64encode(bytes([signature[0] ^ 1]) + signature[1:]).decode())
    elif forgery == "wrong certificate":
        own_cert = (onboarded_dir / "channels" / "hbb" / "signing_cert.pem").read_text()  # type: ignore[operator]
        forged = _altered(body, signPubKeyCert=own_cert)
    elif forgery == "altered amount":
        forged = _altered(body, txnAmt="1")
    else:
        forged = _altered(body, orderId=other_attempt.id.replace("_", ""))
    with capture_logs() as logs:
        ack = handle_bank_notification(uow_factory, clock, ids, channels, "HBB", forged, FORM_CONTENT_TYPE)
    assert ack.status_code != 200
    assert any(line["event"] == "gateway.notification_invalid" for line in logs)
    assert not any(fields["signature"] in json.dumps(line, default=str) for line in logs)
    assert status_of(uow_factory, payment_id) is PaymentStatus.PROCESSING
    assert status_of(uow_factory, other.id) is PaymentStatus.PROCESSING
    assert attempts_of(uow_factory, payment_id)[0].status is attempt.status
    assert events_of(uow_factory, merchant_id) == []


def test_a_forged_jhb_notification_changes_nothing(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
) -> None:
    forged = json.dumps({"head": {"version": "2.0", "partner_id": "x", "service": "ebank.pay.notify", "req_no": "1",
                                  "req_time": "20261127100000", "key_id": "k"}, "iv": "", "body": "", "sign": ""})
    ack = handle_bank_notification(uow_factory, clock, ids, channels, "JHB", forged.encode(), "application/json")
    assert ack.status_code == 500


class _MisreportingBank:
    """A verified-looking bank at the edge that reports another amount than the attempt's."""

    code = "HBB"

    def __init__(self, attempt_id: str, amount: Money) -> None:
        self._attempt_id = attempt_id
        self._amount = amount

    def payment_form(self, order: OnlineBankingOrder) -> RedirectForm:
        return RedirectForm("POST", "http://bank.invalid/pay", {})

    def query_payment(self, attempt_id: str, created_at: object) -> ChannelResult:
        return ChannelResult(Outcome.UNKNOWN)

    def parse_notification(self, body: bytes, content_type: str) -> BankNotification:
        result = ChannelResult(Outcome.SUCCEEDED, bank_reference="999", amount=self._amount, bank_code="00")
        return BankNotification("payment", self._attempt_id, result)

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return NotificationAck(200 if accepted else 500, b"ok" if accepted else b"fail", "text/plain")


class _OneBank:
    def __init__(self, channel: _MisreportingBank) -> None:
        self._channel = channel

    def online_banking(self, bank: str) -> OnlineBankingChannel:
        return self._channel  # type: ignore[return-value]

    def refunds(self, bank: str) -> RefundChannel:
        raise NotImplementedError

    def online_banking_banks(self) -> list[str]:
        return ["HBB"]


def test_an_amount_mismatch_is_refused_logged_and_raised_to_operators_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 40_000)
    pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    (attempt,) = attempts_of(uow_factory, payment.id)
    directory = _OneBank(_MisreportingBank(attempt.id, Money.cny(4_000)))
    with capture_logs() as logs:
        for _ in range(2):
            ack = handle_bank_notification(uow_factory, clock, ids, directory, "HBB", b"x", FORM_CONTENT_TYPE)
            assert ack.status_code == 500
    assert any(line["event"] == "gateway.amount_mismatch" and line["log_level"] == "error" for line in logs)
    alerts = [a for a in open_alerts(uow_factory) if a.subject_id == payment.id]
    assert [a.kind for a in alerts] == [AlertKind.AMOUNT_MISMATCH]
    assert alerts[0].details["expected"] == "400.00 CNY"
    assert alerts[0].details["reported"] == "40.00 CNY"
    assert status_of(uow_factory, payment.id) is PaymentStatus.PROCESSING
    assert events_of(uow_factory, merchant_id) == []


# ---- the re-query schedule ------------------------------------------------------------------------------


def test_two_workers_never_claim_the_same_query(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 50_000)
    pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    later = clock.now() + timedelta(minutes=2)
    with uow_factory() as first:
        (seen,) = first.attempt_queries.due_for_query(later, never_queried_before=later, limit=10)
        won = first.attempt_queries.claim(
            seen.attempt.id, expected_count=seen.query_count, next_query_at=later + timedelta(minutes=1), now=later
        )
        first.commit()
    # A second worker that read the row before the first claimed it: its compare-and-set loses.
    with uow_factory() as second:
        lost = second.attempt_queries.claim(
            seen.attempt.id, expected_count=seen.query_count, next_query_at=later + timedelta(minutes=1), now=later
        )
        second.commit()
        assert second.attempt_queries.due_for_query(later, never_queried_before=later, limit=10) == []
    assert (won, lost) == (True, False)


def test_the_query_schedule_doubles_up_to_the_cap() -> None:
    settings = GatewaySettings(base_url="http://x", requery_first_after_s=60, requery_max_interval_s=600)
    delays = [settings.query_delay(n).total_seconds() for n in range(1, 7)]
    assert delays == [60, 120, 240, 480, 600, 600]


def test_no_such_order_fails_an_attempt_only_after_the_expiry_and_margin(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    merchant_id: str,
) -> None:
    payment = new_payment(uow_factory, clock, ids, merchant_id, 50_000)
    pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    (attempt,) = attempts_of(uow_factory, payment.id)
    with uow_factory() as uow:
        schedule = uow.attempt_queries.schedule_of(attempt.id)
    assert isinstance(schedule, QuerySchedule)
    absent = ChannelResult(Outcome.UNKNOWN, bank_code="34")
    deadline = payment.expires_at + timedelta(seconds=SETTINGS.absent_order_margin_s)
    assert settle_absence(SETTINGS, schedule, absent, deadline - timedelta(seconds=1)) is absent
    assert settle_absence(SETTINGS, schedule, absent, deadline).outcome is Outcome.FAILED
    # A timeout (no bank code) or another bank's code never becomes a failure.
    assert settle_absence(SETTINGS, schedule, ChannelResult(Outcome.UNKNOWN), deadline).outcome is Outcome.UNKNOWN
    other_code = ChannelResult(Outcome.UNKNOWN, bank_code="1011")
    assert settle_absence(SETTINGS, schedule, other_code, deadline).outcome is Outcome.UNKNOWN
