"""The HBB adapter against HBB's simulator over loopback HTTP: onboarding, pages, notifications, magic amounts.

A real bank world runs in a subprocess (``python -m banksim serve``); the adapter onboards, builds
payment forms that a scripted payer takes through HBB's login and confirmation pages, receives and
verifies HBB's signed notifications, queries and refunds. Magic amounts follow BANKS.md.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.hbb import HbbChannel, build_hbb_channel, load_hbb_config, onboard_hbb, wire
from tianpay.channels.hbb.onboarding import hbb_directory
from tianpay.domain.money import Money
from tianpay.ports.channels import BankNotification, InvalidNotification, OnlineBankingOrder, Outcome, RefundOrder

from .contract_kit import Payer, Receiver, bank_world, read_page
from .kit import Authority, hbb_signed

pytestmark = pytest.mark.e2e

CHANNEL_TIMEOUT_S = 1.0
ids = UlidGenerator()


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hbb-contract")


@pytest.fixture(scope="module")
def hbb_url(world_dir: Path) -> Iterator[str]:
    with bank_world(world_dir) as urls:
        yield urls["HBB"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def platform_dir(world_dir: Path) -> Path:
    return world_dir / "tianpay"


@pytest.fixture(scope="module")
def channel(hbb_url: str, platform_dir: Path, receiver: Receiver) -> Iterator[HbbChannel]:
    config = onboard_hbb(platform_dir, hbb_url, timeout_s=CHANNEL_TIMEOUT_S)
    channel = build_hbb_channel(config)
    receiver.channel = channel
    yield channel
    channel.close()


@pytest.fixture
def payer(hbb_url: str) -> Iterator[Payer]:
    payer = Payer(hbb_url)
    yield payer
    payer.close()


def new_order(receiver: Receiver, amount_minor: int) -> OnlineBankingOrder:
    now = datetime.now(UTC)
    return OnlineBankingOrder(
        attempt_id=ids.new("att"),
        amount=Money.cny(amount_minor),
        subject="保温杯",
        merchant_name="津门好物商城",
        created_at=now,
        expires_at=now + timedelta(minutes=15),
        notify_url=receiver.url,
        return_url="http://127.0.0.1:9/cashier/return",
    )


def new_refund(receiver: Receiver, order: OnlineBankingOrder, bank_reference: str, amount_minor: int) -> RefundOrder:
    return RefundOrder(
        refund_id=ids.new("rfd"),
        payment_attempt_id=order.attempt_id,
        payment_bank_reference=bank_reference,
        payment_created_at=order.created_at,
        amount=Money.cny(amount_minor),
        created_at=datetime.now(UTC),
        notify_url=receiver.url,
    )


def order_id(platform_id: str) -> str:
    return platform_id.replace("_", "")


def notification_for(receiver: Receiver, channel: HbbChannel, platform_id: str, count: int = 1) -> BankNotification:
    body, content_type, _ = receiver.wait_for(order_id(platform_id), count=count)[-1]
    return channel.parse_notification(body, content_type)


@dataclass(frozen=True)
class Paid:
    order: OnlineBankingOrder
    notification_body: bytes
    bank_reference: str
    other_notification_body: bytes


@pytest.fixture(scope="module")
def paid(channel: HbbChannel, receiver: Receiver, hbb_url: str) -> Paid:
    """A ¥500.00 payment (and a ¥34.56 one) completed through HBB's pages, for refunds and forgeries."""
    order, other = new_order(receiver, 50000), new_order(receiver, 3456)
    payer = Payer(hbb_url)
    try:
        for each in (order, other):
            assert read_page(payer.pay(channel.payment_form(each))).codes == ["00"]
    finally:
        payer.close()
    body, _, _ = receiver.wait_for(order_id(order.attempt_id))[0]
    other_body, _, _ = receiver.wait_for(order_id(other.attempt_id))[0]
    result = channel.query_payment(order.attempt_id, order.created_at)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.bank_reference is not None
    return Paid(order, body, result.bank_reference, other_body)


# Onboarding


def test_onboarding_is_idempotent_and_keeps_the_key_private(
    channel: HbbChannel, hbb_url: str, platform_dir: Path
) -> None:
    first = load_hbb_config(platform_dir, timeout_s=CHANNEL_TIMEOUT_S)
    again = onboard_hbb(platform_dir, hbb_url, timeout_s=CHANNEL_TIMEOUT_S)
    assert first is not None
    assert again == first
    assert len(first.mer_id) == 15
    key_file = hbb_directory(platform_dir) / "signing_key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in (hbb_directory(platform_dir) / "onboarding.json").read_text()


# The happy path


def test_a_payment_is_notified_queried_and_partly_refunded(
    channel: HbbChannel, receiver: Receiver, payer: Payer
) -> None:
    order = new_order(receiver, 12345)
    result_page = read_page(payer.pay(channel.payment_form(order)))
    assert result_page.codes == ["00"]

    notice = notification_for(receiver, channel, order.attempt_id)
    assert (notice.kind, notice.platform_reference) == ("payment", order.attempt_id)
    assert notice.result.outcome is Outcome.SUCCEEDED
    assert notice.result.amount == order.amount
    assert notice.result.bank_reference is not None
    assert len(notice.result.bank_reference) == 21

    # The browser's return to frontUrl is signed like the notification and verifies the same way.
    returned = channel.parse_notification(wire.encode_form(result_page.hidden), wire.FORM_CONTENT_TYPE)
    assert returned.result.outcome is Outcome.SUCCEEDED

    queried = channel.query_payment(order.attempt_id, order.created_at)
    assert queried.outcome is Outcome.SUCCEEDED
    assert queried.bank_reference == notice.result.bank_reference
    assert queried.amount == order.amount

    refund = new_refund(receiver, order, queried.bank_reference, 2000)
    refunded = channel.refund(refund)
    assert refunded.outcome is Outcome.SUCCEEDED
    assert refunded.bank_reference not in (None, queried.bank_reference)
    assert refunded.amount == Money.cny(2000)

    refund_query = channel.query_refund(refund.refund_id, refund.created_at)
    assert (refund_query.outcome, refund_query.bank_reference) == (Outcome.SUCCEEDED, refunded.bank_reference)

    refund_notice = notification_for(receiver, channel, refund.refund_id)
    assert (refund_notice.kind, refund_notice.platform_reference) == ("refund", refund.refund_id)
    assert refund_notice.result.outcome is Outcome.SUCCEEDED

    too_much = channel.refund(new_refund(receiver, order, queried.bank_reference, 12345 - 2000 + 1))
    assert (too_much.outcome, too_much.bank_code) == (Outcome.FAILED, "36")


def test_a_notification_the_platform_refuses_is_sent_again(
    channel: HbbChannel, receiver: Receiver, payer: Payer
) -> None:
    order = new_order(receiver, 2345)
    receiver.refuse_once(order_id(order.attempt_id))
    payer.pay(channel.payment_form(order))
    deliveries = receiver.wait_for(order_id(order.attempt_id), count=2)
    assert [status for _, _, status in deliveries[:2]] == [500, 200]


# Magic amounts on online banking


def test_magic_51_is_declined_and_notified_as_failed(channel: HbbChannel, receiver: Receiver, payer: Payer) -> None:
    order = new_order(receiver, 1051)
    assert read_page(payer.pay(channel.payment_form(order))).codes == ["51"]
    notice = notification_for(receiver, channel, order.attempt_id)
    assert (notice.result.outcome, notice.result.bank_code) == (Outcome.FAILED, "51")
    queried = channel.query_payment(order.attempt_id, order.created_at)
    assert (queried.outcome, queried.bank_code) == (Outcome.FAILED, "51")


def test_magic_91_is_refused_before_processing(channel: HbbChannel, receiver: Receiver, payer: Payer) -> None:
    order = new_order(receiver, 1091)
    page = read_page(payer.open(channel.payment_form(order)))
    assert page.codes == ["91"]
    returned = channel.parse_notification(wire.encode_form(page.hidden), wire.FORM_CONTENT_TYPE)
    assert returned.result.outcome is Outcome.NOT_SUBMITTED
    # HBB recorded nothing, and "no such transaction" is never read as a failure.
    queried = channel.query_payment(order.attempt_id, order.created_at)
    assert (queried.outcome, queried.bank_code) == (Outcome.UNKNOWN, "34")


def test_magic_94_is_pending_for_two_queries_then_succeeds(
    channel: HbbChannel, receiver: Receiver, payer: Payer
) -> None:
    order = new_order(receiver, 1094)
    assert read_page(payer.pay(channel.payment_form(order))).codes == ["05"]
    outcomes = [channel.query_payment(order.attempt_id, order.created_at).outcome for _ in range(3)]
    assert outcomes == [Outcome.PENDING, Outcome.PENDING, Outcome.SUCCEEDED]
    assert notification_for(receiver, channel, order.attempt_id).result.outcome is Outcome.SUCCEEDED


def test_magic_96_pays_without_answering_the_payer_and_the_query_finds_it(
    channel: HbbChannel, receiver: Receiver, payer: Payer
) -> None:
    order = new_order(receiver, 1096)
    page = payer.login(payer.open(channel.payment_form(order)))
    with pytest.raises(httpx.TimeoutException):
        payer.confirm(page, timeout_s=1.0)
    assert notification_for(receiver, channel, order.attempt_id).result.outcome is Outcome.SUCCEEDED
    assert channel.query_payment(order.attempt_id, order.created_at).outcome is Outcome.SUCCEEDED


def test_magic_97_never_answers_and_the_query_cannot_tell(
    channel: HbbChannel, receiver: Receiver, payer: Payer
) -> None:
    order = new_order(receiver, 1097)
    with pytest.raises(httpx.TimeoutException):
        payer.open(channel.payment_form(order), timeout_s=1.0)
    queried = channel.query_payment(order.attempt_id, order.created_at)
    assert (queried.outcome, queried.bank_code) == (Outcome.UNKNOWN, "34")


def test_magic_98_is_never_notified_and_the_query_finds_it_paid(
    channel: HbbChannel, receiver: Receiver, payer: Payer
) -> None:
    order = new_order(receiver, 1098)
    assert read_page(payer.pay(channel.payment_form(order))).codes == ["00"]
    assert channel.query_payment(order.attempt_id, order.created_at).outcome is Outcome.SUCCEEDED
    time.sleep(0.5)
    assert not [d for d in receiver.deliveries if d[0].find(order_id(order.attempt_id).encode()) >= 0]


def test_magic_99_is_notified_twice_with_the_same_verified_result(
    channel: HbbChannel, receiver: Receiver, payer: Payer
) -> None:
    order = new_order(receiver, 1099)
    payer.pay(channel.payment_form(order))
    deliveries = receiver.wait_for(order_id(order.attempt_id), count=2)
    first, second = (channel.parse_notification(body, content_type) for body, content_type, _ in deliveries[:2])
    assert first == second
    assert first.result.outcome is Outcome.SUCCEEDED


# Magic amounts on refunds


def test_refund_magic_51_is_failed(channel: HbbChannel, receiver: Receiver, paid: Paid) -> None:
    result = channel.refund(new_refund(receiver, paid.order, paid.bank_reference, 151))
    assert (result.outcome, result.bank_code) == (Outcome.FAILED, "51")


def test_refund_magic_91_is_not_submitted(channel: HbbChannel, receiver: Receiver, paid: Paid) -> None:
    result = channel.refund(new_refund(receiver, paid.order, paid.bank_reference, 191))
    assert (result.outcome, result.bank_code) == (Outcome.NOT_SUBMITTED, "91")


def test_refund_magic_94_is_unknown_then_pending_twice_then_succeeds(
    channel: HbbChannel, receiver: Receiver, paid: Paid
) -> None:
    refund = new_refund(receiver, paid.order, paid.bank_reference, 194)
    answered = channel.refund(refund)
    assert (answered.outcome, answered.bank_code) == (Outcome.UNKNOWN, "05")
    outcomes = [channel.query_refund(refund.refund_id, refund.created_at).outcome for _ in range(3)]
    assert outcomes == [Outcome.PENDING, Outcome.PENDING, Outcome.SUCCEEDED]


def test_refund_magic_96_times_out_and_the_query_finds_it_done(
    channel: HbbChannel, receiver: Receiver, paid: Paid
) -> None:
    refund = new_refund(receiver, paid.order, paid.bank_reference, 196)
    assert channel.refund(refund).outcome is Outcome.UNKNOWN
    assert channel.query_refund(refund.refund_id, refund.created_at).outcome is Outcome.SUCCEEDED


def test_refund_magic_97_times_out_and_stays_unknown(channel: HbbChannel, receiver: Receiver, paid: Paid) -> None:
    refund = new_refund(receiver, paid.order, paid.bank_reference, 197)
    assert channel.refund(refund).outcome is Outcome.UNKNOWN
    queried = channel.query_refund(refund.refund_id, refund.created_at)
    assert (queried.outcome, queried.bank_code) == (Outcome.UNKNOWN, "34")


# Forged notifications


def _fields(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


def test_a_genuine_notification_from_the_bank_verifies(channel: HbbChannel, paid: Paid) -> None:
    notice = channel.parse_notification(paid.notification_body, wire.FORM_CONTENT_TYPE)
    assert notice.result.amount == Money.cny(50000)


@pytest.mark.parametrize(
    "forge",
    ["altered amount", "other order replayed", "signature of another notification", "foreign root", "unsigned"],
)
def test_a_forged_notification_raises_invalid_notification(channel: HbbChannel, paid: Paid, forge: str) -> None:
    genuine = _fields(paid.notification_body)
    other = _fields(paid.other_notification_body)
    if forge == "altered amount":
        forged = {**genuine, "txnAmt": "5000000"}
    elif forge == "other order replayed":
        forged = {**other, "orderId": genuine["orderId"]}
    elif forge == "signature of another notification":
        forged = {**genuine, "signature": other["signature"]}
    elif forge == "foreign root":
        key, cert = Authority.root("Huabei Bank Root CA").leaf("Huabei Bank Signing")
        unsigned = {k: v for k, v in genuine.items() if k not in ("signature", "certId", "signPubKeyCert")}
        forged = hbb_signed({**unsigned, "txnAmt": "5000000"}, key, cert)
    else:
        forged = {k: v for k, v in genuine.items() if k != "signature"}
    with pytest.raises(InvalidNotification):
        channel.parse_notification(wire.encode_form(forged), wire.FORM_CONTENT_TYPE)
