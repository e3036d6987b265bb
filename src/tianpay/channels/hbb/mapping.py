"""Pure translation between the platform's orders and HBB's ACP messages, and HBB's status tables.

No I/O and no keys here: requests are built unsigned, answers arrive already verified. The two
tables map every ``respCode`` the adapter knows to an Outcome; a code it does not know is UNKNOWN,
never FAILED, because only an explicit answer from the bank may end a payment (STYLE.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Final

from tianpay.channels.hbb.wire import (
    CURRENCY_CNY,
    ORDER_ID,
    AcpResult,
    ConsumeRequest,
    QueryRequest,
    RefundRequest,
    RespCode,
    TxnType,
    WireError,
)
from tianpay.domain.money import Currency, Money
from tianpay.ports.channels import BankNotification, ChannelResult, OnlineBankingOrder, Outcome, RefundOrder

# Beijing time has had no daylight saving since 1991, so a fixed offset is exact (BANKS.md "HBB":
# txnTime and payTimeout are Beijing time).
BEIJING: Final = timezone(timedelta(hours=8), name="Asia/Shanghai")
_STAMP_FORMAT: Final = "%Y%m%d%H%M%S"

# Platform ids are ``<3-letter kind>_<ULID>`` (domain/ids.py, adapters/ids.py).
_PLATFORM_ID: Final = re.compile(r"([a-z]{3})_([0-9A-Za-z]+)")

S, F, P, U, N = Outcome.SUCCEEDED, Outcome.FAILED, Outcome.PENDING, Outcome.UNKNOWN, Outcome.NOT_SUBMITTED

# ``respCode`` of a transaction's own answer (refund) and of a notification (BANKS.md "HBB").
TRANSACTION_OUTCOMES: Final[Mapping[RespCode, Outcome]] = {
    RespCode.SUCCESS: S,
    RespCode.PARTIAL_SUCCESS: S,
    # 03/04/05: the bank does not yet know or say; only a query can tell (BANKS.md "HBB").
    RespCode.TIMED_OUT: U,
    RespCode.STATE_UNKNOWN: U,
    RespCode.ACCEPTED: U,
    RespCode.SIGNATURE_ERROR: F,
    # A duplicate orderId says the order already exists, not how it ended: the first one may have
    # succeeded, so the answer is resolved by querying that order, never by calling it failed.
    RespCode.DUPLICATE_ORDER: U,
    RespCode.INVALID_CARD: F,
    RespCode.FORMAT_ERROR: F,
    # "No such transaction" is an absence, not a failure (ACP's own demo: query again later or
    # trust reconciliation), so it never ends anything.
    RespCode.NO_SUCH_TRANSACTION: U,
    RespCode.ORIGINAL_INVALID: F,
    RespCode.REFUND_EXCEEDS_ORIGINAL: F,
    RespCode.INSUFFICIENT_FUNDS: F,
    RespCode.LOGIN_LOCKED_OUT: F,
    RespCode.OVER_LIMIT: F,
    RespCode.CARD_FROZEN: F,
    RespCode.SMS_CODE_WRONG: F,
    RespCode.ELEMENTS_MISMATCH: F,
    RespCode.PAY_TIMEOUT: F,
    # 91: refused before processing, so another channel may be tried (BANKS.md magic amounts).
    RespCode.BANK_UNAVAILABLE: N,
}

# ``origRespCode`` of a successful query: the fate of the original transaction (BANKS.md "HBB":
# 00 success, 03/04/05 still processing, failure codes failed).
ORIGINAL_OUTCOMES: Final[Mapping[RespCode, Outcome]] = {
    RespCode.SUCCESS: S,
    RespCode.PARTIAL_SUCCESS: S,
    RespCode.TIMED_OUT: P,
    RespCode.STATE_UNKNOWN: P,
    RespCode.ACCEPTED: P,
    RespCode.SIGNATURE_ERROR: F,
    RespCode.DUPLICATE_ORDER: U,
    RespCode.INVALID_CARD: F,
    RespCode.FORMAT_ERROR: F,
    RespCode.NO_SUCH_TRANSACTION: U,
    RespCode.ORIGINAL_INVALID: F,
    RespCode.REFUND_EXCEEDS_ORIGINAL: F,
    RespCode.INSUFFICIENT_FUNDS: F,
    RespCode.LOGIN_LOCKED_OUT: F,
    RespCode.OVER_LIMIT: F,
    RespCode.CARD_FROZEN: F,
    RespCode.SMS_CODE_WRONG: F,
    RespCode.ELEMENTS_MISMATCH: F,
    RespCode.PAY_TIMEOUT: F,
    RespCode.BANK_UNAVAILABLE: N,
}

# How long after its ``txnTime`` HBB may still answer "no such transaction" (34) about a back-office
# order (a refund, a payout) that it may yet record. ACP's query guidance for back-office money
# transactions (the UnionPay demo ``Form_6_5_Query``, 2015-09) queries 1, 2, 4, 8, 16 and 32 s after
# the request and stops on any answer but 03/04/05, treating it as final; HBB, like ACP, records such
# an order before it answers (docs/banks/hbb.md "Refunds"). After this window, far beyond any transport
# delay, a 34 proves the order never reached HBB: NOT_SUBMITTED, nothing moved, nothing will. Online
# banking is different (the payer's browser may post the form until ``payTimeout``): the gateway
# service decides that one from the payment's expiry (docs/gateway.md "Absent orders").
ABSENT_ORDER_FINAL_AFTER: Final = timedelta(minutes=30)

KIND_PAYMENT: Final = "payment"
KIND_REFUND: Final = "refund"
_KINDS: Final[Mapping[str, str]] = {TxnType.CONSUME.value: KIND_PAYMENT, TxnType.REFUND.value: KIND_REFUND}


def transaction_outcome(code: str) -> Outcome:
    known = RespCode.parse(code)
    return TRANSACTION_OUTCOMES[known] if known is not None else Outcome.UNKNOWN


def original_outcome(code: str) -> Outcome:
    known = RespCode.parse(code)
    return ORIGINAL_OUTCOMES[known] if known is not None else Outcome.UNKNOWN


# Ids and times


def order_id_for(platform_id: str) -> str:
    """HBB's ``orderId`` for an attempt or refund id: the id without its underscore.

    ``att_01JD…`` becomes ``att01JD…``: ACP allows letters and digits only (8–40), and keeping the
    3-letter kind makes the mapping reversible and a bank statement line readable.
    """
    match = _PLATFORM_ID.fullmatch(platform_id)
    if match is None:
        raise ValueError("a platform id is '<kind>_<letters and digits>'")
    order_id = match.group(1) + match.group(2)
    if not ORDER_ID.fullmatch(order_id):
        raise ValueError("the id does not fit HBB's orderId (8–40 letters or digits)")
    return order_id


def platform_id_for(order_id: str) -> str:
    """The attempt or refund id an HBB ``orderId`` was derived from (the inverse of order_id_for)."""
    if not ORDER_ID.fullmatch(order_id) or not re.fullmatch(r"[a-z]{3}", order_id[:3]):
        raise ValueError("not an orderId this platform made")
    return f"{order_id[:3]}_{order_id[3:]}"


def beijing_stamp(moment: datetime) -> str:
    """``YYYYMMDDhhmmss`` in Beijing time, as ACP's ``txnTime`` and ``payTimeout`` are written."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("HBB times are computed from timezone-aware datetimes only")
    return moment.astimezone(BEIJING).strftime(_STAMP_FORMAT)


def fen(amount: Money) -> str:
    """``txnAmt``: a positive whole number of fen."""
    if amount.currency is not Currency.CNY:
        raise ValueError("HBB collects CNY only")
    if not amount.is_positive:
        raise ValueError("HBB amounts are positive")
    return str(amount.minor)


# Requests


def consume_request(order: OnlineBankingOrder, *, mer_id: str, cert_id: str) -> ConsumeRequest:
    return ConsumeRequest(
        certId=cert_id,
        merId=mer_id,
        orderId=order_id_for(order.attempt_id),
        txnTime=beijing_stamp(order.created_at),
        txnAmt=fen(order.amount),
        frontUrl=order.return_url,
        backUrl=order.notify_url,
        payTimeout=beijing_stamp(order.expires_at),
        merAbbr=order.merchant_name,
    )


def query_request(platform_id: str, created_at: datetime, *, mer_id: str, cert_id: str) -> QueryRequest:
    return QueryRequest(
        certId=cert_id, merId=mer_id, orderId=order_id_for(platform_id), txnTime=beijing_stamp(created_at)
    )


def refund_request(order: RefundOrder, *, mer_id: str, cert_id: str) -> RefundRequest:
    return RefundRequest(
        certId=cert_id,
        merId=mer_id,
        orderId=order_id_for(order.refund_id),
        txnTime=beijing_stamp(order.created_at),
        txnAmt=fen(order.amount),
        origQryId=order.payment_bank_reference,
        backUrl=order.notify_url,
    )


# Answers


def answers_request(result: AcpResult, *, mer_id: str, order_id: str) -> bool:
    """Whether a verified answer is about the order we asked about (a misrouted answer is not)."""
    return result.merId == mer_id and result.orderId == order_id


def transaction_result(result: AcpResult) -> ChannelResult:
    """A refund's synchronous answer or a notification, mapped by its ``respCode``."""
    return _channel_result(transaction_outcome(result.respCode), result, result.respCode, result.respMsg)


def query_result(result: AcpResult) -> ChannelResult:
    """A query answer: ``respCode`` is about the query, ``origRespCode`` about the transaction.

    A query that did not succeed (``respCode`` other than 00, "no such transaction" included)
    says nothing final about the transaction, so it is UNKNOWN and the re-query job asks again.
    """
    if result.respCode != RespCode.SUCCESS:
        return ChannelResult(Outcome.UNKNOWN, bank_code=result.respCode, bank_message=result.respMsg)
    if result.origRespCode is None:
        return ChannelResult(
            Outcome.UNKNOWN, bank_code=result.respCode, bank_message="query answer without origRespCode"
        )
    outcome = original_outcome(result.origRespCode)
    return _channel_result(outcome, result, result.origRespCode, result.origRespMsg)


def settle_absent_order(result: ChannelResult, *, age: timedelta) -> ChannelResult:
    """A back-office order's query result, with HBB's "no such transaction" made final after the window.

    ``age`` is how long ago the order's ``txnTime`` was. Only the query's own ``34`` turns into
    NOT_SUBMITTED, and only once ``age`` reaches ABSENT_ORDER_FINAL_AFTER; everything else, a timeout
    or an untrusted answer above all, passes through unchanged.
    """
    if result.outcome is not Outcome.UNKNOWN or result.bank_code != RespCode.NO_SUCH_TRANSACTION:
        return result
    if age < ABSENT_ORDER_FINAL_AFTER:
        return result
    return ChannelResult(
        Outcome.NOT_SUBMITTED,
        bank_code=result.bank_code,
        bank_message=f"HBB has no record of the order {ABSENT_ORDER_FINAL_AFTER} after it was sent",
    )


def notification(result: AcpResult, *, mer_id: str) -> BankNotification:
    """A verified back notification as the platform's BankNotification; raises WireError if not ours."""
    if result.merId != mer_id:
        raise WireError("the notification is for another merchant")
    kind = _KINDS.get(result.txnType)
    if kind is None:
        raise WireError("the notification is not about a consume or a refund")
    try:
        platform_reference = platform_id_for(result.orderId)
    except ValueError as error:
        raise WireError("the notification's orderId is not one of ours") from error
    return BankNotification(kind=kind, platform_reference=platform_reference, result=transaction_result(result))


def _channel_result(outcome: Outcome, result: AcpResult, code: str, message: str) -> ChannelResult:
    return ChannelResult(
        outcome=outcome,
        bank_reference=result.queryId,
        amount=_amount(result),
        bank_code=code,
        bank_message=message,
        settle_date=result.settleDate if outcome is Outcome.SUCCEEDED else None,
    )


def _amount(result: AcpResult) -> Money | None:
    if result.txnAmt is None:
        return None
    if result.currencyCode not in (None, CURRENCY_CNY):
        raise WireError("HBB answered in a currency other than CNY")
    return Money.cny(result.txnAmt)
