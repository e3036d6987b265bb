"""Wallet use cases: balance and history, paying from the wallet (payment password, SMS above a
threshold), top-ups through the gateway flow, and top-up-and-pay's automatic second step.

The money rules live in ``services.payments.pay_from_wallet`` (one unit of work, no overdraft) and
``services.top_ups.credit_top_up``; this module checks who may move the money and strings the steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.card_binding import BindingStatus, CardBinding, CardNotBound
from tianpay.domain.errors import DomainError, NotFound
from tianpay.domain.ledger import member_wallet
from tianpay.domain.member import Member, MemberNotActive, SmsCodeRequired, SmsPurpose
from tianpay.domain.money import Money
from tianpay.domain.payment import DEFAULT_EXPIRY, Payment, PaymentMethod, PaymentRequest, new_payment
from tianpay.domain.wallet import (
    FORM_KEY_OWNER,
    TOP_UP_MERCHANT_ID,
    ThenPayStatus,
    TopUp,
    TopUpBankSwitchedOff,
    TopUpStatus,
    WalletLine,
    member_form_key,
)
from tianpay.ports.payments import Transition
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services import card_bindings, members, routing, sms
from tianpay.services import payments as payment_service
from tianpay.services.idempotency import run_idempotent
from tianpay.services.member_tools import MemberTools

log = structlog.stdlib.get_logger(__name__)

THEN_PAY_BATCH_SIZE: Final = 50
# A member's top-up forms, keyed under the wallet's own merchant (domain/wallet.py FORM_KEY_OWNER).
TOP_UP_IDEMPOTENCY_SCOPE: Final = "wallet_top_ups"
TOP_UP_SUBJECT: Final = "天付钱包充值"


@dataclass(frozen=True, slots=True)
class TopUpStarted:
    """The top-up's payment (pay it with ``services.gateway.pay_at_bank``) and its wallet record."""

    payment: Payment
    top_up: TopUp
    # True when a second POST of the same form found the top-up its first POST created.
    replayed: bool = False


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
    payment: Payment | None = None,
) -> Payment:
    """Pays ``payment_id`` from the member's wallet once the member proves it is them.

    The payment password is checked first (misses count towards the 3-hour lock). Above
    ``tools.wallet_sms_threshold_minor`` an SMS code to the member's phone is needed too: without one,
    a code is sent and SmsCodeRequired raised. InsufficientBalance leaves everything as it was.
    With ``merchant_id`` (the merchant API), the payment and the member must both be that merchant's.
    ``payment`` is the payment as the caller read it moments ago (the API route reads it to pick the
    handler), so it is not read again; only its amount is used before the paying unit of work, which
    locks the row and checks everything else again.

    Units of work on the way (docs/performance.md): one read of the member (and the payment, unless
    given), the password check outside any transaction (argon2id is slow and holds no connection),
    its own commit for a miss, then the one paying unit of work.
    """
    member, payment = _payer_and_payment(uow_factory, payment_id, member_id, merchant_id, payment)
    if not member.is_active:
        raise MemberNotActive("this wallet is frozen; contact support")
    members.verify_member_payment_password(uow_factory, tools, member, payment_password)
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


def _payer_and_payment(
    uow_factory: UnitOfWorkFactory, payment_id: str, member_id: str, merchant_id: str | None, payment: Payment | None
) -> tuple[Member, Payment]:
    """The member (the merchant's, with ``merchant_id``) and the payment, read in one unit of work.

    The member is looked for first, so an unknown member is reported before an unknown payment.
    """
    with uow_factory() as uow:
        if merchant_id is None:
            member = uow.members.get(member_id)
            missing_member = NotFound(f"no member {member_id}", param="member_id")
        else:
            member = uow.members.get_for_merchant(member_id, merchant_id)
            missing_member = NotFound(f"no member {member_id}", param="id")
        if member is None:
            raise missing_member
        if payment is None:
            payment = uow.payments.get(payment_id, merchant_id=merchant_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}", param="id")
    return member, payment


# ---- top-ups -------------------------------------------------------------------------------------------------


def top_up_banks(uow_factory: UnitOfWorkFactory, banks: Sequence[str]) -> list[str]:
    """The online-banking ``banks`` that can take a top-up now: an operator may have switched some off
    in the console (docs/console.md "Channels"), and those are neither offered nor accepted."""
    switched_off = routing.disabled_banks(uow_factory)
    return [bank for bank in banks if bank not in switched_off]


def top_up_cards(uow_factory: UnitOfWorkFactory, member_id: str) -> list[routing.CardOffer]:
    """The member's bound cards for a quick top-up, a card at a switched-off bank greyed out: the same
    rule as the cashier's quick pay (``routing.card_offers``)."""
    return routing.card_offers(uow_factory, card_bindings.cards_of(uow_factory, member_id, merchant_id=None))


def top_up_card(uow_factory: UnitOfWorkFactory, member_id: str, card_id: str) -> CardBinding:
    """The member's bound card ``card_id``, checked before a quick top-up is created for it.

    Raises NotFound for another member's card, CardNotBound, or TopUpBankSwitchedOff when an operator
    switched its bank off (a page older than the switch, or a forged one). Checked here because quick
    pay would otherwise create the top-up and only then find no route to the bank, or charge another of
    the member's cards in its place (``routing.plan`` fails over across the member's cards).
    """
    binding = card_bindings.get_binding(uow_factory, card_id, merchant_id=None, member_id=member_id)
    if binding.status is not BindingStatus.BOUND:
        raise CardNotBound(f"card {card_id} is not bound", param="card_id")
    routing.refuse_switched_off_card(uow_factory, binding, TopUpBankSwitchedOff)
    return binding


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
    form_key: str | None = None,
) -> TopUpStarted:
    """Creates a top-up: a payment to the platform's top-up merchant whose success credits the wallet.

    Pay it like any payment (``services.gateway.pay_at_bank`` for online banking, the quick-pay flow
    for a bound card); ``services.payments`` credits the wallet when its attempt succeeds. With
    ``then_pay_payment_id`` (the payer confirmed that payment with the payment password already),
    the wallet pays it as soon as the top-up is credited (``pay_after_top_up``). ``{top_up_id}`` in
    ``return_url`` is replaced by the top-up's id.

    ``form_key`` is the one-time key of the wallet form that asked for it: the top-up and the key's
    record commit together, and a second POST of the same form gets the first top-up back
    (``replayed``) instead of a second one, so the caller never charges a card twice for one form.
    """
    member = members.get_member(uow_factory, member_id)
    if not member.is_active:
        raise MemberNotActive("this wallet is frozen; contact support")
    idempotency_key = None if form_key is None else member_form_key(member_id, form_key)
    if bank is not None and bank in routing.disabled_banks(uow_factory):
        raise TopUpBankSwitchedOff(f"bank {bank} is not taking top-ups now; choose another", param="bank")
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

    def insert(uow: UnitOfWork) -> tuple[int, dict[str, object]]:
        uow.payments.add(payment)
        uow.payments.record_transition(
            Transition(payment_id, None, None, payment.status.value, "created", f"top-up for {member_id}", now)
        )
        uow.wallet.add_top_up(top_up)
        return 201, {"payment_id": payment_id}

    if idempotency_key is None:
        with uow_factory() as uow:
            insert(uow)
            uow.commit()
    else:
        asked = f"{amount.minor}\n{amount.currency}\n{method.value}\n{bank or ''}\n{then_pay_payment_id or ''}"
        stored = run_idempotent(
            uow_factory, merchant_id=FORM_KEY_OWNER, scope=TOP_UP_IDEMPOTENCY_SCOPE, key=idempotency_key,
            request_hash=hashlib.sha256(asked.encode()).hexdigest(), create=insert, param="form_key",
        )
        if stored.replayed:
            return _first_top_up(uow_factory, str(stored.body["payment_id"]))
    log.info("wallet.top_up_started", payment_id=payment_id, member_id=member_id, amount=amount.format())
    return TopUpStarted(payment, top_up)


def _first_top_up(uow_factory: UnitOfWorkFactory, payment_id: str) -> TopUpStarted:
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id)
        top_up = uow.wallet.top_up(payment_id)
    if payment is None or top_up is None:
        raise NotFound("the first top-up of this form is gone", param="form_key")
    log.info("wallet.top_up_replayed", payment_id=payment_id, member_id=top_up.member_id)
    return TopUpStarted(payment, top_up, replayed=True)


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
