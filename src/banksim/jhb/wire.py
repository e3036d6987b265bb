"""JHB's request bodies as frozen values, and the pure functions that read them off the wire.

Amounts cross the wire as yuan strings with exactly two decimals and live inside as integer fen;
times are `YYYYMMDDhhmmss` in Beijing time. Every parser raises `JhbError` with the `ret_code`
the answer must carry, so services never see an unchecked field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from banksim.jhb.codes import JhbError, RetCode

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y%m%d%H%M%S"

# At most 12 integer digits keeps every amount far inside SQLite's 64-bit integers.
_YUAN = re.compile(r"(0|[1-9][0-9]{0,11})\.([0-9]{2})")
_ORDER_NO = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_TIME = re.compile(r"[0-9]{14}")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_VERIFY_CODE = re.compile(r"[0-9]{6}")
# `id_type` "0" is the resident ID card (居民身份证), the only kind the simulator binds.
ID_TYPE_RESIDENT = "0"


def parse_yuan(value: Any) -> int:
    """`"12.34"` → 1234 fen. Anything but a positive yuan string with two decimals is refused."""
    if not isinstance(value, str):
        raise JhbError(RetCode.AMOUNT_INVALID, 'amount must be a string such as "12.34"')
    match = _YUAN.fullmatch(value)
    if match is None:
        raise JhbError(RetCode.AMOUNT_INVALID, f"amount {value!r} is not yuan with two decimals")
    amount_fen = int(match.group(1)) * 100 + int(match.group(2))
    if amount_fen <= 0:
        raise JhbError(RetCode.AMOUNT_INVALID, "amount must be greater than zero")
    return amount_fen


def format_yuan(amount_fen: int) -> str:
    """1234 fen → `"12.34"`."""
    sign = "-" if amount_fen < 0 else ""
    whole, cents = divmod(abs(amount_fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def format_time(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or _TIME.fullmatch(value) is None:
        raise JhbError(RetCode.MESSAGE_MALFORMED, f"{field} must be YYYYMMDDhhmmss")
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=BEIJING)
    except ValueError as exc:
        raise JhbError(RetCode.MESSAGE_MALFORMED, f"{field} is not a real time") from exc


def _text(body: Mapping[str, Any], field: str, max_length: int, *, required: bool = True) -> str:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise JhbError(RetCode.MESSAGE_MALFORMED, f"{field} is required")
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise JhbError(RetCode.MESSAGE_MALFORMED, f"{field} must be a string of at most {max_length}")
    return value


def _order_no(body: Mapping[str, Any], field: str, *, required: bool = True) -> str:
    value = _text(body, field, 32, required=required)
    if value and _ORDER_NO.fullmatch(value) is None:
        raise JhbError(RetCode.MESSAGE_MALFORMED, f"{field} allows 1-32 letters, digits, _ and -")
    return value


def _url(body: Mapping[str, Any], field: str, *, required: bool = True) -> str:
    value = _text(body, field, 512, required=required)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise JhbError(RetCode.MESSAGE_MALFORMED, f"{field} must be an http(s) URL")
    return value


@dataclass(frozen=True, slots=True)
class EbankPayRequest:
    out_trade_no: str
    amount_fen: int
    subject: str
    notify_url: str
    return_url: str
    expire_at: datetime | None


@dataclass(frozen=True, slots=True)
class TradeRef:
    """Names one payment, by the partner's order number or by JHB's trade number."""

    out_trade_no: str
    jhb_trade_no: str


@dataclass(frozen=True, slots=True)
class RefundRequest:
    out_refund_no: str
    original: TradeRef
    amount_fen: int
    reason: str
    notify_url: str


@dataclass(frozen=True, slots=True)
class RefundRef:
    out_refund_no: str
    jhb_refund_no: str


def read_ebank_pay(body: Mapping[str, Any]) -> EbankPayRequest:
    expire_time = body.get("expire_time")
    return EbankPayRequest(
        out_trade_no=_order_no(body, "out_trade_no"),
        amount_fen=parse_yuan(body.get("amount")),
        subject=_text(body, "subject", 128),
        notify_url=_url(body, "notify_url"),
        return_url=_url(body, "return_url"),
        expire_at=None if expire_time in (None, "") else parse_time(expire_time, "expire_time"),
    )


def read_trade_ref(body: Mapping[str, Any], out_field: str = "out_trade_no") -> TradeRef:
    ref = TradeRef(
        out_trade_no=_order_no(body, out_field, required=False),
        jhb_trade_no=_text(body, "jhb_trade_no", 32, required=False),
    )
    if not ref.out_trade_no and not ref.jhb_trade_no:
        raise JhbError(RetCode.MESSAGE_MALFORMED, f"{out_field} or jhb_trade_no is required")
    return ref


def read_refund(body: Mapping[str, Any]) -> RefundRequest:
    return RefundRequest(
        out_refund_no=_order_no(body, "out_refund_no"),
        original=read_trade_ref(body, "orig_out_trade_no"),
        amount_fen=parse_yuan(body.get("amount")),
        reason=_text(body, "reason", 128, required=False),
        notify_url=_url(body, "notify_url", required=False),
    )


def read_refund_ref(body: Mapping[str, Any]) -> RefundRef:
    ref = RefundRef(
        out_refund_no=_order_no(body, "out_refund_no", required=False),
        jhb_refund_no=_text(body, "jhb_refund_no", 32, required=False),
    )
    if not ref.out_refund_no and not ref.jhb_refund_no:
        raise JhbError(RetCode.MESSAGE_MALFORMED, "out_refund_no or jhb_refund_no is required")
    return ref


@dataclass(frozen=True, slots=True)
class BindApplyRequest:
    card_no: str
    acct_name: str
    id_no: str
    bind_mob: str
    user_id: str

    def __repr__(self) -> str:
        # The four elements never reach logs.
        return f"BindApplyRequest(card=…{self.card_no[-4:]})"


@dataclass(frozen=True, slots=True)
class BindConfirmRequest:
    token: str
    verify_code: str

    def __repr__(self) -> str:
        return "BindConfirmRequest(token=…, verify_code=<redacted>)"


@dataclass(frozen=True, slots=True)
class QuickPayRequest:
    no_agree: str
    out_trade_no: str
    amount_fen: int
    subject: str
    notify_url: str


def read_bind_apply(body: Mapping[str, Any]) -> BindApplyRequest:
    id_type = body.get("id_type")
    if id_type not in (None, "", ID_TYPE_RESIDENT):
        raise JhbError(RetCode.MESSAGE_MALFORMED, 'id_type must be "0" (resident ID card)')
    bind_mob = _text(body, "bind_mob", 11)
    if _MOBILE.fullmatch(bind_mob) is None:
        raise JhbError(RetCode.MESSAGE_MALFORMED, "bind_mob must be an 11-digit mainland mobile number")
    return BindApplyRequest(
        # A card number of the wrong shape is an invalid card (1065), not a malformed message.
        card_no=_text(body, "card_no", 32).replace(" ", ""),
        acct_name=_text(body, "acct_name", 64),
        id_no=_text(body, "id_no", 18),
        bind_mob=bind_mob,
        user_id=_text(body, "user_id", 64, required=False),
    )


def read_bind_confirm(body: Mapping[str, Any]) -> BindConfirmRequest:
    verify_code = _text(body, "verify_code", 6)
    if _VERIFY_CODE.fullmatch(verify_code) is None:
        raise JhbError(RetCode.MESSAGE_MALFORMED, "verify_code must be 6 digits")
    return BindConfirmRequest(token=_text(body, "token", 64), verify_code=verify_code)


def read_no_agree(body: Mapping[str, Any]) -> str:
    return _text(body, "no_agree", 32)


def read_quick_pay(body: Mapping[str, Any]) -> QuickPayRequest:
    return QuickPayRequest(
        no_agree=_text(body, "no_agree", 32),
        out_trade_no=_order_no(body, "out_trade_no"),
        amount_fen=parse_yuan(body.get("amount")),
        subject=_text(body, "subject", 128),
        notify_url=_url(body, "notify_url"),
    )
