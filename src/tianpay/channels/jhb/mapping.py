"""Pure translation between the platform's types and JHB's wire: amounts, times, codes, statuses.

Every JHB `ret_code` and status word maps to exactly one outcome in a table; anything JHB has not
documented maps to UNKNOWN, because "only explicit failure and explicit success from the connector
shall be marked as success or failure" (STYLE.md). No I/O here, so every rule is unit-tested.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from tianpay.channels.jhb import wire
from tianpay.channels.jhb.wire import RefundStatus, RetCode, TradeStatus
from tianpay.domain.money import Currency, Money
from tianpay.ports.channels import (
    ChannelResult,
    OnlineBankingOrder,
    Outcome,
    RedirectForm,
    RefundOrder,
)

# JHB keeps Beijing time on the wire (`YYYYMMDDhhmmss`, docs/banks/jhb.md); China has no DST.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y%m%d%H%M%S"

# Yuan with exactly two decimals, no sign, no exponent, no leading zeros (BANKS.md, JHB section).
# Fifteen integer digits is far beyond any amount the platform books and keeps parsing cheap.
_YUAN = re.compile(r"(0|[1-9][0-9]{0,14})\.([0-9]{2})")
# JHB's order numbers: 1–32 letters, digits, `_` and `-` (docs/banks/jhb.md).
_ORDER_NO = re.compile(r"[A-Za-z0-9_\-]{1,32}")
SUBJECT_MAX_CHARS = 128
REASON_MAX_CHARS = 128

# How long a query may answer "not found" before we conclude JHB never accepted the request.
# BANKS.md gives this rule for BCB (30 minutes) and is silent for JHB; JHB's pages close an unpaid
# order after 30 minutes too, so after that nothing can still appear and move money.
NOT_FOUND_FINAL_AFTER = timedelta(minutes=30)


class NotAcceptable(ValueError):
    """A request JHB would refuse on its shape alone; it is never sent."""


# Amounts


def money_to_yuan(amount: Money) -> str:
    """1234 fen → `"12.34"`. JHB amounts are CNY and never negative."""
    if amount.currency is not Currency.CNY:
        raise NotAcceptable(f"JHB settles CNY only, not {amount.currency.code}")
    if amount.minor < 0:
        raise NotAcceptable("JHB amounts are never negative")
    whole, fen = divmod(amount.minor, 100)
    return f"{whole}.{fen:02d}"


def yuan_to_money(text: str) -> Money:
    """`"12.34"` → 1234 fen, by integer parsing (never float); anything else raises ValueError."""
    match = _YUAN.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a yuan amount with exactly two decimals")
    return Money.cny(int(match.group(1)) * 100 + int(match.group(2)))


# Times


def to_wire_time(moment: datetime) -> str:
    """An aware datetime in JHB's Beijing `YYYYMMDDhhmmss`; a naive one is taken as UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(BEIJING).strftime(TIME_FORMAT)


# Codes and statuses

RET_CODE_OUTCOMES: Mapping[RetCode, Outcome] = MappingProxyType(
    {
        RetCode.SUCCESS: Outcome.SUCCEEDED,
        # JHB could not authenticate or read the request, so it processed nothing. Sealed answers
        # with these codes are definite; the unsealed ones JHB usually sends prove nothing and
        # never reach this table (channel.py treats them as UNKNOWN).
        RetCode.SIGNATURE_INVALID: Outcome.FAILED,
        RetCode.DECRYPT_FAILED: Outcome.FAILED,
        RetCode.PARTNER_UNKNOWN: Outcome.FAILED,
        RetCode.MESSAGE_MALFORMED: Outcome.FAILED,
        RetCode.AMOUNT_INVALID: Outcome.FAILED,
        RetCode.SERVICE_UNKNOWN: Outcome.FAILED,
        # A duplicate says the number is taken, not what became of the order that took it (it may
        # be paid): failing over on it could charge the payer twice, so the query decides.
        RetCode.ORDER_DUPLICATE: Outcome.UNKNOWN,
        RetCode.ORDER_NOT_FOUND: Outcome.FAILED,
        RetCode.ORDER_CLOSED: Outcome.FAILED,
        RetCode.REFUND_DUPLICATE: Outcome.UNKNOWN,
        RetCode.REFUND_EXCEEDS_PAYMENT: Outcome.FAILED,
        RetCode.ORIGINAL_NOT_PAID: Outcome.FAILED,
        # Only `bill.download` answers it, and moves no money; the statement adapter reads it as
        # "not ready yet" (statement.py), never through this table.
        RetCode.BILL_NOT_READY: Outcome.FAILED,
        RetCode.INSUFFICIENT_FUNDS: Outcome.FAILED,
        RetCode.OVER_LIMIT: Outcome.FAILED,
        RetCode.CARD_FROZEN: Outcome.FAILED,
        RetCode.SMS_WRONG: Outcome.FAILED,
        RetCode.ELEMENTS_MISMATCH: Outcome.FAILED,
        RetCode.CARD_INVALID: Outcome.FAILED,
        RetCode.OUT_OF_MANDATE: Outcome.FAILED,
        # Magic 91 (BANKS.md): refused before processing, safe to route to another bank.
        RetCode.BANK_UNAVAILABLE: Outcome.NOT_SUBMITTED,
        RetCode.PROCESSING: Outcome.PENDING,
    }
)

TRADE_STATUS_OUTCOMES: Mapping[TradeStatus, Outcome] = MappingProxyType(
    {
        # The order exists and the payer has not paid yet: money may still move.
        TradeStatus.WAIT_PAY: Outcome.PENDING,
        TradeStatus.PROCESSING: Outcome.PENDING,
        TradeStatus.SUCCESS: Outcome.SUCCEEDED,
        TradeStatus.FAILED: Outcome.FAILED,
        # Closed unpaid at `expire_time`: JHB will never take money for it.
        TradeStatus.CLOSED: Outcome.FAILED,
    }
)

REFUND_STATUS_OUTCOMES: Mapping[RefundStatus, Outcome] = MappingProxyType(
    {
        RefundStatus.PROCESSING: Outcome.PENDING,
        RefundStatus.SUCCESS: Outcome.SUCCEEDED,
        RefundStatus.FAILED: Outcome.FAILED,
    }
)


def outcome_for_ret_code(code: str) -> Outcome:
    """The table above; an undocumented `1xxx` is a failure (BANKS.md), anything else UNKNOWN."""
    try:
        return RET_CODE_OUTCOMES[RetCode(code)]
    except ValueError:
        pass
    if len(code) == 4 and code.isascii() and code.isdigit() and code.startswith("1"):
        return Outcome.FAILED
    return Outcome.UNKNOWN


def outcome_for_trade_status(status: str) -> Outcome:
    try:
        return TRADE_STATUS_OUTCOMES[TradeStatus(status)]
    except ValueError:
        return Outcome.UNKNOWN


def outcome_for_refund_status(status: str) -> Outcome:
    try:
        return REFUND_STATUS_OUTCOMES[RefundStatus(status)]
    except ValueError:
        return Outcome.UNKNOWN


def outcome_for_not_found(age: timedelta) -> Outcome:
    """A query that found no such order: unknown while the request may still be in flight."""
    return Outcome.NOT_SUBMITTED if age >= NOT_FOUND_FINAL_AFTER else Outcome.UNKNOWN


# Requests


def _order_no(value: str, what: str) -> str:
    if _ORDER_NO.fullmatch(value) is None:
        raise NotAcceptable(f"{what} {value!r} is not 1-32 letters, digits, _ or -")
    return value


def ebank_pay_request(order: OnlineBankingOrder) -> wire.EbankPay:
    """The `ebank.pay` body for an attempt; the attempt id is JHB's `out_trade_no`."""
    if not order.amount.is_positive:
        raise NotAcceptable("a payment amount must be positive")
    return wire.EbankPay(
        out_trade_no=_order_no(order.attempt_id, "attempt id"),
        amount=money_to_yuan(order.amount),
        subject=order.subject[:SUBJECT_MAX_CHARS],
        notify_url=order.notify_url,
        return_url=order.return_url,
        expire_time=to_wire_time(order.expires_at),
    )


def refund_request(order: RefundOrder) -> wire.Refund:
    if not order.amount.is_positive:
        raise NotAcceptable("a refund amount must be positive")
    return wire.Refund(
        out_refund_no=_order_no(order.refund_id, "refund id"),
        orig_out_trade_no=_order_no(order.payment_attempt_id, "attempt id"),
        jhb_trade_no=order.payment_bank_reference,
        amount=money_to_yuan(order.amount),
        reason="",
        notify_url=order.notify_url,
    )


def pay_query_request(attempt_id: str) -> wire.PayQuery:
    return wire.PayQuery(out_trade_no=_order_no(attempt_id, "attempt id"))


def refund_query_request(refund_id: str) -> wire.RefundQuery:
    return wire.RefundQuery(out_refund_no=_order_no(refund_id, "refund id"))


# Answers


def redirect_form(answer: wire.EbankPayAnswer) -> RedirectForm:
    """JHB's login-page URL as a GET form: the query becomes fields, because a browser submitting
    a GET form replaces the action's query string with the form's fields."""
    parts = urlsplit(answer.redirect_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("redirect_url is not an http(s) URL")
    action = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))
    return RedirectForm(method="GET", url=action, fields=dict(parse_qsl(parts.query, keep_blank_values=True)))


def ebank_pay_refusal(answer: wire.EbankPayAnswer) -> ChannelResult:
    """Why `ebank.pay` gave no page: JHB's code through the table (91 → NOT_SUBMITTED, …)."""
    outcome = outcome_for_ret_code(answer.ret_code)
    # A 0000 without a usable URL created an order we cannot send the payer to; the query decides.
    if outcome is Outcome.SUCCEEDED:
        outcome = Outcome.UNKNOWN
    return ChannelResult(
        outcome=outcome,
        bank_reference=answer.jhb_trade_no or None,
        bank_code=answer.ret_code or None,
        bank_message=answer.ret_msg,
    )


def _amount_or_none(text: str) -> Money | None:
    try:
        return yuan_to_money(text)
    except ValueError:
        return None


def _final_result(outcome: Outcome, reference: str, amount_text: str, code: str, message: str) -> ChannelResult:
    amount = _amount_or_none(amount_text) if amount_text else None
    # A final answer without a readable amount cannot be booked safely: leave it to a later query.
    if outcome in (Outcome.SUCCEEDED, Outcome.FAILED) and amount is None and amount_text:
        outcome, message = Outcome.UNKNOWN, f"unreadable amount {amount_text!r}"
    return ChannelResult(
        outcome=outcome,
        bank_reference=reference or None,
        amount=amount,
        bank_code=code or None,
        bank_message=message,
    )


def _mismatch(expected: str, named: str) -> ChannelResult | None:
    if named and named != expected:
        return ChannelResult(outcome=Outcome.UNKNOWN, bank_message=f"answer names {named!r}, not {expected!r}")
    return None


def _query_refusal(code: str, message: str, age: timedelta) -> ChannelResult:
    """A query JHB did not answer with `0000`: the query failed, which says nothing about the
    order, except that "order not found" long enough after we sent it means JHB never took it."""
    outcome = outcome_for_not_found(age) if code == RetCode.ORDER_NOT_FOUND else Outcome.UNKNOWN
    return ChannelResult(outcome=outcome, bank_code=code or None, bank_message=message)


def _trade_status_result(view: wire.TradeView) -> ChannelResult:
    outcome = outcome_for_trade_status(view.status)
    code = view.fail_code or view.ret_code or view.status
    return _final_result(outcome, view.jhb_trade_no, view.amount, code, view.fail_msg or view.ret_msg)


def _refund_status_result(view: wire.RefundView, outcome: Outcome) -> ChannelResult:
    code = view.fail_code or view.ret_code or view.status
    return _final_result(outcome, view.jhb_refund_no, view.amount, code, view.fail_msg or view.ret_msg)


def trade_query_result(view: wire.TradeView, attempt_id: str, age: timedelta) -> ChannelResult:
    """A `pay.query` answer: `0000` and the payment's `status` speak; nothing else does."""
    if mismatch := _mismatch(attempt_id, view.out_trade_no):
        return mismatch
    if view.ret_code != RetCode.SUCCESS:
        return _query_refusal(view.ret_code, view.ret_msg, age)
    return _trade_status_result(view)


def trade_notice_result(view: wire.TradeView) -> ChannelResult:
    """A payment notification carries no `ret_code`; its `status` is the news."""
    return _trade_status_result(view)


def refund_answer_result(view: wire.RefundView, refund_id: str) -> ChannelResult:
    """The `refund` answer: `ret_code` decides (1051 FAILED, 1091 NOT_SUBMITTED, 2000 PENDING, …),
    and the refund's `status` refines a `0000`."""
    if mismatch := _mismatch(refund_id, view.out_refund_no):
        return mismatch
    outcome = outcome_for_ret_code(view.ret_code)
    if outcome is Outcome.SUCCEEDED and view.status:
        outcome = outcome_for_refund_status(view.status)
    return _refund_status_result(view, outcome)


def refund_query_result(view: wire.RefundView, refund_id: str, age: timedelta) -> ChannelResult:
    """A `refund.query` answer: `0000` and the refund's `status` speak; nothing else does."""
    if mismatch := _mismatch(refund_id, view.out_refund_no):
        return mismatch
    if view.ret_code != RetCode.SUCCESS:
        return _query_refusal(view.ret_code, view.ret_msg, age)
    return _refund_status_result(view, outcome_for_refund_status(view.status))


def refund_notice_result(view: wire.RefundView) -> ChannelResult:
    return _refund_status_result(view, outcome_for_refund_status(view.status))
