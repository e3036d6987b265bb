"""Structured JSON logs (structlog) with a redaction processor that runs on every line.

Card numbers keep their first 6 and last 4 digits; resident ID numbers, mobile phones, PEM blocks
and the values of sensitive fields (passwords, PINs, keys, secrets, SMS codes, signatures) are
masked, both as fields and inside message text (``name=value``, JSON, Python reprs, headers, and
bare numbers), exception texts included. Redaction happens in the logging pipeline itself, so a
careless log call cannot leak. Standard-library loggers (uvicorn, httpx) go through the same pipeline.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

# Names of secrets: a field, or a `name=value` in a message, under one of these names is masked
# whole. In field names an underscore is optional; in messages it may also be written `-`, and every
# name may be spelt lower_case, UPPER_CASE, camelCase or PascalCase.
_SECRET_WORDS = (
    "pass", "password", "passwd", "pwd", "pin", "pin_block", "secret", "key", "key_material", "token",
    "csrf", "session_id", "sms_code", "verify_code", "otp", "cvn", "cvn2", "cvv", "cvv2", "signature",
    "authorization", "cookie", "tmk", "tpk", "pik", "mak", "zpk", "zak", "zmk", "kek", "dek", "key_hex",
    "tmk_hex", "tpk_hex", "pik_hex", "mak_hex", "zpk_hex", "zak_hex", "zmk_hex", "kek_hex", "dek_hex",
)  # fmt: skip
# Names of personal numbers: their values keep the usual masked shape (6+4 digits of a card or an
# account, 3+4 of a phone, the first and last character of an ID number) so lines stay readable.
_CARD_WORDS = (
    "card", "card_no", "card_num", "card_number", "acc_no", "acc_num", "acc_number", "acct", "acct_no",
    "acct_num", "acct_number", "account", "account_no", "account_num", "account_number", "bank_account", "pan",
)  # fmt: skip
_ID_WORDS = (
    "id_no", "id_num", "id_number", "id_card", "certif_id", "cert_no", "cert_num", "cert_number",
    "identity", "identity_no", "identity_num", "identity_number",
)  # fmt: skip
_PHONE_WORDS = (
    "phone", "phone_no", "phone_num", "phone_number", "mobile", "mobile_no", "mobile_num", "mobile_number",
    "tel", "msisdn",
)  # fmt: skip
MASK = "***"


def _field_names(words: tuple[str, ...]) -> str:
    return "|".join(sorted((w.replace("_", "_?") for w in words), key=len, reverse=True))


# A public key is no secret; every other key is.
SENSITIVE_KEY = re.compile(
    rf"(?:{_field_names(tuple(w for w in _SECRET_WORDS if w != 'key'))}|(?<!public_)key)$", re.IGNORECASE
)
# A field's name ends with a personal-number name that starts a word (so `japan` is not `pan`).
_NUMBER_KEY = re.compile(
    r"(?:^|[_.\-]|(?<=[a-z0-9])(?=[A-Z]))(?i:"
    rf"(?P<card>{_field_names(_CARD_WORDS)})|(?P<id>{_field_names(_ID_WORDS)})|(?P<phone>{_field_names(_PHONE_WORDS)})"
    r")$"
)


def _spellings(word: str, *, pascal_only: bool = False) -> set[str]:
    parts = word.split("_")
    pascal = {sep.join(p.capitalize() for p in parts) for sep in ("_", "-", "")}
    if pascal_only:
        return pascal
    other = {sep.join(parts) for sep in ("_", "-", "")}
    return pascal | other | {w.upper() for w in other} | {parts[0] + "".join(p.capitalize() for p in parts[1:])}


def _trie(words: set[str]) -> str:
    """An alternation of literal words, factored into a trie: at a position where no name starts it
    fails on the first character, which keeps the per-character cost of the message scan low."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return render(root)


_ALL_WORDS = _SECRET_WORDS + _CARD_WORDS + _ID_WORDS + _PHONE_WORDS
_VALUE = (
    r"b?\"(?:[^\"\\\n]|\\.)*\"|b?'(?:[^'\\\n]|\\.)*'|\\\"[^\"\\]*\\\""
    r"|(?:(?:Bearer|Basic|Digest|HMAC|Signature)[ ]+)?[^\s&,;\"'\\<>()\[\]{}]+"
)


def _pair_tail(n: int) -> str:
    return rf"(?P<sep{n}>(?:\\?[\"'])?[ \t]*[:=][ \t]*)(?P<value{n}>{_VALUE})"


_BARE_NUMBER = r"(?P<digits>\d{11,19}|\d{17}[Xx])(?![0-9A-Za-z])"
_PEM = r"(?P<pem>-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|$))"
# One pattern, one pass over a message. At a word start (no letter or digit before): a bare 11–19
# digit number (or 17 digits and X), or a sensitive name followed by `=` or `:` and its value, as in
# query strings, logfmt, JSON (`"name": "value"`), Python reprs (`'name': 'value'`) and headers; in
# the middle of a word, a PascalCase name after a lower-case letter (`loginPassword=`); or a PEM block.
# `spin=` and `monkey=` are no names; `public_key` and `publicKey` are not secrets.
_ANY_NAME = _trie(set().union(*(_spellings(word) for word in _ALL_WORDS)))
_PASCAL_NAME = _trie(set().union(*(_spellings(word, pascal_only=True) for word in _ALL_WORDS)))
_TEXT = re.compile(
    rf"(?<![A-Za-z0-9])(?:{_BARE_NUMBER}|(?<!public[_\-])(?P<name1>{_ANY_NAME}){_pair_tail(1)})"
    rf"|(?=[A-Z])(?<=[a-z0-9])(?<!public)(?P<name2>{_PASCAL_NAME}){_pair_tail(2)}"
    rf"|{_PEM}",
    re.DOTALL,
)
# Strings with no `=` and no `:` (event names, ids, most field values) can hold no name=value pair.
_TEXT_WITHOUT_PAIRS = re.compile(rf"(?<![A-Za-z0-9]){_BARE_NUMBER}|{_PEM}", re.DOTALL)
_BARE_DIGITS = re.compile(r"(?<![0-9A-Za-z])(?:\d{11,19}|\d{17}[Xx])(?![0-9A-Za-z])")
_DATE_STAMP = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


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
    # GB 11643: 6 digits of region, the birth date as YYYYMMDD, 3 of sequence, 1 check character.
    if len(number) != 18 or not number[:17].isdigit() or not _DATE_STAMP.fullmatch(number[6:14]):
        return False
    checksum = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True)) % 11
    return _ID_CHECK[checksum] == number[17].upper()


def _is_card_number(number: str) -> bool:
    # One number in ten is Luhn-valid, so the check alone would mask timestamps. Payment cards start
    # with 2–9 (ISO/IEC 7812: 1 is airlines, 0 is ISO's own), which spares Unix times in milliseconds
    # and every amount up to 10^12 fen; and none starts like a date (yyyyMMddHHmmss…).
    if not (13 <= len(number) <= 19 and number.isdigit()) or number[0] in "01" or _DATE_STAMP.match(number):
        return False
    return _is_luhn_valid(number)


def _mask_card(number: str) -> str:
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def _mask_id(number: str) -> str:
    return number[0] + "*" * (len(number) - 2) + number[-1]


def _mask_phone(number: str) -> str:
    return number[:3] + "****" + number[-4:]


def _mask_bare_number(number: str) -> str:
    """A number found in text with no name: masked only when it is certainly a card, ID or mobile."""
    if _is_resident_id(number):
        return _mask_id(number)
    if len(number) == 11 and _MOBILE.fullmatch(number):
        return _mask_phone(number)
    if _is_card_number(number):
        return _mask_card(number)
    return number


def _bare_match(match: re.Match[str]) -> str:
    return _mask_bare_number(match.group(0))


def _mask_named_number(kind: str, value: str) -> str:
    """A value under a card, ID or phone name: masked by its kind whenever it is made of digits.

    Other values (a card id such as ``crd_01…``, a masked number) are left as they are, but for any
    card, ID or phone number inside them: the name alone is no reason to mangle them.
    """
    number = value.replace(" ", "").replace("-", "")
    if not (number[:-1].isdigit() and (number[-1].isdigit() or number[-1] in "Xx")):
        return _BARE_DIGITS.sub(_bare_match, value)
    if len(number) < 6:
        # Too short to be a whole card, ID or phone number (a count, a last-four, a bank code).
        return value
    if kind == "id":
        return _mask_id(number)
    if kind == "phone" and len(number) == 11:
        return _mask_phone(number)
    if kind == "card" and len(number) >= 13:
        return _mask_card(number)
    return "*" * (len(number) - 4) + number[-4:]


def _unquote(value: str) -> tuple[str, str, str]:
    """(opening, inner, closing) of a value as written: JSON or Python quotes, escaped quotes, or none."""
    for opening, closing in (('\\"', '\\"'), ('b"', '"'), ("b'", "'"), ('"', '"'), ("'", "'")):
        if len(value) >= len(opening) + len(closing) and value.startswith(opening) and value.endswith(closing):
            return opening, value[len(opening) : len(value) - len(closing)], closing
    return "", value, ""


def _redact_match(match: re.Match[str]) -> str:
    digits = match.group("digits")
    if digits is not None:
        return _mask_bare_number(digits)
    if match.group("pem") is not None:
        return "[PEM redacted]"
    n = "1" if match.group("name1") is not None else "2"
    name, sep, value = match.group(f"name{n}", f"sep{n}", f"value{n}")
    opening, inner, closing = _unquote(value)
    if inner == "":
        return match.group(0)
    kind = _number_kind(name.replace("-", "_"))
    masked = MASK if kind is None else _mask_named_number(kind, inner)
    return f"{name}{sep}{opening}{masked}{closing}"


def redact_text(text: str) -> str:
    """Masks secrets and personal numbers inside free text, in one pass of one compiled pattern.

    Caught: PEM blocks; the value of any sensitive name written as ``name=value`` (query strings,
    logfmt), ``"name": "value"`` (JSON), ``'name': 'value'`` (Python reprs) or ``name: value``
    (headers); and, with no name, Luhn-valid card numbers, GB 11643 ID numbers and mainland mobiles.
    """
    has_pair = "=" in text or ":" in text
    if len(text) < 11 and not has_pair:
        # Too short for an 11-digit number or a PEM header, and no name=value: most field values.
        return text
    return (_TEXT if has_pair else _TEXT_WITHOUT_PAIRS).sub(_redact_match, text)


@functools.lru_cache(maxsize=4096)
def _rule_for_key(key: str) -> str | None:
    """The rule for a field name: secret, card, id, phone or None (names are few, so they are cached)."""
    if SENSITIVE_KEY.search(key):
        return "secret"
    found = _NUMBER_KEY.search(key)
    return None if found is None else found.lastgroup


def _number_kind(key: str) -> str | None:
    rule = _rule_for_key(key)
    return None if rule == "secret" else rule


def redact_value(key: str | None, value: Any) -> Any:
    """One field's value, redacted by its name (secrets, personal numbers) and then by its content."""
    rule = None if key is None else _rule_for_key(key)
    if rule == "secret" and value not in (None, ""):
        return MASK
    if rule is not None and isinstance(value, str | int) and not isinstance(value, bool) and value != "":
        return _mask_named_number(rule, str(value))
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


# Written by the pipeline's own processors (a time, a level name, a logger's name): nothing to mask.
_PIPELINE_KEYS = frozenset({"timestamp", "level", "logger"})


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The structlog processor: every key and value of every log line passes through here."""
    redacted: MutableMapping[str, Any] = {}
    for key, value in event_dict.items():
        if key in _PIPELINE_KEYS and isinstance(value, str):
            redacted[key] = value
        else:
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
