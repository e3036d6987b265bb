"""HBB's messages as they travel: ACP field names, response codes, and the two encodings.

Requests and notifications are `application/x-www-form-urlencoded`; synchronous answers are the
raw `k=v&k=v` string of ACP (values are not URL-encoded; the bank never puts `&` in a value of
an answer). Field rules follow BANKS.md "HBB" and research/protocols.md §2.2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode, urlsplit

from banksim.core.clock import SHANGHAI

VERSION = "5.1.0"
ENCODING = "UTF-8"
SIGN_METHOD_RSA = "01"
CURRENCY_CNY = "156"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=UTF-8"
ANSWER_CONTENT_TYPE = "text/plain; charset=UTF-8"


class TxnType(StrEnum):
    QUERY = "00"
    CONSUME = "01"
    REFUND = "04"
    PAYOUT = "12"
    UNBIND = "74"
    STATEMENT = "76"
    SEND_SMS = "77"
    TOKEN_QUERY = "78"
    BIND = "79"


class BizType(StrEnum):
    ONLINE_BANKING = "000201"
    QUICK_PAY = "000301"
    GENERIC = "000000"


class RespCode(StrEnum):
    SUCCESS = "00"
    TIMED_OUT = "03"
    UNKNOWN = "04"
    PROCESSING = "05"
    SIGNATURE = "11"
    DUPLICATE = "12"
    INVALID_CARD = "14"
    FORMAT = "30"
    NO_SUCH_ORDER = "34"
    ORIGINAL_INVALID = "35"
    REFUND_EXCEEDS = "36"
    INSUFFICIENT_FUNDS = "51"
    WRONG_PASSWORD = "55"
    NAME_MISMATCH = "56"
    OVER_LIMIT = "61"
    CARD_FROZEN = "62"
    SMS_CODE = "63"
    ELEMENTS_MISMATCH = "64"
    SMS_TRIES_EXCEEDED = "65"
    TOKEN_INVALID = "66"
    PAY_TIMEOUT = "69"
    UNAVAILABLE = "91"
    FILE_NOT_READY = "98"


RESP_MESSAGES: dict[RespCode, str] = {
    RespCode.SUCCESS: "成功",
    RespCode.TIMED_OUT: "交易通讯超时，请发起查询交易",
    RespCode.UNKNOWN: "交易状态未明，请查询对账结果",
    RespCode.PROCESSING: "交易已受理，请稍后查询交易结果",
    RespCode.SIGNATURE: "验证签名失败",
    RespCode.DUPLICATE: "重复交易",
    RespCode.INVALID_CARD: "无效卡号",
    RespCode.FORMAT: "报文格式错误",
    RespCode.NO_SUCH_ORDER: "查无此交易",
    RespCode.ORIGINAL_INVALID: "原交易不存在或状态不正确",
    RespCode.REFUND_EXCEEDS: "退货金额超过原交易可退金额",
    RespCode.INSUFFICIENT_FUNDS: "余额不足",
    RespCode.WRONG_PASSWORD: "密码错误次数超限",
    RespCode.NAME_MISMATCH: "收款人户名与账号不符",
    RespCode.OVER_LIMIT: "交易金额超限",
    RespCode.CARD_FROZEN: "卡状态不正确（已冻结）",
    RespCode.SMS_CODE: "短信验证码错误或已过期",
    RespCode.ELEMENTS_MISMATCH: "持卡人身份信息或手机号不匹配",
    RespCode.SMS_TRIES_EXCEEDED: "短信验证码错误次数超限",
    RespCode.TOKEN_INVALID: "标记(token)无效或已解除",
    RespCode.PAY_TIMEOUT: "订单已超过支付时限",
    RespCode.UNAVAILABLE: "银行系统暂不可用",
    RespCode.FILE_NOT_READY: "对账文件尚未生成（该日未日终）",
}

PENDING_CODES = frozenset({RespCode.TIMED_OUT, RespCode.UNKNOWN, RespCode.PROCESSING})

ORDER_ID = re.compile(r"^[0-9A-Za-z]{8,40}$")
MER_ID = re.compile(r"^[0-9A-Za-z]{1,15}$")
AMOUNT = re.compile(r"^[1-9][0-9]{0,11}$")
QUERY_ID = re.compile(r"^[0-9]{21}$")
TIMESTAMP = re.compile(r"^[0-9]{14}$")
# Only values like these are echoed into raw answers, so an answer never carries `&`.
_ECHO_SAFE = re.compile(r"^[0-9A-Za-z.\-]*$")
ECHOED_FIELDS = (
    "version",
    "encoding",
    "bizType",
    "txnType",
    "txnSubType",
    "accessType",
    "channelType",
    "merId",
    "orderId",
    "txnTime",
    "txnAmt",
    "currencyCode",
    "origQryId",
)


class FormatError(ValueError):
    """A request field is missing or malformed (respCode 30)."""


def message(code: RespCode) -> str:
    return RESP_MESSAGES[code]


def parse_form(body: bytes) -> dict[str, str]:
    """Decode a form body; a field sent twice is a format error rather than a silent choice."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError("the body is not UTF-8") from error
    pairs = parse_qsl(text, keep_blank_values=True)
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise FormatError("a field appears twice")
    return fields


def encode_answer(fields: Mapping[str, str]) -> str:
    """The raw ACP answer string: `k=v` joined by `&`, keys sorted, values not URL-encoded."""
    for key, value in fields.items():
        if "&" in value:
            raise ValueError(f"field {key} would break the raw answer")
    return "&".join(f"{key}={fields[key]}" for key in sorted(fields))


def parse_answer(text: str) -> dict[str, str]:
    """Split a raw answer on `&`, then each pair on its first `=` (values may contain `=`)."""
    fields: dict[str, str] = {}
    for pair in text.split("&"):
        key, _, value = pair.partition("=")
        fields[key] = value
    return fields


def encode_form(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields).encode("ascii")


def echo(request: Mapping[str, str]) -> dict[str, str]:
    return {k: request[k] for k in ECHOED_FIELDS if k in request and _ECHO_SAFE.match(request[k])}


def require(fields: Mapping[str, str], *names: str) -> None:
    missing = [name for name in names if not fields.get(name)]
    if missing:
        raise FormatError(f"missing {', '.join(missing)}")


def expect(fields: Mapping[str, str], name: str, *allowed: str) -> None:
    if fields.get(name) not in allowed:
        raise FormatError(f"{name} must be {' or '.join(allowed)}")


def parse_time(value: str, name: str) -> datetime:
    """`YYYYMMDDhhmmss` in Beijing time → an aware datetime."""
    if not TIMESTAMP.match(value):
        raise FormatError(f"{name} must be YYYYMMDDhhmmss")
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)
    except ValueError as error:
        raise FormatError(f"{name} is not a valid time") from error


def parse_amount(value: str) -> int:
    if not AMOUNT.match(value):
        raise FormatError("txnAmt must be a positive whole number of fen")
    return int(value)


def check_url(value: str, name: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FormatError(f"{name} must be an http(s) URL")


def beijing_stamp(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S")
