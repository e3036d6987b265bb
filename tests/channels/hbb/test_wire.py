"""HBB's two encodings: form bodies (requests, notifications) and raw ``k=v&k=v`` answers."""

from __future__ import annotations

import pytest

from tianpay.channels.hbb import wire
from tianpay.channels.hbb.wire import WireError

PEM = "-----BEGIN CERTIFICATE-----\nMIIB+zCCAWSgAwIBAgIJ/a==\n-----END CERTIFICATE-----\n"


def test_a_raw_answer_keeps_values_with_equals_signs_pluses_and_newlines() -> None:
    text = f"respCode=00&signature=ab+c/d==&signPubKeyCert={PEM}&respMsg=成功"
    assert wire.decode_answer(text) == {
        "respCode": "00",
        "signature": "ab+c/d==",
        "signPubKeyCert": PEM,
        "respMsg": "成功",
    }


def test_a_braced_value_may_hold_ampersands_as_in_acp() -> None:
    text = "customerInfo={phoneNo=13800138001&smsCode=111111}&respCode=00"
    assert wire.decode_answer(text) == {"customerInfo": "{phoneNo=13800138001&smsCode=111111}", "respCode": "00"}


def test_an_empty_value_is_kept() -> None:
    assert wire.decode_answer("a=&b=1") == {"a": "", "b": "1"}


@pytest.mark.parametrize(
    "text",
    ["", "respCode", "respCode=00&respCode=11", "=00", "a={unclosed&b=1", "a={x}y&b=1", "respCode=00&"],
)
def test_malformed_answers_are_refused(text: str) -> None:
    with pytest.raises(WireError):
        wire.decode_answer(text)


def test_forms_round_trip_with_utf8_and_reserved_characters() -> None:
    fields = {"frontUrl": "http://x.test/r?a=1&b=2", "merAbbr": "津门好物商城", "signature": "a+b/c=="}
    assert wire.decode_form(wire.encode_form(fields)) == fields


@pytest.mark.parametrize("body", [b"a=1&a=2", b"\xff\xfe=1", b"novalue"])
def test_malformed_forms_are_refused(body: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode_form(body)


def test_request_fields_leave_out_empty_optional_fields() -> None:
    request = wire.QueryRequest(certId="1", merId="898120000000001", orderId="att12345678", txnTime="20261127103000")
    fields = wire.request_fields(request)
    assert fields == {
        "certId": "1",
        "merId": "898120000000001",
        "orderId": "att12345678",
        "txnTime": "20261127103000",
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "txnType": "00",
        "txnSubType": "00",
        "bizType": "000000",
        "accessType": "0",
    }
    consume = wire.ConsumeRequest(
        certId="1", merId="m", orderId="o", txnTime="t", txnAmt="1", frontUrl="f", backUrl="b", payTimeout="p"
    )
    assert "merAbbr" not in wire.request_fields(consume)


def test_a_result_reads_the_fields_the_adapter_relies_on() -> None:
    result = wire.parse_result(
        {"respCode": "00", "queryId": "261127100000000000001", "txnAmt": "100", "currencyCode": "156"}
    )
    assert result.txnAmt == 100
    assert result.queryId == "261127100000000000001"
    assert result.origRespCode is None


@pytest.mark.parametrize(
    "fields",
    [
        {"respMsg": "no code"},
        {"respCode": "00", "queryId": "12345"},
        {"respCode": "00", "txnAmt": "1.00"},
        {"respCode": "00", "txnAmt": "-1"},
    ],
)
def test_results_with_malformed_fields_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(WireError):
        wire.parse_result(fields)
