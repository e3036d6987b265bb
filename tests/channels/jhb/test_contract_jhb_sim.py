"""The JHB adapter against the real JHB simulator over loopback HTTP (the channel contract suite).

Each test reads as the platform's story with JHB: onboard, `ebank.pay`, the payer on JHB's pages
(card 6227990000000000013, password `Passw0rd!`), the notification, queries, refunds, the magic
amounts of BANKS.md, forged notifications and a data-key rotation.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.channels.jhb.conftest import Platform, Receiver, World, connect, onboard_platform
from tianpay.channels.jhb import PaymentFormUnavailable, signing, wire
from tianpay.channels.jhb.channel import JhbChannel
from tianpay.channels.jhb.onboarding import (
    ONBOARDING_FILE,
    PRIVATE_KEY_FILE,
    channel_dir,
    load_onboarding,
    onboard,
    rotate_data_key,
)
from tianpay.domain.money import Money
from tianpay.ports.channels import InvalidNotification, OnlineBankingOrder, Outcome, RedirectForm, RefundOrder

pytestmark = pytest.mark.e2e

CARD_NO = "6227990000000000013"
PASSWORD = "Passw0rd!"


def _order(platform: Platform, amount_minor: int) -> OnlineBankingOrder:
    now = datetime.now(UTC)
    return OnlineBankingOrder(
        attempt_id=f"att_{secrets.token_hex(8)}",
        amount=Money.cny(amount_minor),
        subject="津门好物 茶叶礼盒",
        merchant_name="津门好物商城",
        created_at=now,
        expires_at=now + timedelta(minutes=30),
        notify_url=platform.notify_url,
        return_url="http://127.0.0.1:9/cashier/return",
    )


def _refund_order(platform: Platform, paid: OnlineBankingOrder, reference: str, amount_minor: int) -> RefundOrder:
    return RefundOrder(
        refund_id=f"ref_{secrets.token_hex(8)}",
        payment_attempt_id=paid.attempt_id,
        payment_bank_reference=reference,
        payment_created_at=paid.created_at,
        amount=Money.cny(amount_minor),
        created_at=datetime.now(UTC),
        notify_url=platform.notify_url,
    )


class _Form(HTMLParser):
    """The first form on a page: its action and every input that has a value."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.action:
            self.action = values.get("action", "")
        if tag == "input" and "value" in values:
            self.fields[values.get("name", "")] = values["value"]


def _form_on(page: httpx.Response) -> _Form:
    parser = _Form()
    parser.feed(page.text)
    assert parser.action, page.text
    return parser


def pay_on_jhbs_pages(form: RedirectForm, card_no: str = CARD_NO) -> httpx.Response:
    """Plays the payer's browser: submit the GET form, log in, confirm; returns the last answer."""
    assert form.method == "GET"
    with httpx.Client(timeout=10.0, follow_redirects=False) as browser:
        login_page = browser.get(form.url, params=dict(form.fields))
        assert login_page.status_code == 200, login_page.text
        login = _form_on(login_page)
        logged_in = browser.post(
            str(login_page.url.join(login.action)),
            data={**login.fields, "card_no": card_no, "password": PASSWORD},
        )
        assert logged_in.status_code == 303, logged_in.text
        confirm_page = browser.get(str(logged_in.url.join(logged_in.headers["location"])))
        assert confirm_page.status_code == 200, confirm_page.text
        confirm = _form_on(confirm_page)
        return browser.post(str(confirm_page.url.join(confirm.action)), data=confirm.fields)


def paid(platform: Platform, receiver: Receiver, amount_minor: int = 10_000) -> tuple[OnlineBankingOrder, str]:
    """An attempt the payer has paid at JHB; returns it with JHB's trade number."""
    order = _order(platform, amount_minor)
    confirmed = pay_on_jhbs_pages(platform.channel.payment_form(order))
    assert confirmed.status_code == 303
    notification = receiver.wait_for(order.attempt_id).notification
    assert notification is not None
    assert notification.result.outcome is Outcome.SUCCEEDED
    assert notification.result.bank_reference is not None
    return order, notification.result.bank_reference


def _unavailable(channel: JhbChannel, order: OnlineBankingOrder) -> PaymentFormUnavailable:
    with pytest.raises(PaymentFormUnavailable) as caught:
        channel.payment_form(order)
    return caught.value


def _later(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


# Onboarding


def test_onboarding_keeps_the_pack_and_keys_private_and_is_repeatable(platform: Platform, jhb_world: World) -> None:
    directory = channel_dir(platform.data_dir)
    for name in (ONBOARDING_FILE, PRIVATE_KEY_FILE):
        assert stat.S_IMODE(os.stat(directory / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    record = load_onboarding(platform.data_dir)
    assert record.partner_id.startswith("JHB")
    assert len(bytes.fromhex(record.data_keys[record.current_key_id])) == 16
    again = onboard(platform.data_dir, jhb_world.jhb_url)
    assert (again.partner_id, again.current_key_id) == (record.partner_id, record.current_key_id)


# Online banking and refunds


def test_a_paid_order_is_notified_queried_and_partly_refunded(platform: Platform, receiver: Receiver) -> None:
    order = _order(platform, 10_000)
    form = platform.channel.payment_form(order)
    assert form.method == "GET"
    assert "token" in form.fields

    confirmed = pay_on_jhbs_pages(form)
    assert confirmed.status_code == 303
    assert confirmed.headers["location"].startswith("http://127.0.0.1:9/cashier/return")

    received = receiver.wait_for(order.attempt_id)
    assert received.notification is not None
    notified = received.notification
    assert (notified.kind, notified.result.outcome, notified.result.amount) == (
        "payment",
        Outcome.SUCCEEDED,
        Money.cny(10_000),
    )
    queried = platform.channel.query_payment(order.attempt_id, order.created_at)
    assert (queried.outcome, queried.amount) == (Outcome.SUCCEEDED, Money.cny(10_000))
    reference = queried.bank_reference
    assert reference is not None
    assert reference == notified.result.bank_reference

    refund = _refund_order(platform, order, reference, 3_000)
    refunded = platform.channel.refund(refund)
    assert (refunded.outcome, refunded.amount) == (Outcome.SUCCEEDED, Money.cny(3_000))
    refund_query = platform.channel.query_refund(refund.refund_id, refund.created_at)
    assert (refund_query.outcome, refund_query.amount) == (Outcome.SUCCEEDED, Money.cny(3_000))
    assert refund_query.bank_reference == refunded.bank_reference is not None
    refund_notice = receiver.wait_for(refund.refund_id).notification
    assert refund_notice is not None
    assert (refund_notice.kind, refund_notice.result.outcome) == ("refund", Outcome.SUCCEEDED)

    too_much = platform.channel.refund(_refund_order(platform, order, reference, 7_001))
    assert (too_much.outcome, too_much.bank_code) == (Outcome.FAILED, "1021")


def test_an_unknown_attempt_is_unknown_until_old_enough_to_be_never_submitted(platform: Platform) -> None:
    created_at = datetime.now(UTC)
    assert platform.channel.query_payment("att_never_sent", created_at).outcome is Outcome.UNKNOWN
    aged = connect(platform.data_dir, httpx.Client(), clock=lambda: _later(31))
    assert aged.query_payment("att_never_sent", created_at).outcome is Outcome.NOT_SUBMITTED


# Magic amounts (BANKS.md)


def test_magic_51_declines_the_payment(platform: Platform, receiver: Receiver) -> None:
    order = _order(platform, 10_051)
    pay_on_jhbs_pages(platform.channel.payment_form(order))
    notified = receiver.wait_for(order.attempt_id).notification
    assert notified is not None
    assert (notified.result.outcome, notified.result.bank_code) == (Outcome.FAILED, "1051")
    queried = platform.channel.query_payment(order.attempt_id, order.created_at)
    assert (queried.outcome, queried.bank_code) == (Outcome.FAILED, "1051")


def test_magic_91_is_refused_before_processing(platform: Platform, receiver: Receiver) -> None:
    order = _order(platform, 10_091)
    error = _unavailable(platform.channel, order)
    assert (error.result.outcome, error.result.bank_code) == (Outcome.NOT_SUBMITTED, "1091")
    assert error.result.outcome.allows_failover

    payment, reference = paid(platform, receiver)
    refund = platform.channel.refund(_refund_order(platform, payment, reference, 91))
    assert (refund.outcome, refund.bank_code) == (Outcome.NOT_SUBMITTED, "1091")


def test_magic_94_is_pending_until_the_third_query(platform: Platform, receiver: Receiver) -> None:
    order = _order(platform, 10_094)
    pay_on_jhbs_pages(platform.channel.payment_form(order))
    outcomes = [platform.channel.query_payment(order.attempt_id, order.created_at).outcome for _ in range(3)]
    assert outcomes == [Outcome.PENDING, Outcome.PENDING, Outcome.SUCCEEDED]
    notified = receiver.wait_for(order.attempt_id).notification
    assert notified is not None
    assert notified.result.outcome is Outcome.SUCCEEDED


def test_magic_94_refund_is_pending_until_the_third_query(platform: Platform, receiver: Receiver) -> None:
    payment, reference = paid(platform, receiver)
    refund = _refund_order(platform, payment, reference, 94)
    assert platform.channel.refund(refund).outcome is Outcome.PENDING
    outcomes = [platform.channel.query_refund(refund.refund_id, refund.created_at).outcome for _ in range(3)]
    assert outcomes == [Outcome.PENDING, Outcome.PENDING, Outcome.SUCCEEDED]


def test_magic_96_refund_times_out_as_unknown_and_the_query_finds_it_succeeded(
    platform: Platform, receiver: Receiver
) -> None:
    payment, reference = paid(platform, receiver)
    refund = _refund_order(platform, payment, reference, 96)
    answered = platform.channel.refund(refund)
    assert answered.outcome is Outcome.UNKNOWN
    assert not answered.outcome.allows_failover
    queried = platform.channel.query_refund(refund.refund_id, refund.created_at)
    assert (queried.outcome, queried.amount) == (Outcome.SUCCEEDED, Money.cny(96))


def test_magic_96_ebank_pay_is_unknown_and_the_query_finds_the_order_waiting(platform: Platform) -> None:
    order = _order(platform, 10_096)
    assert _unavailable(platform.channel, order).result.outcome is Outcome.UNKNOWN
    assert platform.channel.query_payment(order.attempt_id, order.created_at).outcome is Outcome.PENDING


def test_magic_97_ebank_pay_is_unknown_and_never_submitted_once_old(platform: Platform) -> None:
    order = _order(platform, 10_097)
    assert _unavailable(platform.channel, order).result.outcome is Outcome.UNKNOWN
    assert platform.channel.query_payment(order.attempt_id, order.created_at).outcome is Outcome.UNKNOWN
    aged = connect(platform.data_dir, httpx.Client(), clock=lambda: _later(31))
    assert aged.query_payment(order.attempt_id, order.created_at).outcome is Outcome.NOT_SUBMITTED


def test_magic_51_refund_is_declined(platform: Platform, receiver: Receiver) -> None:
    payment, reference = paid(platform, receiver)
    refund = platform.channel.refund(_refund_order(platform, payment, reference, 51))
    assert (refund.outcome, refund.bank_code) == (Outcome.FAILED, "1051")


# Notifications


def test_a_forged_notification_is_invalid(platform: Platform, receiver: Receiver) -> None:
    order, _ = paid(platform, receiver)
    genuine = json.loads(receiver.wait_for(order.attempt_id).raw)
    channel = platform.channel
    assert channel.parse_notification(json.dumps(genuine).encode(), "application/json").platform_reference == (
        order.attempt_id
    )

    ciphertext = bytearray(base64.b64decode(genuine["body"]))
    ciphertext[0] ^= 0x01
    tampered_body = {**genuine, "body": base64.b64encode(bytes(ciphertext)).decode()}
    tampered_head = {**genuine, "head": {**genuine["head"], "req_no": "N-forged"}}
    record = load_onboarding(platform.data_dir)
    # Someone who stole the data key still cannot sign as JHB.
    head = wire.Head(**genuine["head"])
    notice = {"out_trade_no": order.attempt_id, "jhb_trade_no": "JHBX", "amount": "100.00", "status": "SUCCESS"}
    self_signed = signing.seal(
        head, notice, bytes.fromhex(record.data_keys[head.key_id]), signing.SigningKey.generate()
    ).to_dict()
    for forged in (tampered_body, tampered_head, self_signed):
        with pytest.raises(InvalidNotification):
            channel.parse_notification(json.dumps(forged).encode(), "application/json")


# Key rotation


def test_a_rotated_data_key_takes_over_without_losing_a_notification(
    jhb_world: World, receiver: Receiver, http: httpx.Client, tmp_path: Path
) -> None:
    before = onboard_platform(jhb_world, tmp_path / "rotating-platform", receiver, "rotation", http)
    old_key_id = load_onboarding(before.data_dir).current_key_id
    first = _order(before, 12_000)
    form = before.channel.payment_form(first)

    rotated = rotate_data_key(before.data_dir, grace_s=3600, http=http)
    assert rotated.current_key_id != old_key_id
    assert set(rotated.data_keys) == {old_key_id, rotated.current_key_id}
    after = connect(before.data_dir, http)
    receiver.channels["rotation"] = after

    # JHB seals with the key we last used, the old one; the new configuration still opens it.
    pay_on_jhbs_pages(form)
    first_notice = receiver.wait_for(first.attempt_id)
    assert json.loads(first_notice.raw)["head"]["key_id"] == old_key_id
    assert first_notice.notification is not None
    assert first_notice.notification.result.outcome is Outcome.SUCCEEDED

    # During the grace period the old key still works; then the new key is used and followed.
    assert before.channel.query_payment(first.attempt_id, first.created_at).outcome is Outcome.SUCCEEDED
    assert after.query_payment(first.attempt_id, first.created_at).outcome is Outcome.SUCCEEDED
    second = _order(before, 13_000)
    pay_on_jhbs_pages(after.payment_form(second))
    second_notice = receiver.wait_for(second.attempt_id)
    assert json.loads(second_notice.raw)["head"]["key_id"] == rotated.current_key_id

    # A rotation without grace retires the old keys at once: JHB cannot open them, and its unsigned
    # refusal proves nothing, so an adapter still on a retired key sees UNKNOWN, never FAILED.
    rotate_data_key(before.data_dir, grace_s=0, http=http)
    stale = after.query_payment(second.attempt_id, second.created_at)
    assert (stale.outcome, stale.bank_code) == (Outcome.UNKNOWN, "1002")
    fresh = connect(before.data_dir, http)
    assert fresh.query_payment(second.attempt_id, second.created_at).outcome is Outcome.SUCCEEDED
