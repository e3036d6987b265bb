"""Logs never carry a card number, ID number, phone, password, key or PEM block in clear: not as a field,
not inside a message, an exception text or an access line; and ordinary ids, amounts and times survive."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from tianpay.adapters.logging import configure_logging, get_logger, redact_text

CARD = "6217990000000000014"
ID_NUMBER = "12010119900725002X"
PHONE = "13800138001"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", json=True, stream=stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers = []


def test_structlog_lines_are_json_and_redacted(log_stream: io.StringIO) -> None:
    get_logger("tianpay.test").info(
        f"binding card {CARD} for {ID_NUMBER}",
        card_no=CARD,
        customer={"id_number": ID_NUMBER, "phone": PHONE, "password": "Passw0rd!", "name": "张伟"},
        private_key=PEM,
        sms_code="123456",
        amount_minor=1234,
        note=f"key material {PEM}",
    )
    line = log_stream.getvalue().strip()
    record = json.loads(line)
    for secret in (CARD, ID_NUMBER, PHONE, "Passw0rd!", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "123456"):
        assert secret not in line
    assert record["card_no"] == "621799*********0014"
    assert record["customer"]["id_number"] == "1****************X"
    assert record["customer"]["phone"] == "138****8001"
    assert record["customer"]["password"] == "***"
    assert record["customer"]["name"] == "张伟"
    assert record["private_key"] == "***"
    assert record["sms_code"] == "***"
    assert record["amount_minor"] == 1234
    assert "[PEM redacted]" in record["note"]
    assert "621799*********0014" in record["event"]


def test_standard_library_loggers_are_redacted_too(log_stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.access").warning("POST /pay?card=%s phone=%s", CARD, PHONE)
    line = log_stream.getvalue()
    assert CARD not in line
    assert PHONE not in line
    assert "621799*********0014" in line


def test_numbers_that_are_not_cards_are_left_alone() -> None:
    # A 21-digit bank reference and a Luhn-invalid 19-digit number are not card numbers.
    assert redact_text("queryId=202611271234567890123") == "queryId=202611271234567890123"
    assert redact_text("ref 6217990000000000015") == "ref 6217990000000000015"


# ---- names and numbers inside message text ---------------------------------------------------------------

# Real-looking lines, as uvicorn, httpx, exceptions and careless f-strings write them, and what is left.
MESSAGE_LINES = [
    (
        '127.0.0.1:54321 - "GET /cashier/pay?card_no=6217990000000000015&phone=13800138001&amount=100 HTTP/1.1" 200',
        '127.0.0.1:54321 - "GET /cashier/pay?card_no=621799*********0015&phone=138****8001&amount=100 HTTP/1.1" 200',
    ),
    (
        "HTTP Request: POST http://127.0.0.1:8001/gateway/api/backTransReq.do?accNo=6230990000000000991"
        '&smsCode=482913&certifId=12010119900725002X "HTTP/1.1 200 OK"',
        "HTTP Request: POST http://127.0.0.1:8001/gateway/api/backTransReq.do?accNo=623099*********0991"
        '&smsCode=***&certifId=1****************X "HTTP/1.1 200 OK"',
    ),
    (
        "ValueError: bad body {'out_trade_no': '20261127-0001', 'loginPassword': 'abc12345', 'pin': '135790'}",
        "ValueError: bad body {'out_trade_no': '20261127-0001', 'loginPassword': '***', 'pin': '***'}",
    ),
    (
        'bank answered {"respCode": "00", "accNo": "6217990000000000022", "phoneNo": "13800138002", "txnAmt": "100"}',
        'bank answered {"respCode": "00", "accNo": "621799*********0022", "phoneNo": "138****8002", "txnAmt": "100"}',
    ),
    (
        "tmk_hex=0123456789abcdeffedcba9876543210 ZPK: 00112233445566778899aabbccddeeff webhook_secret=whsec_x1",
        "tmk_hex=*** ZPK: *** webhook_secret=***",
    ),
    ("Authorization: Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln retry=1", "Authorization: *** retry=1"),
    ('detail={\\"sms_code\\":\\"482913\\"}', 'detail={\\"sms_code\\":\\"***\\"}'),
    # A named account number is masked even when it is no Luhn-valid card number.
    ("payout to account_no=1234567890123456 failed", "payout to account_no=123456******3456 failed"),
    ("id_number: 110105198503120012, mobile: 13800138001", "id_number: 1****************2, mobile: 138****8001"),
]
# Ordinary ids, amounts, references and timestamps come out exactly as they went in.
UNTOUCHED = [
    "payment.succeeded",
    "payment_id=pay_01M8ECT871G8GJ1K72VFH0FKHF key_id=key_01M8ECT871G8GJ1K72VFH0FKHF amount_minor=1000000000000",
    "txnTime=20261127093015 queryId=202611271234567890123 traceNo=482913 settleDate=1127",
    "created_at=2026-11-27T09:30:15.123456+08:00 ts_ms=1764230400123 ts=1764230400",
    "public_key=MCowBQYDK2VwAyEA publicKey: MCowBQYDK2VwAyEA spin=3 monkey=6217990000000000015",
    "card=crd_01M8ECT871G8GJ1K72VFH0FKHF account=merchant:M1001:pending phone=138****8001 card_no=621799*********0014",
    "error code=signature_invalid param=created_from status=400",
    "order 20261127143015123 of 2026-11-27 settled as stl_20261127_M1001",
    "password=",
]


@pytest.mark.parametrize(("line", "expected"), MESSAGE_LINES)
def test_names_and_numbers_inside_a_message_are_masked(line: str, expected: str) -> None:
    assert redact_text(line) == expected


@pytest.mark.parametrize("line", UNTOUCHED)
def test_ordinary_ids_amounts_and_timestamps_are_left_alone(line: str) -> None:
    assert redact_text(line) == line


@pytest.mark.parametrize(("line", "expected"), MESSAGE_LINES)
def test_redacting_twice_changes_nothing_more(line: str, expected: str) -> None:
    assert redact_text(redact_text(line)) == expected


@given(moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2033, 5, 17)))
def test_no_timestamp_is_ever_taken_for_a_card_id_or_phone(moment: datetime) -> None:
    # Unix times in milliseconds start with 1 until May 2033; after that one in ten looks like a card.
    stamps = [
        moment.strftime("%Y%m%d%H%M%S"),
        moment.strftime("%Y%m%d%H%M%S%f")[:17],
        moment.replace(tzinfo=UTC).isoformat(),
        str(int(moment.replace(tzinfo=UTC).timestamp() * 1000)),
    ]
    for stamp in stamps:
        assert redact_text(f"txnTime={stamp} at {stamp}") == f"txnTime={stamp} at {stamp}"


@given(amount=st.integers(min_value=0, max_value=10**12).filter(lambda n: not 13 * 10**9 <= n < 10**11))
def test_no_amount_in_fen_is_ever_taken_for_a_card(amount: int) -> None:
    # 11-digit amounts from 130 million yuan look exactly like mobiles and are masked as one: accepted.
    assert redact_text(f"amount={amount} fee {amount}") == f"amount={amount} fee {amount}"


def test_an_exception_text_is_redacted_in_the_logged_traceback(log_stream: io.StringIO) -> None:
    try:
        raise ValueError(f"bad body {{'card_no': '6217990000000000015', 'password': 'Passw0rd!'}} from {PHONE}")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    record = json.loads(log_stream.getvalue())
    assert "6217990000000000015" not in record["exception"]
    assert "Passw0rd!" not in record["exception"]
    assert "{'card_no': '621799*********0015', 'password': '***'} from 138****8001" in record["exception"]


def test_named_personal_numbers_are_masked_as_fields_too(log_stream: io.StringIO) -> None:
    get_logger("tianpay.test").info(
        "payout.sent",
        account_no="1234567890123456",
        payer_phone=13800138001,
        card_id="crd_01M8ECT871G8GJ1K72VFH0FKHF",
        japan="123456789",
    )
    record = json.loads(log_stream.getvalue())
    assert (record["account_no"], record["payer_phone"]) == ("123456******3456", "138****8001")
    assert (record["card_id"], record["japan"]) == ("crd_01M8ECT871G8GJ1K72VFH0FKHF", "123456789")
