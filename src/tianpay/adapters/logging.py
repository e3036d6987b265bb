"""Structured JSON logs (structlog) with a redaction processor that runs on every line.

Card numbers keep their first 6 and last 4 digits; resident ID numbers, mobile phones, PEM blocks
and the values of sensitive fields (passwords, PINs, keys, secrets, SMS codes, signatures) are
masked. Redaction happens in the logging pipeline itself, so a careless log call cannot leak.
Standard-library loggers (uvicorn, httpx) go through the same pipeline.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

SENSITIVE_KEY = re.compile(
    r"(pass(word|wd)?|pin|secret|(?<!public_)key|key_?material|token|sms_?code|verify_?code|otp|cvn2?|cvv|"
    r"signature|authorization|cookie|tmk|pik|mak|zpk|zak)$",
    re.IGNORECASE,
)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.DOTALL)
_DIGITS = re.compile(r"(?<![0-9A-Za-z])(\d{11,19}|\d{17}[Xx])(?![0-9A-Za-z])")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
MASK = "***"


def _is_luhn_valid(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _is_resident_id(number: str) -> bool:
    if len(number) != 18 or not number[:17].isdigit():
        return False
    checksum = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True)) % 11
    return _ID_CHECK[checksum] == number[17].upper()


def _mask_number(match: re.Match[str]) -> str:
    number = match.group(0)
    if _is_resident_id(number):
        return number[0] + "*" * 16 + number[-1]
    if len(number) == 11 and number.startswith("1"):
        return number[:3] + "****" + number[-4:]
    if len(number) >= 13 and number.isdigit() and _is_luhn_valid(number):
        return number[:6] + "*" * (len(number) - 10) + number[-4:]
    return number


def redact_text(text: str) -> str:
    """Masks card numbers, ID numbers, phones and PEM blocks inside free text."""
    return _DIGITS.sub(_mask_number, _PEM.sub("[PEM redacted]", text))


def redact_value(key: str | None, value: Any) -> Any:
    if key is not None and SENSITIVE_KEY.search(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10**10:
        return redact_text(str(value))
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(None, item) for item in value]
    return value


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The structlog processor: every key and value of every log line passes through here."""
    redacted: MutableMapping[str, Any] = {}
    for key, value in event_dict.items():
        redacted[key] = redact_value(key if key != "event" else None, value)
    return dict(redacted)


def configure_logging(level: str = "INFO", *, json: bool = True, stream: TextIO | None = None) -> None:
    """Routes structlog and the standard library's loggers through one redacting JSON pipeline."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # httpx logs every request URL at INFO; merchants' webhook URLs may carry tokens in their query
    # strings, which no pattern can recognise, so those lines are kept out of the logs altogether.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.stdlib.get_logger(name)
