"""Wallet use cases: balance and history, paying from the wallet (payment password, SMS above a
threshold), top-ups through the gateway flow, and top-up-and-pay's automatic second step.

The money rules live in ``services.payments.pay_from_wallet`` (one unit of work, no overdraft) and
``services.top_ups.credit_top_up``; this module checks who may move the money and strings the steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.errors import DomainError, NotFound
from tianpay.domain.ledger import member_wallet
from tianpay.domain.member import MemberNotActive, SmsCodeRequired, SmsPurpose
from tianpay.domain.money import Money
from tianpay.domain.payment import DEFAULT_EXPIRY, Payment, PaymentMethod, PaymentRequest, new_payment
from tianpay.domain.wallet import TOP_UP_MERCHANT_ID, ThenPayStatus, TopUp, TopUpStatus, WalletLine
from tianpay.ports.payments import Transition
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import members, sms
from tianpay.services import payments as payment_service
from tianpay.services.member_tools import MemberTools

log = structlog.stdlib.get_logger(__name__)

THEN_PAY_BATCH_SIZE: Final = 50
TOP_UP_SUBJECT: Final = "天付钱包充值"


@dataclass(frozen=True, slots=True)
class TopUpStarted:
    """The top-up's payment (pay it with ``services.gateway.pay_at_bank``) and its wallet record."""

    payment: Payment
    top_up: TopUp


# ---- reading ---------------------------------------------------------------------------------------------


def wallet_balance(uow_factory: UnitOfWorkFactory, member_id: str) -> Money:
    """The member's balance: the stored balance of ``member:{id}:wallet`` (zero before any money)."""
    with uow_factory() as uow:
        try:
            return uow.ledger.balance(member_wallet(member_id).code)
        except NotFound:
            return Money.zero()


def wallet_history(uow_factory: UnitOfWorkFactory, member_id: str, *, limit: int = 50) -> Sequence[WalletLine]:
    with uow_factory() as uow:
        return uow.wallet.history(member_id, limit=limit)


# ---- paying from the wallet ----------------------------------------------------------------------------------


def confirm_wallet_payment(
    uow_factory: UnitOfWorkFactory,
    tools: MemberTools,
    payment_id: str,
    *,
    member_id: str,
    payment_password: str,
    sms_code: str | None = None,
    merchant_id: str | None = None,
) -> Payment:
    """Pays ``payment_id`` from the member's wallet once the member proves it is them.

    The payment password is checked first (misses count towards the 3-hour lock). Above
    ``tools.wallet_sms_threshold_minor`` an SMS code to the member's phone is needed too: without one,
    a code is sent and SmsCodeRequired raised. InsufficientBalance leaves everything as it was.
    With ``merchant_id`` (the merchant API), the payment and the member must both be that merchant's.
    """
    member = (
        members.get_member(uow_factory, member_id)
        if merchant_id is None
        else members.member_for_merchant(uow_factory, merchant_id, member_id)
    )
    if not member.is_active:
        raise MemberNotActive("this wallet is frozen; contact support")
    payment = _payment(uow_factory, payment_id, merchant_id)
    members.verify_payment_password(uow_factory, tools, member_id, payment_password)
    threshold = tools.wallet_sms_threshold_minor
    if threshold is not None and payment.amount.minor > threshold:
        if member.phone is None:
            raise NotFound(f"member {member_id} has no phone for the SMS code", param="sms_code")
        if not sms_code:
            sms.send_code(uow_factory, tools, member.phone, SmsPurpose.WALLET_PAYMENT, amount=_yuan(payment.amount))
            raise SmsCodeRequired("this amount needs an SMS code too; one was sent to the member", param="sms_code")
        sms.check_code(uow_factory, tools, member.phone.fingerprint, SmsPurpose.WALLET_PAYMENT, sms_code)
    recorded = payment_service.pay_from_wallet(
        uow_factory, tools.clock, tools.ids, payment_id, member_id=member_id, merchant_id=merchant_id
    )
    log.info("wallet.paid", payment_id=payment_id, member_id=member_id, outcome=recorded.outcome.value)
    return recorded.payment


def _payment(uow_factory: UnitOfWorkFactory, payment_id: str, merchant_id: str | None) -> Payment:
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id, merchant_id=merchant_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}", param="id")
    return payment


# ---- top-ups -------------------------------------------------------------------------------------------------


def start_top_up(
    uow_factory: UnitOfWorkFactory,
    tools: MemberTools,
    member_id: str,
    amount: Money,
    *,
    return_url: str,
    method: PaymentMethod = PaymentMethod.ONLINE_BANKING,
    bank: str | None = None,
    then_pay_payment_id: str | None = None,
) -> TopUpStarted:
    """Creates a top-up: a payment to the platform's top-up merchant whose success credits the wallet.

    Pay it like any payment (``services.gateway.pay_at_bank`` for online banking, the quick-pay flow
    for a bound card); ``services.payments`` credits the wallet when its attempt succeeds. With
    ``then_pay_payment_id`` (the payer confirmed that payment with the payment password already),
    the wallet pays it as soon as the top-up is credited (``pay_after_top_up``). ``{top_up_id}`` in
    ``return_url`` is replaced by the top-up's id.
    """
    member = members.get_member(uow_factory, member_id)
    if not member.is_active:
        raise MemberNotActive("this wallet is frozen; contact support")
    now = tools.clock.now()
    payment_id = tools.ids.new(id_prefixes.PAYMENT)
    request = PaymentRequest(
        merchant_id=TOP_UP_MERCHANT_ID,
        out_trade_no=payment_id,
        amount=amount,
        method=method,
        subject=TOP_UP_SUBJECT,
        bank=bank,
        return_url=return_url.replace("{top_up_id}", payment_id),
        expires_at=now + DEFAULT_EXPIRY,
    )
    payment = new_payment(request, payment_id=payment_id, now=now)
    top_up = TopUp(
        payment_id=payment_id,
        member_id=member_id,
        status=TopUpStatus.CREATED,
        created_at=now,
        then_pay_payment_id=then_pay_payment_id,
        then_pay_status=None if then_pay_payment_id is None else ThenPayStatus.AWAITING,
    )
    with uow_factory() as uow:
        uow.payments.add(payment)
        uow.payments.record_transition(
            Transition(payment_id, None, None, payment.status.value, "created", f"top-up for {member_id}", now)
        )
        uow.wallet.add_top_up(top_up)
        uow.commit()
    log.info("wallet.top_up_started", payment_id=payment_id, member_id=member_id, amount=amount.format())
    return TopUpStarted(payment, top_up)


def top_up_of(uow_factory: UnitOfWorkFactory, payment_id: str) -> TopUp | None:
    with uow_factory() as uow:
        return uow.wallet.top_up(payment_id)


def pay_after_top_up(uow_factory: UnitOfWorkFactory, tools: MemberTools, top_up_id: str) -> ThenPayStatus | None:
    """Makes a credited top-up's waiting wallet payment; returns the step's status (None: no step).

    Safe to call from the worker and the payer's return page at once: a second call finds the
    payment already paid by this wallet (REPLAYED) or the step no longer awaiting. A refusal (the
    payment closed meanwhile, the balance taken by another payment) fails the step; the money stays
    in the wallet.
    """
    top_up = top_up_of(uow_factory, top_up_id)
    if top_up is None or top_up.then_pay_payment_id is None:
        return None
    if top_up.status is not TopUpStatus.CREDITED or top_up.then_pay_status is not ThenPayStatus.AWAITING:
        return top_up.then_pay_status
    status, failure = ThenPayStatus.PAID, None
    try:
        payment_service.pay_from_wallet(
            uow_factory, tools.clock, tools.ids, top_up.then_pay_payment_id, member_id=top_up.member_id
        )
    except DomainError as refused:
        status, failure = ThenPayStatus.FAILED, refused.code
    with uow_factory() as uow:
        uow.wallet.set_then_pay(top_up_id, status, failure)
        uow.commit()
    log.info("wallet.paid_after_top_up", top_up_id=top_up_id, status=status.value, failure=failure)
    return status


def pay_after_top_ups(uow_factory: UnitOfWorkFactory, tools: MemberTools, *, limit: int = THEN_PAY_BATCH_SIZE) -> int:
    """The worker job: makes the waiting wallet payments of credited top-ups; returns how many it tried."""
    with uow_factory() as uow:
        waiting = uow.wallet.awaiting_then_pay(limit=limit)
    for top_up in waiting:
        pay_after_top_up(uow_factory, tools, top_up.payment_id)
    return len(waiting)


def _yuan(amount: Money) -> str:
    major, minor = divmod(amount.minor, 100)
    return f"¥{major:,}.{minor:02d}"
