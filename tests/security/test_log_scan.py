"""The log scan itself: what it catches, what it lets pass, and that it sees the real pipeline.

The scan runs over the whole session (``tests/conftest.py``); these tests prove that a card, ID or
phone number, a password, an SMS code or key material in clear is caught, that their masked forms are
not, and that a log call made with personal data lands in the scanner already redacted.
"""

from __future__ import annotations

import pytest

from tianpay.adapters.logging import get_logger

from .log_scan import LogScanner

LEAKS = [
    '{"event": "paid", "card": "6217990000000000014"}',
    "bound card 6230990000000000017 for 王芳",
    '{"id_number": "12010119900725002X"}',
    "sms to 13800138001 sent",
    '{"login": "zhangwei", "pw": "Passw0rd!"}',
    '{"event": "bind", "sms_code": "482913"}',
    "smsCode=482913&phoneNo=138****8001",
    "您的验证码是 482913，5分钟内有效",
    "-----BEGIN PRIVATE KEY-----",
    '{"tmk_hex": "0123456789ABCDEF0123456789ABCDEF"}',
    "zpk=00112233445566778899aabbccddeeff",
]
CLEAN = [
    '{"event": "paid", "card": "621799*********0014", "phone": "138****8001"}',
    '{"id_number": "1*****************X"}',
    '{"trx_code": "300001", "ret_code": "0000", "amount": 482913}',
    '{"event": "gateway.notification_invalid", "code": "signature_invalid"}',
    '{"key_id": "key_01M8ECT871G8GJ1K72VFH0FKHF", "public_key": "[PEM redacted]"}',
    '{"sha256": "a4072c60421a54ef4a16bef2d5f5ada0187782c7b484549d4c6ebe21d599bb1a"}',
    '{"event": "sms.code_sent", "phone": "137****7311", "code_id": "smc_01M8ECT871G8GJ1K72VFH0FKHF"}',
]


@pytest.mark.parametrize("line", LEAKS)
def test_a_secret_or_personal_number_in_clear_is_caught(line: str) -> None:
    scanner = LogScanner()
    scanner.scan(line, "test")
    assert len(scanner.findings) == 1, line


@pytest.mark.parametrize("line", CLEAN)
def test_masked_numbers_and_protocol_codes_pass(line: str) -> None:
    scanner = LogScanner()
    scanner.scan(line, "test")
    assert scanner.findings == []


def test_a_log_call_with_personal_data_reaches_the_scanner_redacted(log_scan: LogScanner) -> None:
    lines_before, findings_before = log_scan.lines_scanned, len(log_scan.findings)
    get_logger("tests.security").warning(
        "security.scan_probe", card_no="6217990000000000014", note="paid by 13800138001 with 6227990000000000013",
        login_password="Passw0rd!", private_key="-----BEGIN PRIVATE KEY-----\nMC4CAQ\n-----END PRIVATE KEY-----",
    )
    assert log_scan.lines_scanned == lines_before + 1
    assert len(log_scan.findings) == findings_before
