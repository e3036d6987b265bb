"""HBB's messages as they travel: ACP 5.1.0 field names, codes, and the two encodings.

Requests and notifications are ``application/x-www-form-urlencoded``; synchronous answers are the
raw ``k=v&k=v`` string of ACP (BANKS.md "HBB"). Request types keep the bank's own field names
(camelCase), so the code reads like the bank's document and nothing is lost in a renaming layer.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import parse_qsl, urlencode

VERSION: Final = "5.1.0"
ENCODING: Final = "UTF-8"
SIGN_METHOD_RSA: Final = "01"
CHANNEL_TYPE_INTERNET: Final = "07"
ACCESS_TYPE_MERCHANT: Final = "0"
CURRENCY_CNY: Final = "156"

FRONT_TRANS_PATH: Final = "/gateway/api/frontTransReq.do"
BACK_TRANS_PATH: Final = "/gateway/api/backTransReq.do"
QUERY_TRANS_PATH: Final = "/gateway/api/queryTrans.do"

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"

ORDER_ID: Final = re.compile(r"[0-9A-Za-z]{8,40}")
QUERY_ID: Final = re.compile(r"[0-9]{21}")
AMOUNT: Final = re.compile(r"[0-9]{1,12}")


class TxnType(StrEnum):
    """``txnType`` values HBB uses (BANKS.md "HBB")."""

    QUERY = "00"
    CONSUME = "01"
    REFUND = "04"
    PAYOUT = "12"
    STATEMENT = "76"
    SEND_SMS = "77"
    BIND = "79"


class TxnSubType(StrEnum):
    DEFAULT = "00"
    CONSUME = "01"


class BizType(StrEnum):
    GENERIC = "000000"
    ONLINE_BANKING = "000201"
    QUICK_PAY = "000301"


class RespCode(StrEnum):
    """Every ``respCode`` / ``origRespCode`` the adapter recognises.

    BANKS.md "HBB" lists 00, 03/04/05, 11, 12, 14, 51, 61, 62, 63, 64 and 91 ("failure codes
    include"); the rest are ACP codes HBB also answers with (docs/banks/hbb-adapter.md lists where
    each one comes from). ``A6`` is ACP's "success with defects" (research/protocols.md §2.4).
    """

    SUCCESS = "00"
    TIMED_OUT = "03"
    STATE_UNKNOWN = "04"
    ACCEPTED = "05"
    SIGNATURE_ERROR = "11"
    DUPLICATE_ORDER = "12"
    INVALID_CARD = "14"
    FORMAT_ERROR = "30"
    NO_SUCH_TRANSACTION = "34"
    ORIGINAL_INVALID = "35"
    REFUND_EXCEEDS_ORIGINAL = "36"
    INSUFFICIENT_FUNDS = "51"
    LOGIN_LOCKED_OUT = "55"
    OVER_LIMIT = "61"
    CARD_FROZEN = "62"
    SMS_CODE_WRONG = "63"
    ELEMENTS_MISMATCH = "64"
    PAY_TIMEOUT = "69"
    BANK_UNAVAILABLE = "91"
    PARTIAL_SUCCESS = "A6"

    @classmethod
    def parse(cls, value: str) -> RespCode | None:
        """The code, or None for one the adapter does not know (which then maps to UNKNOWN)."""
        try:
            return cls(value)
        except ValueError:
            return None


class WireError(ValueError):
    """A message that is not well-formed ACP (bad encoding, a field twice, a malformed value)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AcpRequest:
    """The fields every ACP request carries (BANKS.md "HBB", common fields), defined once.

    Each request type (here and in ``quickpay_wire``) extends it with its own fields and fixes its
    ``txnType``/``txnSubType``/``bizType`` by default values, so the protocol constants (version,
    encoding, sign method, channel and access type) are written in one place only. ``certId`` is
    carried for completeness: the signer sets it again from its own certificate.
    """

    certId: str
    merId: str
    orderId: str
    txnTime: str
    txnType: str
    txnSubType: str
    bizType: str
    version: str = VERSION
    encoding: str = ENCODING
    signMethod: str = SIGN_METHOD_RSA
    channelType: str = CHANNEL_TYPE_INTERNET
    accessType: str = ACCESS_TYPE_MERCHANT


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumeRequest(AcpRequest):
    """Online-banking consume posted by the payer's browser to ``frontTransReq.do``."""

    txnAmt: str
    frontUrl: str
    backUrl: str
    payTimeout: str
    # ``merAbbr`` is ACP's merchant short name; HBB shows it on its confirmation page.
    merAbbr: str = ""
    txnType: str = TxnType.CONSUME.value
    txnSubType: str = TxnSubType.CONSUME.value
    bizType: str = BizType.ONLINE_BANKING.value
    currencyCode: str = CURRENCY_CNY


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryRequest(AcpRequest):
    """Single-transaction query (``txnType=00``) by ``orderId`` + ``txnTime`` on ``queryTrans.do``."""

    txnType: str = TxnType.QUERY.value
    txnSubType: str = TxnSubType.DEFAULT.value
    bizType: str = BizType.GENERIC.value
    # HBB's query needs no channel (docs/banks/hbb.md lists what a query needs), so none is sent:
    # an empty field is left out by request_fields.
    channelType: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundRequest(AcpRequest):
    """Refund (退货, ``txnType=04``) of a consume named by its ``queryId``, on ``backTransReq.do``."""

    txnAmt: str
    origQryId: str
    backUrl: str
    txnType: str = TxnType.REFUND.value
    txnSubType: str = TxnSubType.DEFAULT.value
    bizType: str = BizType.ONLINE_BANKING.value
    currencyCode: str = CURRENCY_CNY


def request_fields(request: AcpRequest) -> dict[str, str]:
    """Any request as ACP fields; empty optional fields are left out rather than sent blank."""
    return {f.name: value for f in dataclasses.fields(request) if (value := getattr(request, f.name)) != ""}


@dataclass(frozen=True, slots=True)
class AcpResult:
    """The fields of an answer or notification that the adapter reads, checked for shape."""

    respCode: str
    respMsg: str
    merId: str
    orderId: str
    txnType: str
    txnTime: str
    queryId: str | None
    txnAmt: int | None
    currencyCode: str | None
    settleDate: str | None
    origRespCode: str | None
    origRespMsg: str
    origQryId: str | None


def parse_result(fields: Mapping[str, str]) -> AcpResult:
    """Reads an answer's fields; raises WireError when one the adapter relies on is malformed."""
    resp_code = fields.get("respCode", "")
    if not resp_code:
        raise WireError("respCode is missing")
    query_id = fields.get("queryId") or None
    if query_id is not None and not QUERY_ID.fullmatch(query_id):
        raise WireError("queryId is not 21 digits")
    amount = fields.get("txnAmt") or None
    if amount is not None and not AMOUNT.fullmatch(amount):
        raise WireError("txnAmt is not a whole number of fen")
    return AcpResult(
        respCode=resp_code,
        respMsg=fields.get("respMsg", ""),
        merId=fields.get("merId", ""),
        orderId=fields.get("orderId", ""),
        txnType=fields.get("txnType", ""),
        txnTime=fields.get("txnTime", ""),
        queryId=query_id,
        txnAmt=int(amount) if amount is not None else None,
        currencyCode=fields.get("currencyCode") or None,
        settleDate=fields.get("settleDate") or None,
        origRespCode=fields.get("origRespCode") or None,
        origRespMsg=fields.get("origRespMsg", ""),
        origQryId=fields.get("origQryId") or None,
    )


def encode_form(fields: Mapping[str, str]) -> bytes:
    """A form body (requests, and notifications in tests); UTF-8 percent-encoding."""
    return urlencode(dict(fields), encoding="utf-8").encode("ascii")


def decode_form(body: bytes) -> dict[str, str]:
    """Decodes a form body strictly: UTF-8 only, and a field sent twice is an error, not a choice."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WireError("the body is not UTF-8") from error
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict")
    except (ValueError, UnicodeDecodeError) as error:
        raise WireError("the body is not a form") from error
    return _unique(pairs)


def decode_answer(text: str) -> dict[str, str]:
    """Splits a raw ACP answer ``k=v&k=v`` into fields; values are not URL-decoded.

    A value may contain ``=`` (base64, PEM) and, as in ACP, a value wrapped in ``{…}`` may contain
    ``&`` (e.g. ``customerInfo``); the split honours the braces the way the UnionPay SDK does.
    """
    if not text:
        raise WireError("the answer is empty")
    pairs: list[tuple[str, str]] = []
    position = 0
    while position <= len(text):
        equals = text.find("=", position)
        if equals < 0:
            raise WireError("a field has no '='")
        key = text[position:equals]
        if not key or "&" in key:
            raise WireError("a field has no name")
        end = _value_end(text, equals + 1)
        pairs.append((key, text[equals + 1 : end]))
        position = end + 1
    return _unique(pairs)


def _value_end(text: str, start: int) -> int:
    if text.startswith("{", start):
        depth = 0
        for index in range(start, len(text)):
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                depth -= 1
                if depth == 0:
                    after = index + 1
                    if after < len(text) and text[after] != "&":
                        raise WireError("text follows a braced value")
                    return after
        raise WireError("a braced value is not closed")
    ampersand = text.find("&", start)
    return len(text) if ampersand < 0 else ampersand


def _unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise WireError("a field appears twice")
    return fields
