"""Pure translation for JHB quick pay: the binding code table and the ``pay`` answer.

Every ``ret_code`` of ``bind.apply``/``bind.confirm`` maps to one outcome and, for failures, one
platform ``BindingFailure`` (docs/banks/jhb.md §5, §11). A ``pay`` answer maps through the same
ret_code table as every JHB payment, refined by the order's ``status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from tianpay.channels.jhb import wire
from tianpay.channels.jhb.mapping import NotAcceptable, money_to_yuan, outcome_for_ret_code, outcome_for_trade_status
from tianpay.channels.jhb.mapping import yuan_to_money as _yuan_to_money
from tianpay.channels.jhb.quickpay_wire import BindAnswer, BindApply, BindConfirm, Pay
from tianpay.channels.jhb.wire import RetCode
from tianpay.domain.money import Money
from tianpay.ports.channels import (
    BindingApplied,
    BindingConfirmation,
    BindingConfirmed,
    BindingFailure,
    BindingRequest,
    ChannelResult,
    Outcome,
    QuickPayOrder,
)

# Quick-pay codes beyond wire.RetCode (docs/banks/jhb.md §5).
SMS_TRIES_EXHAUSTED: Final = "1066"
BIND_TOKEN_UNKNOWN: Final = "1067"  # noqa: S105 (a response code, not a secret)
AGREEMENT_UNKNOWN: Final = "1068"

BINDING_FAILURES: Final[Mapping[str, BindingFailure]] = MappingProxyType(
    {
        RetCode.ELEMENTS_MISMATCH.value: BindingFailure.CARD_ELEMENTS_MISMATCH,
        RetCode.CARD_FROZEN.value: BindingFailure.CARD_FROZEN,
        RetCode.CARD_INVALID.value: BindingFailure.CARD_INVALID,
        RetCode.SMS_WRONG.value: BindingFailure.SMS_CODE_INVALID,
        SMS_TRIES_EXHAUSTED: BindingFailure.SMS_CODE_ATTEMPTS_EXCEEDED,
        # The bind token is gone (expired long ago, or never ours): the payer must apply again.
        BIND_TOKEN_UNKNOWN: BindingFailure.SMS_CODE_EXPIRED,
    }
)

SUBJECT_MAX_CHARS: Final = 128


def binding_outcome(code: str) -> Outcome:
    """``0000`` succeeded; ``2000`` or an undocumented non-1xxx is UNKNOWN; 1091 NOT_SUBMITTED; 1xxx FAILED."""
    if code == RetCode.PROCESSING:
        # A binding has no query by token here: the payer applies again.
        return Outcome.UNKNOWN
    return outcome_for_ret_code(code)


def binding_failure(code: str) -> BindingFailure:
    return BINDING_FAILURES.get(code, BindingFailure.BANK_DECLINED)


def bind_apply(request: BindingRequest) -> BindApply:
    holder = request.holder
    return BindApply(
        card_no=holder.card_number,
        acct_name=holder.name,
        id_no=holder.id_number,
        bind_mob=holder.phone,
        user_id=request.member_ref,
    )


def bind_confirm(confirmation: BindingConfirmation) -> BindConfirm:
    if not confirmation.bank_token:
        raise NotAcceptable("bind.confirm needs the token bind.apply gave")
    return BindConfirm(token=confirmation.bank_token, verify_code=confirmation.sms_code)


def pay_request(order: QuickPayOrder) -> Pay:
    if not order.amount.is_positive:
        raise NotAcceptable("a payment amount must be positive")
    return Pay(
        no_agree=order.card_token,
        out_trade_no=order.attempt_id,
        amount=money_to_yuan(order.amount),
        subject=order.subject[:SUBJECT_MAX_CHARS],
        notify_url=order.notify_url,
    )


def applied(answer: BindAnswer) -> BindingApplied:
    outcome = binding_outcome(answer.ret_code)
    if outcome is Outcome.SUCCEEDED and not answer.token:
        return BindingApplied(Outcome.UNKNOWN, bank_code=answer.ret_code, bank_message="no token in the answer")
    failure = binding_failure(answer.ret_code) if outcome is Outcome.FAILED else None
    return BindingApplied(
        outcome,
        bank_token=answer.token or None,
        failure=failure,
        bank_code=answer.ret_code,
        bank_message=answer.ret_msg,
    )


def confirmed(answer: BindAnswer) -> BindingConfirmed:
    outcome = binding_outcome(answer.ret_code)
    if outcome is Outcome.SUCCEEDED and not answer.no_agree:
        return BindingConfirmed(Outcome.UNKNOWN, bank_code=answer.ret_code, bank_message="no no_agree in the answer")
    failure = binding_failure(answer.ret_code) if outcome is Outcome.FAILED else None
    return BindingConfirmed(
        outcome,
        card_token=answer.no_agree or None,
        failure=failure,
        bank_code=answer.ret_code,
        bank_message=answer.ret_msg,
    )


def unbind_result(code: str, message: str) -> ChannelResult:
    """0000 unbound; 1068 means JHB holds no such active agreement, which is what unbinding wants."""
    outcome = Outcome.SUCCEEDED if code == AGREEMENT_UNKNOWN else outcome_for_ret_code(code)
    return ChannelResult(outcome, bank_code=code or None, bank_message=message)


def pay_result(view: wire.TradeView, attempt_id: str) -> ChannelResult:
    """The ``pay`` answer: ``ret_code`` decides (1051 FAILED, 1091 NOT_SUBMITTED, 2000 PENDING …), the
    order's ``status`` refines a ``0000``; an answer about another order proves nothing."""
    if view.out_trade_no and view.out_trade_no != attempt_id:
        return ChannelResult(Outcome.UNKNOWN, bank_message=f"answer names {view.out_trade_no!r}")
    outcome = outcome_for_ret_code(view.ret_code)
    if outcome is Outcome.SUCCEEDED:
        outcome = outcome_for_trade_status(view.status)
    amount = _amount(view.amount)
    if outcome is Outcome.SUCCEEDED and amount is None:
        return ChannelResult(Outcome.UNKNOWN, bank_message="success without a readable amount")
    return ChannelResult(
        outcome=outcome,
        bank_reference=view.jhb_trade_no or None,
        amount=amount,
        bank_code=view.fail_code or view.ret_code or None,
        bank_message=view.fail_msg or view.ret_msg,
    )


def _amount(text: str) -> Money | None:
    try:
        return _yuan_to_money(text) if text else None
    except ValueError:
        return None
