"""JHB's messages as JHB names them: the signed, encrypted envelope and each service's body.

Values stay in JHB's own representation here (yuan strings, `YYYYMMDDhhmmss` Beijing times, JHB's
status words); `mapping.py` turns them into the platform's types. Readers are pure and raise
`WireError` for anything that is not the shape BANKS.md (JHB section) and docs/banks/jhb.md give.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

ENVELOPE_VERSION = "2.0"
HEAD_FIELDS = ("version", "partner_id", "service", "req_no", "req_time", "key_id")


class Service(enum.StrEnum):
    """The `/api/{service}` names of BANKS.md; quick pay and mandates are listed for later issues."""

    EBANK_PAY = "ebank.pay"
    PAY_QUERY = "pay.query"
    REFUND = "refund"
    REFUND_QUERY = "refund.query"
    BIND_APPLY = "bind.apply"
    BIND_CONFIRM = "bind.confirm"
    BIND_QUERY = "bind.query"
    UNBIND = "unbind"
    PAY = "pay"
    MANDATE_APPLY = "mandate.apply"
    MANDATE_CONFIRM = "mandate.confirm"
    MANDATE_REVOKE = "mandate.revoke"
    MANDATE_DEBIT = "mandate.debit"
    BILL_DOWNLOAD = "bill.download"


class NoticeService(enum.StrEnum):
    """`head.service` of the notifications JHB POSTs to our `notify_url` (docs/banks/jhb.md)."""

    EBANK_PAY = "ebank.pay.notify"
    PAY = "pay.notify"
    MANDATE_DEBIT = "mandate.debit.notify"
    REFUND = "refund.notify"
    # The payer revoked a mandate at the bank (JHB's app); docs/banks/jhb.md "Direct debit mandates".
    MANDATE_REVOKE = "mandate.revoke.notify"


class RetCode(enum.StrEnum):
    """Every `ret_code` JHB documents: BANKS.md fixes 0000/1001/1002/105x/106x/1071/2000, the rest
    follow docs/banks/jhb.md (LianLian's habit of one code per reason)."""

    SUCCESS = "0000"
    SIGNATURE_INVALID = "1001"
    DECRYPT_FAILED = "1002"
    PARTNER_UNKNOWN = "1003"
    MESSAGE_MALFORMED = "1004"
    AMOUNT_INVALID = "1005"
    SERVICE_UNKNOWN = "1006"
    ORDER_DUPLICATE = "1010"
    ORDER_NOT_FOUND = "1011"
    ORDER_CLOSED = "1012"
    REFUND_DUPLICATE = "1020"
    REFUND_EXCEEDS_PAYMENT = "1021"
    ORIGINAL_NOT_PAID = "1022"
    # `bill.download` for a date that is not over yet in JHB's clock (docs/banks/jhb.md §12).
    BILL_NOT_READY = "1031"
    INSUFFICIENT_FUNDS = "1051"
    OVER_LIMIT = "1061"
    CARD_FROZEN = "1062"
    SMS_WRONG = "1063"
    ELEMENTS_MISMATCH = "1064"
    CARD_INVALID = "1065"
    OUT_OF_MANDATE = "1071"
    BANK_UNAVAILABLE = "1091"
    PROCESSING = "2000"


class TradeStatus(enum.StrEnum):
    """`status` of a payment in `pay.query` answers and payment notifications."""

    WAIT_PAY = "WAIT_PAY"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CLOSED = "CLOSED"


class RefundStatus(enum.StrEnum):
    """`status` of a refund in `refund`/`refund.query` answers and refund notifications."""

    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class WireError(ValueError):
    """A message that is not shaped as JHB's protocol says; it is never trusted."""


# The envelope


@dataclass(frozen=True, slots=True)
class Head:
    version: str
    partner_id: str
    service: str
    req_no: str
    req_time: str
    key_id: str

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in HEAD_FIELDS}


@dataclass(frozen=True, slots=True)
class Envelope:
    """`{"head", "iv", "body", "sign"}` as it travels: iv, body and sign are base64 text.

    `raw_head` keeps the head exactly as received, because the signature covers every member that
    was sent, including any this adapter does not know.
    """

    head: Head
    raw_head: Mapping[str, str]
    iv: str
    body: str
    sign: str

    def to_dict(self) -> dict[str, Any]:
        return {"head": dict(self.raw_head), "iv": self.iv, "body": self.body, "sign": self.sign}

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class PlainError:
    """The unsigned `{"ret_code", "ret_msg"}` JHB sends when it cannot open a request at all.

    docs/banks/jhb.md: failures found before the sender is authenticated (bad signature, unknown
    partner or key_id) are answered unsealed. Nobody signed it, so it proves nothing.
    """

    ret_code: str
    ret_msg: str


def read_envelope(message: Any) -> Envelope:
    """The envelope in a decoded JSON message; raises `WireError` for any other shape."""
    if not isinstance(message, dict):
        raise WireError("the message is not a JSON object")
    raw_head = message.get("head")
    if not isinstance(raw_head, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw_head.items()
    ):
        raise WireError("head must be an object of strings")
    missing = [name for name in HEAD_FIELDS if not raw_head.get(name)]
    if missing:
        raise WireError(f"head lacks {', '.join(missing)}")
    parts = [message.get(name) for name in ("iv", "body", "sign")]
    if not all(isinstance(part, str) and part for part in parts):
        raise WireError("iv, body and sign must be non-empty strings")
    iv, body, sign = (str(part) for part in parts)
    head = Head(**{name: raw_head[name] for name in HEAD_FIELDS})
    return Envelope(head=head, raw_head=dict(raw_head), iv=iv, body=body, sign=sign)


def read_answer(message: Any) -> Envelope | PlainError:
    """An answer is either a sealed envelope or JHB's unsigned plain error."""
    if isinstance(message, dict) and "head" not in message and isinstance(message.get("ret_code"), str):
        return PlainError(ret_code=message["ret_code"], ret_msg=str(message.get("ret_msg", "")))
    return read_envelope(message)


# Service bodies we send


@dataclass(frozen=True, slots=True)
class EbankPay:
    """`ebank.pay`: JHB creates the order and answers with the URL of its login page."""

    out_trade_no: str
    amount: str
    subject: str
    notify_url: str
    return_url: str
    expire_time: str

    def to_body(self) -> dict[str, str]:
        return {
            "out_trade_no": self.out_trade_no,
            "amount": self.amount,
            "subject": self.subject,
            "notify_url": self.notify_url,
            "return_url": self.return_url,
            "expire_time": self.expire_time,
        }


@dataclass(frozen=True, slots=True)
class PayQuery:
    out_trade_no: str

    def to_body(self) -> dict[str, str]:
        return {"out_trade_no": self.out_trade_no}


@dataclass(frozen=True, slots=True)
class Refund:
    out_refund_no: str
    orig_out_trade_no: str
    jhb_trade_no: str
    amount: str
    reason: str
    notify_url: str

    def to_body(self) -> dict[str, str]:
        body = {
            "out_refund_no": self.out_refund_no,
            "orig_out_trade_no": self.orig_out_trade_no,
            "amount": self.amount,
            "reason": self.reason,
            "notify_url": self.notify_url,
        }
        if self.jhb_trade_no:
            body["jhb_trade_no"] = self.jhb_trade_no
        return body


@dataclass(frozen=True, slots=True)
class RefundQuery:
    out_refund_no: str

    def to_body(self) -> dict[str, str]:
        return {"out_refund_no": self.out_refund_no}


@dataclass(frozen=True, slots=True)
class BillDownload:
    """`bill.download`: the statement of one date (`YYYY-MM-DD`, Beijing business date)."""

    bill_date: str

    def to_body(self) -> dict[str, str]:
        return {"bill_date": self.bill_date}


# Service bodies we receive


@dataclass(frozen=True, slots=True)
class EbankPayAnswer:
    ret_code: str
    ret_msg: str
    out_trade_no: str
    jhb_trade_no: str
    amount: str
    redirect_url: str
    expire_time: str


@dataclass(frozen=True, slots=True)
class TradeView:
    """A payment as `pay.query` answers it and payment notifications carry it."""

    ret_code: str
    ret_msg: str
    out_trade_no: str
    jhb_trade_no: str
    amount: str
    status: str
    fail_code: str
    fail_msg: str
    finish_time: str


@dataclass(frozen=True, slots=True)
class RefundView:
    """A refund as `refund` and `refund.query` answer it and refund notifications carry it."""

    ret_code: str
    ret_msg: str
    out_refund_no: str
    jhb_refund_no: str
    orig_out_trade_no: str
    jhb_trade_no: str
    amount: str
    status: str
    fail_code: str
    fail_msg: str
    finish_time: str


@dataclass(frozen=True, slots=True)
class BillAnswer:
    """The `bill.download` answer: the file travels whole, as base64 of its bytes, with its SHA-256."""

    ret_code: str
    ret_msg: str
    bill_date: str
    bill_name: str
    bill_content: str
    bill_sha256: str


def _text(body: Mapping[str, Any], name: str) -> str:
    """A string member, `""` when absent; anything but a string is a malformed message."""
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WireError(f"{name} must be a string")
    return value


def read_ret_code(body: Mapping[str, Any]) -> tuple[str, str]:
    """`(ret_code, ret_msg)` of a decrypted body; `""` when absent (notifications carry none).

    An absent code is never read as success: only an explicit `0000` is one.
    """
    return _text(body, "ret_code"), _text(body, "ret_msg")


_Message = TypeVar("_Message", "EbankPayAnswer", "TradeView", "RefundView", "BillAnswer")


def _read_strings(message_type: type[_Message], body: Mapping[str, Any]) -> _Message:
    """Builds a message whose fields are all strings named exactly as JHB names the body's members."""
    return message_type(**{field.name: _text(body, field.name) for field in fields(message_type)})  # type: ignore[call-arg]


def read_ebank_pay_answer(body: Mapping[str, Any]) -> EbankPayAnswer:
    return _read_strings(EbankPayAnswer, body)


def read_trade_view(body: Mapping[str, Any]) -> TradeView:
    return _read_strings(TradeView, body)


def read_refund_view(body: Mapping[str, Any]) -> RefundView:
    return _read_strings(RefundView, body)


def read_bill_answer(body: Mapping[str, Any]) -> BillAnswer:
    return _read_strings(BillAnswer, body)
