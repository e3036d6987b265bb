"""Pure translation for HBB quick pay: binding requests, the binding status table, token consumes.

Every ``respCode`` a bind step can answer maps to one outcome and, for failures, one platform
``BindingFailure``; a code the adapter does not know is UNKNOWN (STYLE.md: only an explicit answer
ends anything). A consume by token is a consume: its answer uses the existing payment table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from tianpay.channels.hbb.mapping import answers_request, beijing_stamp, fen, order_id_for, transaction_outcome
from tianpay.channels.hbb.quickpay_wire import (
    AccountEncryptor,
    BindRequest,
    SmsRequest,
    TokenConsumeRequest,
    UnbindRequest,
    customer_info,
    sms_customer_info,
)
from tianpay.channels.hbb.wire import AcpResult, RespCode
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

__all__ = ["answers_request"]

F, U, N = Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_SUBMITTED

# Quick-pay codes beyond the online-banking ones of wire.RespCode (docs/banks/hbb.md "Quick pay").
SMS_TRIES_EXHAUSTED: Final = "65"
TOKEN_UNKNOWN: Final = "66"  # noqa: S105 (a response code, not a secret)

# What a failed 77/79 means to the payer (BANKS.md "HBB" codes; docs/banks/hbb.md "Quick pay").
BINDING_FAILURES: Final[Mapping[RespCode, BindingFailure]] = {
    RespCode.ELEMENTS_MISMATCH: BindingFailure.CARD_ELEMENTS_MISMATCH,
    RespCode.CARD_FROZEN: BindingFailure.CARD_FROZEN,
    RespCode.INVALID_CARD: BindingFailure.CARD_INVALID,
    RespCode.SMS_CODE_WRONG: BindingFailure.SMS_CODE_INVALID,
    RespCode.SIGNATURE_ERROR: BindingFailure.BANK_DECLINED,
    RespCode.DUPLICATE_ORDER: BindingFailure.BANK_DECLINED,
    RespCode.FORMAT_ERROR: BindingFailure.BANK_DECLINED,
    RespCode.NO_SUCH_TRANSACTION: BindingFailure.BANK_DECLINED,
}

# Outcomes of a bind step's own respCode. A binding moves no money, so "unknown" only means the
# payer must apply again; 91 is the bank refusing before it looked.
BINDING_OUTCOMES: Final[Mapping[RespCode, Outcome]] = {
    RespCode.SUCCESS: Outcome.SUCCEEDED,
    RespCode.TIMED_OUT: U,
    RespCode.STATE_UNKNOWN: U,
    RespCode.ACCEPTED: U,
    RespCode.BANK_UNAVAILABLE: N,
    **{code: F for code in BINDING_FAILURES},
}

# 63 is "wrong or expired" in one code (BANKS.md; HBB's respMsg says "错误或已过期" either way), so the
# adapter reports SMS_CODE_INVALID and the binding service, which knows when the code was sent,
# tells an expired code apart.


def binding_outcome(code: str) -> Outcome:
    if code == SMS_TRIES_EXHAUSTED:
        return F
    known = RespCode.parse(code)
    return BINDING_OUTCOMES.get(known, U) if known is not None else U


def binding_failure(code: str) -> BindingFailure:
    if code == SMS_TRIES_EXHAUSTED:
        return BindingFailure.SMS_CODE_ATTEMPTS_EXCEEDED
    known = RespCode.parse(code)
    return BINDING_FAILURES.get(known, BindingFailure.BANK_DECLINED) if known else BindingFailure.BANK_DECLINED


def sms_request(request: BindingRequest, *, mer_id: str, cert_id: str, encryptor: AccountEncryptor) -> SmsRequest:
    holder = request.holder
    return SmsRequest(
        certId=cert_id,
        merId=mer_id,
        orderId=order_id_for(request.binding_id),
        txnTime=beijing_stamp(request.created_at),
        accNo=encryptor.encrypt(holder.card_number),
        customerInfo=sms_customer_info(phone=holder.phone),
        encryptCertId=encryptor.cert_id,
    )


def bind_request(
    confirmation: BindingConfirmation, *, mer_id: str, cert_id: str, encryptor: AccountEncryptor
) -> BindRequest:
    """The 79 of a binding: the same orderId and txnTime as its 77 (research/protocols.md §3.1)."""
    holder = confirmation.holder
    return BindRequest(
        certId=cert_id,
        merId=mer_id,
        orderId=order_id_for(confirmation.binding_id),
        txnTime=beijing_stamp(confirmation.applied_at),
        accNo=encryptor.encrypt(holder.card_number),
        customerInfo=customer_info(
            id_number=holder.id_number, name=holder.name, phone=holder.phone, sms_code=confirmation.sms_code
        ),
        encryptCertId=encryptor.cert_id,
    )


def token_consume_request(order: QuickPayOrder, *, mer_id: str, cert_id: str) -> TokenConsumeRequest:
    return TokenConsumeRequest(
        certId=cert_id,
        merId=mer_id,
        orderId=order_id_for(order.attempt_id),
        txnTime=beijing_stamp(order.created_at),
        txnAmt=fen(order.amount),
        token=order.card_token,
        backUrl=order.notify_url,
    )


def applied(result: AcpResult) -> BindingApplied:
    outcome = binding_outcome(result.respCode)
    failure = binding_failure(result.respCode) if outcome is Outcome.FAILED else None
    return BindingApplied(outcome, failure=failure, bank_code=result.respCode, bank_message=result.respMsg)


def confirmed(result: AcpResult, token: str | None) -> BindingConfirmed:
    outcome = binding_outcome(result.respCode)
    if outcome is Outcome.SUCCEEDED and token is None:
        return BindingConfirmed(Outcome.UNKNOWN, bank_code=result.respCode, bank_message="bound without a token")
    failure = binding_failure(result.respCode) if outcome is Outcome.FAILED else None
    return BindingConfirmed(
        outcome, card_token=token, failure=failure, bank_code=result.respCode, bank_message=result.respMsg
    )


def unanswered_binding(result: ChannelResult) -> BindingApplied:
    return BindingApplied(result.outcome, bank_code=result.bank_code, bank_message=result.bank_message)


def consume_outcome(code: str) -> Outcome:
    """A token consume's answer: the payment table (00 paid, 03/04/05 query, 91 refused …).

    66 (token unknown or unbound) is refused before any order exists, so it is a certain failure.
    """
    return F if code == TOKEN_UNKNOWN else transaction_outcome(code)


def unbind_outcome(code: str) -> Outcome:
    """74's answer: 00 unbound; 66 means HBB holds no such active token, which is what we wanted."""
    if code == TOKEN_UNKNOWN:
        return Outcome.SUCCEEDED
    return binding_outcome(code)


def unbind_request(card_token: str, platform_id: str, now: datetime, *, mer_id: str, cert_id: str) -> UnbindRequest:
    return UnbindRequest(
        certId=cert_id, merId=mer_id, orderId=order_id_for(platform_id), txnTime=beijing_stamp(now), token=card_token
    )
