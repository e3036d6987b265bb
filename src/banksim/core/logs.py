"""The simulators' log lines: plain text on stderr, with card, ID and phone numbers and secrets masked.

The simulated banks hold real-looking personal data (the test customers of BANKS.md), and their logs
end up beside the platform's, where the test suite's log scan reads them. Every line, exception text
included, passes `RedactingFormatter` before it is written, so an exception that quotes a card number
or a request field cannot leak it. The simulators share no code with the platform, so this is their
own small version; their logs are few, so it is written for clarity rather than speed.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from banksim.core.cardholders import mask_phone
from banksim.core.cards import luhn_is_valid, mask

# A value written after one of these names (`pin=…`, `"smsCode": "…"`, `'password': '…'`) is secret.
_SECRET_PAIR = re.compile(
    r"(?i)\b(?P<name>[\w-]*?(?:pass(?:word|wd)?|pwd|pin(?:_?block)?|sms_?code|verify_?code|otp|cvn2?|cvv2?|"
    r"secret|(?<!public_)key|tmk|tpk|zpk|zak|zmk|pik|mak|token|authorization|cookie))"
    r"(?P<sep>\\?[\"']?\s*[:=]\s*\\?[\"']?)(?P<value>[^\s&,;\"'\\]+)"
)
# A bare number that may be a card (13–19 digits), a resident ID (17 digits and a check character)
# or a mainland mobile (11 digits from 13…): each is checked before it is masked.
_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{11,19}|\d{17}[Xx])(?![0-9A-Za-z])")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_MOBILE = re.compile(r"1[3-9]\d{9}")
# Bank timestamps (yyyyMMddHHmmss) are digits too; no card number starts like a date.
_DATE_STAMP = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _is_id_number(number: str) -> bool:
    if len(number) != 18 or not number[:17].isdigit():
        return False
    checksum = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS, strict=True)) % 11
    return _ID_CHECK[checksum] == number[17].upper()


def _mask_number(match: re.Match[str]) -> str:
    number = match.group(0)
    if _is_id_number(number):
        return number[0] + "*" * 16 + number[-1]
    if _MOBILE.fullmatch(number):
        return mask_phone(number)
    if len(number) >= 13 and number[0] not in "01" and not _DATE_STAMP.match(number) and luhn_is_valid(number):
        return mask(number)
    return number


def redact(text: str) -> str:
    """The text with secrets after their names masked and card, ID and mobile numbers masked."""
    text = _SECRET_PAIR.sub(lambda m: f"{m.group('name')}{m.group('sep')}***", text)
    return _NUMBER.sub(_mask_number, text)


class RedactingFormatter(logging.Formatter):
    """A plain-text formatter whose whole output (message, exception, stack) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(*, verbose: bool, stream: TextIO | None = None) -> None:
    """One redacting handler on the root logger; uvicorn's loggers propagate to it (core/server.py)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True)
