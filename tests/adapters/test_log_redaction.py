"""Logs never carry a card number, ID number, phone, password, key or PEM block in clear."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from tianpay.adapters.logging import configure_logging, get_logger, redact_text

CARD = "6217990000000000014"
ID_NUMBER = "12010119900725002X"
PHONE = "13800138001"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


@pytest.fixture
def log_stream() -> io.StringIO:
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
