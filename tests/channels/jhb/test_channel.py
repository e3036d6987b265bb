"""The JHB channel against a scripted JHB (httpx.MockTransport): what each kind of answer becomes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tianpay.channels.jhb import JhbConfig, PaymentFormUnavailable, build_jhb_channel, signing, wire
from tianpay.channels.jhb.channel import JhbChannel
from tianpay.channels.jhb.signing import SigningKey
from tianpay.domain.money import Money
from tianpay.ports.channels import (
    InvalidNotification,
    OnlineBankingChannel,
    OnlineBankingOrder,
    Outcome,
    RefundChannel,
    RefundOrder,
)

PARTNER_ID = "JHB00000001"
KEY_ID = "K202501020001"
DATA_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
PLATFORM_KEY = SigningKey.generate()
JHB_KEY = SigningKey.generate()

Script = Callable[[str, dict[str, Any]], "httpx.Response | dict[str, Any] | Exception"]


@dataclass
class FakeJhb:
    """Opens our requests as JHB would and answers what the test scripts."""

    script: Script
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answer_key: SigningKey = JHB_KEY
    req_no_override: str | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        service = request.url.path.removeprefix("/api/")
        envelope = wire.read_envelope(json.loads(request.content))
        body = signing.open_envelope(envelope, PLATFORM_KEY.public_key, {KEY_ID: DATA_KEY})
        assert envelope.head.service == service
        self.requests.append((service, body))
        scripted = self.script(service, body)
        if isinstance(scripted, Exception):
            raise scripted
        if isinstance(scripted, httpx.Response):
            return scripted
        head = dataclasses_replace(envelope.head, req_no=self.req_no_override or envelope.head.req_no)
        return httpx.Response(200, json=signing.seal(head, scripted, DATA_KEY, self.answer_key).to_dict())


def dataclasses_replace(head: wire.Head, **changes: str) -> wire.Head:
    return wire.Head(**{**head.to_dict(), **changes})


def _channel(fake: FakeJhb, clock: Callable[[], datetime] = lambda: NOW) -> JhbChannel:
    config = JhbConfig(
        base_url="http://jhb.test",
        partner_id=PARTNER_ID,
        platform_private_key=PLATFORM_KEY,
        jhb_public_key=JHB_KEY.public_key,
        data_keys={KEY_ID: DATA_KEY},
        current_key_id=KEY_ID,
        timeout_s=1.0,
    )
    return build_jhb_channel(config, http_client=httpx.Client(transport=httpx.MockTransport(fake.handle)), clock=clock)


def _order(amount_minor: int = 10_000) -> OnlineBankingOrder:
    return OnlineBankingOrder(
        attempt_id="att_1",
        amount=Money.cny(amount_minor),
        subject="茶叶礼盒",
        merchant_name="津门好物商城",
        created_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
        notify_url="http://platform.test/notify/jhb",
        return_url="http://platform.test/cashier/return",
    )


def _refund_order(amount_minor: int = 3000) -> RefundOrder:
    return RefundOrder("ref_1", "att_1", "JHB1", NOW, Money.cny(amount_minor), NOW, "http://platform.test/notify/jhb")


def _ebank_ok(service: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "ret_code": "0000",
        "ret_msg": "下单成功",
        "out_trade_no": body["out_trade_no"],
        "jhb_trade_no": "JHB1",
        "amount": body["amount"],
        "redirect_url": "http://jhb.test/ebank/pay?token=tok123",
        "expire_time": body["expire_time"],
    }


def test_the_channel_implements_both_ports() -> None:
    # mypy checks these assignments against the Protocols; at run time they document intent.
    online: OnlineBankingChannel = _channel(FakeJhb(_ebank_ok))
    refunds: RefundChannel = _channel(FakeJhb(_ebank_ok))
    assert online.code == refunds.code == "JHB"


def test_payment_form_calls_ebank_pay_once_and_returns_a_get_form() -> None:
    fake = FakeJhb(_ebank_ok)
    form = _channel(fake).payment_form(_order())
    assert (form.method, form.url, dict(form.fields)) == ("GET", "http://jhb.test/ebank/pay", {"token": "tok123"})
    assert fake.requests == [
        (
            "ebank.pay",
            {
                "out_trade_no": "att_1",
                "amount": "100.00",
                "subject": "茶叶礼盒",
                "notify_url": "http://platform.test/notify/jhb",
                "return_url": "http://platform.test/cashier/return",
                "expire_time": "20250102113405",
            },
        )
    ]


def _form_error(fake: FakeJhb) -> PaymentFormUnavailable:
    with pytest.raises(PaymentFormUnavailable) as caught:
        _channel(fake).payment_form(_order())
    return caught.value


def test_bank_unavailable_on_ebank_pay_is_not_submitted() -> None:
    error = _form_error(FakeJhb(lambda s, b: {"ret_code": "1091", "ret_msg": "银行系统暂不可用"}))
    assert (error.result.outcome, error.result.bank_code) == (Outcome.NOT_SUBMITTED, "1091")


def test_a_timeout_on_ebank_pay_is_unknown_and_never_resent() -> None:
    fake = FakeJhb(lambda s, b: httpx.ReadTimeout("slow"))
    assert _form_error(fake).result.outcome is Outcome.UNKNOWN
    assert len(fake.requests) == 1


def test_a_refused_connection_on_submission_is_not_submitted() -> None:
    assert _form_error(FakeJhb(lambda s, b: httpx.ConnectError("refused"))).result.outcome is Outcome.NOT_SUBMITTED
    refund = _channel(FakeJhb(lambda s, b: httpx.ConnectError("refused"))).refund(_refund_order())
    assert refund.outcome is Outcome.NOT_SUBMITTED


def test_a_refused_connection_on_query_is_unknown() -> None:
    result = _channel(FakeJhb(lambda s, b: httpx.ConnectError("refused"))).query_payment("att_1", NOW)
    assert result.outcome is Outcome.UNKNOWN


@pytest.mark.parametrize("status_code", [500, 502, 503, 504])
def test_a_5xx_on_refund_is_unknown(status_code: int) -> None:
    result = _channel(FakeJhb(lambda s, b: httpx.Response(status_code))).refund(_refund_order())
    assert result.outcome is Outcome.UNKNOWN


def test_an_unsigned_failure_proves_nothing() -> None:
    fake = FakeJhb(lambda s, b: httpx.Response(200, json={"ret_code": "1051", "ret_msg": "余额不足"}))
    result = _channel(fake).refund(_refund_order())
    assert (result.outcome, result.bank_code) == (Outcome.UNKNOWN, "1051")


def test_an_answer_signed_by_someone_else_is_unknown() -> None:
    refund_ok = {"ret_code": "0000", "out_refund_no": "ref_1", "amount": "30.00", "status": "SUCCESS"}
    fake = FakeJhb(lambda s, b: refund_ok, answer_key=SigningKey.generate())
    assert _channel(fake).refund(_refund_order()).outcome is Outcome.UNKNOWN


def test_a_replayed_answer_to_another_request_is_unknown() -> None:
    refund_ok = {"ret_code": "0000", "out_refund_no": "ref_1", "amount": "30.00", "status": "SUCCESS"}
    fake = FakeJhb(lambda s, b: refund_ok, req_no_override="someone-elses-request")
    assert _channel(fake).refund(_refund_order()).outcome is Outcome.UNKNOWN


def test_a_refund_succeeds_only_on_jhbs_signed_word() -> None:
    refund_ok = {
        "ret_code": "0000",
        "out_refund_no": "ref_1",
        "jhb_refund_no": "JHR1",
        "amount": "30.00",
        "status": "SUCCESS",
    }
    result = _channel(FakeJhb(lambda s, b: refund_ok)).refund(_refund_order())
    assert (result.outcome, result.amount, result.bank_reference) == (Outcome.SUCCEEDED, Money.cny(3000), "JHR1")


def test_query_not_found_turns_not_submitted_only_once_the_attempt_is_old() -> None:
    not_found = FakeJhb(lambda s, b: {"ret_code": "1011", "ret_msg": "订单不存在"})
    assert _channel(not_found).query_payment("att_1", NOW - timedelta(minutes=5)).outcome is Outcome.UNKNOWN
    assert _channel(not_found).query_payment("att_1", NOW - timedelta(minutes=31)).outcome is Outcome.NOT_SUBMITTED


# Notifications


def _notice(
    body: dict[str, Any], *, service: str = "ebank.pay.notify", key: SigningKey = JHB_KEY, **head: str
) -> bytes:
    fields = {
        "version": "2.0",
        "partner_id": PARTNER_ID,
        "service": service,
        "req_no": "NJHB1",
        "req_time": "20250102113405",
        "key_id": KEY_ID,
        **head,
    }
    return signing.seal(wire.Head(**fields), body, DATA_KEY, key).to_json_bytes()


PAID = {"out_trade_no": "att_1", "jhb_trade_no": "JHB1", "amount": "100.00", "status": "SUCCESS", "fail_code": ""}


def test_a_genuine_payment_notification_parses() -> None:
    notification = _channel(FakeJhb(_ebank_ok)).parse_notification(_notice(PAID), "application/json")
    assert (notification.kind, notification.platform_reference) == ("payment", "att_1")
    assert (notification.result.outcome, notification.result.amount) == (Outcome.SUCCEEDED, Money.cny(10_000))


def test_a_refund_notification_parses() -> None:
    refund = {
        "out_refund_no": "ref_1",
        "jhb_refund_no": "JHR1",
        "amount": "30.00",
        "status": "FAILED",
        "fail_code": "1051",
    }
    notification = _channel(FakeJhb(_ebank_ok)).parse_notification(_notice(refund, service="refund.notify"), "")
    assert (notification.kind, notification.result.outcome, notification.result.bank_code) == (
        "refund",
        Outcome.FAILED,
        "1051",
    )


@pytest.mark.parametrize(
    "forged",
    [
        _notice(PAID, key=SigningKey.generate()),
        _notice(PAID, partner_id="JHB00000002"),
        _notice(PAID, key_id="K-unknown"),
        _notice(PAID, service="ebank.pay.surprise"),
        _notice({"amount": "100.00", "status": "SUCCESS"}),
        b"ok",
        b"{}",
        "\u00ff".encode("latin-1"),
    ],
)
def test_anything_forged_or_malformed_is_an_invalid_notification(forged: bytes) -> None:
    with pytest.raises(InvalidNotification):
        _channel(FakeJhb(_ebank_ok)).parse_notification(forged, "application/json")


def test_a_tampered_amount_is_an_invalid_notification() -> None:
    genuine = json.loads(_notice(PAID))
    cheaper = json.loads(_notice({**PAID, "amount": "0.01"}))
    genuine["body"], genuine["iv"] = cheaper["body"], cheaper["iv"]
    with pytest.raises(InvalidNotification):
        _channel(FakeJhb(_ebank_ok)).parse_notification(json.dumps(genuine).encode(), "application/json")


def test_the_ack_is_what_jhb_waits_for() -> None:
    channel = _channel(FakeJhb(_ebank_ok))
    ack = channel.notification_ack(True)
    assert (ack.status_code, json.loads(ack.body)) == (200, {"ret_code": "0000"})
    assert channel.notification_ack(False).status_code != 200
