"""The channel's I/O rules on a fake transport: one submit, never retried; anything untrusted is UNKNOWN."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest

from tianpay.channels.hbb import HbbConfig, build_hbb_channel, wire
from tianpay.domain.money import Money
from tianpay.ports.channels import InvalidNotification, OnlineBankingOrder, Outcome, RefundOrder

from .conftest import ATTEMPT_ID, BASE_URL, MER_ID, QUERY_ID, REFUND_ID, ChannelFactory, HbbPki, Platform
from .kit import Authority, hbb_signed, pem, raw_answer, verify_platform_signature

CREATED_AT = datetime(2026, 11, 27, 2, 30, 0, tzinfo=UTC)
ORDER_ID = "att01JD3Q7W2M9X4N5P6R7S8T9V0A"
REFUND_ORDER_ID = "rfd01JD3Q8A1B2C3D4E5F6G7H8J9K"


class FakeHbb:
    """Answers like HBB: checks our signature, then returns a signed raw answer chosen by the test."""

    def __init__(self, hbb_pki: HbbPki, platform: Platform, answer: Mapping[str, str]) -> None:
        self.hbb_pki = hbb_pki
        self.platform = platform
        self.answer = answer
        self.requests: list[dict[str, str]] = []
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        fields = dict(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True))
        assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert verify_platform_signature(fields, self.platform.cert), "HBB would answer respCode 11"
        self.requests.append(fields)
        self.paths.append(request.url.path)
        echoed: dict[str, str] = {k: fields[k] for k in ("merId", "orderId", "txnTime", "txnType") if k in fields}
        body = hbb_signed({**echoed, **self.answer}, self.hbb_pki.signing_key, self.hbb_pki.signing_cert)
        return httpx.Response(200, content=raw_answer(body), headers={"content-type": "text/plain; charset=UTF-8"})


@pytest.fixture
def fake(hbb_pki: HbbPki, platform: Platform) -> FakeHbb:
    return FakeHbb(hbb_pki, platform, {"respCode": "00", "respMsg": "成功"})


# The payment form


def test_the_payment_form_posts_signed_acp_fields_to_front_trans_req(
    channel_with: ChannelFactory, order: OnlineBankingOrder, platform: Platform
) -> None:
    form = channel_with(lambda request: httpx.Response(500)).payment_form(order)
    assert form.method == "POST"
    assert form.url == f"{BASE_URL}/gateway/api/frontTransReq.do"
    fields = dict(form.fields)
    assert verify_platform_signature(fields, platform.cert)
    assert fields["certId"] == str(platform.cert.serial_number)
    assert (fields["txnType"], fields["txnSubType"], fields["bizType"]) == ("01", "01", "000201")
    assert (fields["channelType"], fields["accessType"], fields["currencyCode"]) == ("07", "0", "156")
    assert (fields["orderId"], fields["txnTime"], fields["payTimeout"]) == (
        ORDER_ID,
        "20261127103000",
        "20261127104500",
    )
    assert fields["txnAmt"] == "12345"
    assert (fields["frontUrl"], fields["backUrl"]) == (order.return_url, order.notify_url)


# Queries


def test_a_query_of_a_paid_attempt_succeeds_with_hbbs_query_id(channel_with: ChannelFactory, fake: FakeHbb) -> None:
    fake.answer = {
        "respCode": "00",
        "respMsg": "成功",
        "origRespCode": "00",
        "origRespMsg": "成功",
        "queryId": QUERY_ID,
        "txnAmt": "12345",
        "currencyCode": "156",
        "settleDate": "1127",
    }
    result = channel_with(fake).query_payment(ATTEMPT_ID, CREATED_AT)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.bank_reference == QUERY_ID
    assert result.amount == Money.cny(12345)
    assert fake.paths == ["/gateway/api/queryTrans.do"]
    sent = fake.requests[0]
    assert (sent["txnType"], sent["orderId"], sent["txnTime"], sent["merId"]) == (
        "00",
        ORDER_ID,
        "20261127103000",
        MER_ID,
    )


def test_a_query_of_an_order_still_processing_is_pending(channel_with: ChannelFactory, fake: FakeHbb) -> None:
    fake.answer = {"respCode": "00", "origRespCode": "05", "queryId": QUERY_ID, "txnAmt": "12394"}
    assert channel_with(fake).query_payment(ATTEMPT_ID, CREATED_AT).outcome is Outcome.PENDING


def test_a_query_that_finds_nothing_is_unknown(channel_with: ChannelFactory, fake: FakeHbb) -> None:
    fake.answer = {"respCode": "34", "respMsg": "查无此交易"}
    result = channel_with(fake).query_payment(ATTEMPT_ID, CREATED_AT)
    assert (result.outcome, result.bank_code) == (Outcome.UNKNOWN, "34")


def test_a_query_answer_about_another_order_is_unknown(channel_with: ChannelFactory, hbb_pki: HbbPki) -> None:
    answer = hbb_signed(
        {"respCode": "00", "origRespCode": "00", "merId": MER_ID, "orderId": "att99999999", "queryId": QUERY_ID},
        hbb_pki.signing_key,
        hbb_pki.signing_cert,
    )
    channel = channel_with(lambda request: httpx.Response(200, content=raw_answer(answer)))
    assert channel.query_payment(ATTEMPT_ID, CREATED_AT).outcome is Outcome.UNKNOWN


# Refunds


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("00", Outcome.SUCCEEDED),
        ("05", Outcome.UNKNOWN),
        ("12", Outcome.UNKNOWN),
        ("36", Outcome.FAILED),
        ("51", Outcome.FAILED),
        ("91", Outcome.NOT_SUBMITTED),
        ("X9", Outcome.UNKNOWN),
    ],
)
def test_a_refund_answer_maps_by_its_resp_code(
    channel_with: ChannelFactory, fake: FakeHbb, refund_order: RefundOrder, code: str, outcome: Outcome
) -> None:
    fake.answer = {"respCode": code, "queryId": "261127110000000000002", "txnAmt": "2000"}
    result = channel_with(fake).refund(refund_order)
    assert result.outcome is outcome
    assert result.bank_code == code
    assert fake.paths == ["/gateway/api/backTransReq.do"]
    sent = fake.requests[0]
    assert (sent["txnType"], sent["origQryId"], sent["orderId"]) == ("04", QUERY_ID, REFUND_ORDER_ID)


def test_a_refund_query_asks_by_the_refunds_own_order_id(channel_with: ChannelFactory, fake: FakeHbb) -> None:
    fake.answer = {"respCode": "00", "origRespCode": "00", "queryId": "261127110000000000002", "txnAmt": "2000"}
    result = channel_with(fake).query_refund(REFUND_ID, datetime(2026, 11, 27, 3, 0, tzinfo=UTC))
    assert result.outcome is Outcome.SUCCEEDED
    assert fake.requests[0]["orderId"] == REFUND_ORDER_ID
    assert fake.requests[0]["txnTime"] == "20261127110000"


class Counting:
    def __init__(self, failure: Exception | httpx.Response) -> None:
        self.failure = failure
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if isinstance(self.failure, httpx.Response):
            return self.failure
        raise self.failure


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectTimeout("slow"),
        httpx.WriteTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        httpx.ReadError("reset"),
        httpx.Response(500),
        httpx.Response(503, text="service unavailable"),
        httpx.Response(504),
        httpx.Response(404),
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, content=b"\xff\xfe"),
        httpx.Response(200, text="respCode=00&respMsg=ok"),
    ],
    ids=lambda f: type(f).__name__ if isinstance(f, Exception) else f"http-{f.status_code}",
)
def test_a_refund_without_a_trusted_answer_is_unknown_and_never_sent_twice(
    channel_with: ChannelFactory, refund_order: RefundOrder, failure: Exception | httpx.Response
) -> None:
    transport = Counting(failure)
    result = channel_with(transport).refund(refund_order)
    assert result.outcome is Outcome.UNKNOWN
    assert transport.calls == 1


def test_a_refund_that_never_reached_hbb_is_not_submitted(
    channel_with: ChannelFactory, refund_order: RefundOrder
) -> None:
    transport = Counting(httpx.ConnectError("refused"))
    assert channel_with(transport).refund(refund_order).outcome is Outcome.NOT_SUBMITTED
    assert transport.calls == 1


def test_a_query_that_never_reached_hbb_is_unknown(channel_with: ChannelFactory) -> None:
    transport = Counting(httpx.ConnectError("refused"))
    assert channel_with(transport).query_payment(ATTEMPT_ID, CREATED_AT).outcome is Outcome.UNKNOWN


def test_a_badly_signed_answer_is_unknown(
    channel_with: ChannelFactory, hbb_pki: HbbPki, refund_order: RefundOrder
) -> None:
    answer = hbb_signed(
        {"respCode": "51", "merId": MER_ID, "orderId": REFUND_ORDER_ID}, hbb_pki.signing_key, hbb_pki.signing_cert
    )
    answer["respCode"] = "00"
    channel = channel_with(lambda request: httpx.Response(200, content=raw_answer(answer)))
    assert channel.refund(refund_order).outcome is Outcome.UNKNOWN


def test_an_answer_signed_outside_hbbs_root_is_unknown(channel_with: ChannelFactory, refund_order: RefundOrder) -> None:
    key, cert = Authority.root().leaf()
    answer = hbb_signed({"respCode": "00", "merId": MER_ID, "orderId": REFUND_ORDER_ID}, key, cert)
    channel = channel_with(lambda request: httpx.Response(200, content=raw_answer(answer)))
    assert channel.refund(refund_order).outcome is Outcome.UNKNOWN


# Notifications


def _notification(hbb_pki: HbbPki, **changes: str) -> dict[str, str]:
    fields = {
        "respCode": "00",
        "respMsg": "成功",
        "merId": MER_ID,
        "orderId": ORDER_ID,
        "txnType": "01",
        "txnSubType": "01",
        "bizType": "000201",
        "txnTime": "20261127103000",
        "txnAmt": "12345",
        "currencyCode": "156",
        "queryId": QUERY_ID,
        "settleDate": "1127",
        "accNo": "621799******0014",
        **changes,
    }
    return hbb_signed(fields, hbb_pki.signing_key, hbb_pki.signing_cert)


FORM = "application/x-www-form-urlencoded; charset=UTF-8"


def test_a_genuine_notification_is_parsed(channel_with: ChannelFactory, hbb_pki: HbbPki) -> None:
    channel = channel_with(Counting(httpx.Response(500)))
    notice = channel.parse_notification(wire.encode_form(_notification(hbb_pki)), FORM)
    assert notice.kind == "payment"
    assert notice.platform_reference == ATTEMPT_ID
    assert notice.result.outcome is Outcome.SUCCEEDED
    assert notice.result.amount == Money.cny(12345)
    assert notice.result.bank_reference == QUERY_ID


def test_a_declined_notification_is_failed(channel_with: ChannelFactory, hbb_pki: HbbPki) -> None:
    channel = channel_with(Counting(httpx.Response(500)))
    notice = channel.parse_notification(wire.encode_form(_notification(hbb_pki, respCode="51")), FORM)
    assert notice.result.outcome is Outcome.FAILED


def _forgeries(hbb_pki: HbbPki) -> dict[str, tuple[bytes, str]]:
    genuine = _notification(hbb_pki)
    other = _notification(hbb_pki, orderId="att01JD3Q7W2M9X4N5P6R7S8T9V0B", txnAmt="99")
    unsigned = {k: v for k, v in genuine.items() if k != "signature"}
    rogue_key, rogue_cert = Authority.root().leaf()
    wrong_cn_key, wrong_cn_cert = hbb_pki.root.leaf("Huabei Bank Encryption")
    body_fields = {k: v for k, v in genuine.items() if k not in ("certId", "signPubKeyCert", "signature")}
    return {
        "altered amount": (wire.encode_form({**genuine, "txnAmt": "1"}), FORM),
        "another order's signature": (wire.encode_form({**genuine, "signature": other["signature"]}), FORM),
        "replayed with the order id changed": (wire.encode_form({**other, "orderId": ORDER_ID}), FORM),
        "unsigned": (wire.encode_form(unsigned), FORM),
        "certificate from another root": (wire.encode_form(hbb_signed(body_fields, rogue_key, rogue_cert)), FORM),
        "certificate with another CN": (wire.encode_form(hbb_signed(body_fields, wrong_cn_key, wrong_cn_cert)), FORM),
        "another merchant": (wire.encode_form(_notification(hbb_pki, merId="898120000000009")), FORM),
        "raw instead of a form": (raw_answer(genuine), "text/plain"),
        "not a form at all": (b"\xff\xfe\x00", FORM),
        "empty": (b"", FORM),
    }


FORGERY_NAMES = [
    "altered amount",
    "another order's signature",
    "replayed with the order id changed",
    "unsigned",
    "certificate from another root",
    "certificate with another CN",
    "another merchant",
    "raw instead of a form",
    "not a form at all",
    "empty",
]


@pytest.mark.parametrize("forgery", FORGERY_NAMES)
def test_a_forged_or_malformed_notification_is_refused(
    channel_with: ChannelFactory, hbb_pki: HbbPki, forgery: str
) -> None:
    body, content_type = _forgeries(hbb_pki)[forgery]
    with pytest.raises(InvalidNotification):
        channel_with(Counting(httpx.Response(500))).parse_notification(body, content_type)


def test_the_acknowledgement_is_200_ok_or_a_retry(channel_with: ChannelFactory) -> None:
    channel = channel_with(Counting(httpx.Response(500)))
    accepted = channel.notification_ack(True)
    assert (accepted.status_code, accepted.body) == (200, b"ok")
    assert channel.notification_ack(False).status_code != 200


# Configuration


def test_the_configuration_never_shows_the_private_key(config: HbbConfig) -> None:
    assert "PRIVATE KEY" not in repr(config)


def test_an_encryption_certificate_from_another_root_is_refused(config: HbbConfig) -> None:
    _, foreign = Authority.root().leaf("Huabei Bank Encryption")
    with pytest.raises(ValueError, match="encryption certificate"):
        build_hbb_channel(replace(config, hbb_encryption_cert_pem=pem(foreign)))


def test_a_cert_id_that_contradicts_the_certificate_is_refused(config: HbbConfig) -> None:
    with pytest.raises(ValueError, match="cert_id"):
        build_hbb_channel(replace(config, cert_id="1"))
