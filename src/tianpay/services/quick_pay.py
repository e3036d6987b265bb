"""Quick pay (快捷支付): a merchant backend or the cashier confirms a payment with a bound card and the
member's payment password, and the router charges the card at its bank, failing over to another of
the member's cards only when the first bank certainly moved no money (FAILED or NOT_SUBMITTED).

Each try is an attempt recorded through ``services.payments``; each bank call happens with no unit of
work open; outcomes are applied by ``gateway.apply_payment_result``, like a bank's notification.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from tianpay.domain.card_binding import BindingStatus, CardNotBound
from tianpay.domain.errors import DomainError, NotFound
from tianpay.domain.payment import Payment, PaymentAttempt, PaymentMethod, PaymentStatus
from tianpay.ports.card_bindings import QuickPayAttempt
from tianpay.ports.channels import ChannelResult, QuickPayDirectory, QuickPayOrder
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import payments as payment_service
from tianpay.services import routing
from tianpay.services.card_bindings import get_binding, open_card_token
from tianpay.services.gateway import GatewaySettings, apply_payment_result
from tianpay.services.member_tools import MemberTools
from tianpay.services.members import verify_payment_password
from tianpay.services.routing import Candidate, RoutingSettings

log = structlog.stdlib.get_logger(__name__)

DUPLICATE_CONFIRMATION = "duplicate_confirmation"


class NotQuickPay(DomainError):
    code = "payment_method_mismatch"


# A payer at the cashier may choose a bound card for a ``cashier`` payment too.
CARD_PAYABLE_METHODS = frozenset({PaymentMethod.QUICK_PAY, PaymentMethod.CASHIER})


class QuickPayUnavailable(DomainError):
    """No channel may take the payment now (limits, or every bank's circuit breaker is open)."""

    code = "quick_pay_unavailable"


@dataclass(frozen=True, slots=True)
class QuickPaySettings:
    gateway: GatewaySettings
    routing: RoutingSettings


def confirm_quick_pay(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: QuickPayDirectory,
    tools: MemberTools,
    settings: QuickPaySettings,
    *,
    merchant_id: str | None,
    payment_id: str,
    card_id: str,
    payment_password: str,
    member_id: str | None = None,
) -> Payment:
    """Charges a bound card for a ``quick_pay`` (or ``cashier``) payment once the payment password is right.

    With ``member_id`` (a signed-in payer at the cashier or wallet) the card must be that member's.

    Returns the payment as it stands: succeeded, failed (every admitted channel refused; the
    attempts say why), or processing (an answer was unclear: the re-query job or the bank's
    notification settles it). A confirmation of a payment already in flight or paid changes nothing.
    Raises NotFound, NotQuickPay, CardNotBound, BankSwitchedOff (the chosen card's bank is switched off in
    the console: the payment stays ``created``, no other card is charged in its place), the members
    service's password errors (with lockout), or QuickPayUnavailable.
    """
    payment = _payment(uow_factory, merchant_id, payment_id)
    if payment.method not in CARD_PAYABLE_METHODS:
        raise NotQuickPay(f"payment {payment_id} is a {payment.method.value} payment", param="id")
    if payment.status is not PaymentStatus.CREATED:
        return payment
    binding = get_binding(uow_factory, card_id, merchant_id=merchant_id, member_id=member_id)
    if binding.status is not BindingStatus.BOUND:
        raise CardNotBound(f"card {card_id} is not bound", param="card_id")
    # Before the password (no try counted) and before any attempt: nothing is stored or sent.
    routing.refuse_switched_off_card(uow_factory, binding)
    verify_payment_password(uow_factory, tools, binding.member_id, payment_password)
    with uow_factory() as uow:
        cards = uow.card_bindings.of_member(binding.member_id, (BindingStatus.BOUND,))
    # Operators may switch a bank off or change its cost in the console (routing.configured_routes).
    routes = routing.configured_routes(uow_factory, channels.quick_pay_routes())
    candidates = routing.plan(routes, binding, cards, payment.amount)
    candidate = _next_admitted(uow_factory, clock, settings, candidates)
    if candidate is None:
        raise QuickPayUnavailable("no bank can take this quick-pay payment now; try again later", param="card_id")
    while candidate is not None:
        attempt, result = _try(uow_factory, clock, ids, channels, tools, settings, payment, candidate)
        if result is None or not result.outcome.allows_failover:
            return _current(uow_factory, payment_id)
        candidate = _next_admitted(uow_factory, clock, settings, candidates)
        _record_failure(uow_factory, clock, attempt, result, retry_expected=candidate is not None)
        if candidate is not None:
            log.warning("quick_pay.failover", payment_id=payment_id, from_bank=attempt.bank, to_bank=candidate.bank,
                        outcome=result.outcome.value, bank_code=result.bank_code)
    return _current(uow_factory, payment_id)


def _try(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: QuickPayDirectory,
    tools: MemberTools,
    settings: QuickPaySettings,
    payment: Payment,
    candidate: Candidate,
) -> tuple[PaymentAttempt, ChannelResult | None]:
    """One attempt on one channel. Returns the bank's result when it allows failover (not yet
    recorded: the caller decides whether another try follows), else records it and returns None."""
    attempt = payment_service.start_attempt(
        uow_factory, clock, ids, payment.id, channel=candidate.channel, bank=candidate.bank
    )
    with uow_factory() as uow:
        uow.card_bindings.add_quick_pay_attempt(
            QuickPayAttempt(attempt.id, payment.id, candidate.binding.id, candidate.binding.member_id, clock.now())
        )
        # Two confirmations racing past the "created" check both start an attempt; the younger one
        # steps aside before it reaches the bank, so the card is charged at most once.
        others = [a for a in uow.payments.attempts_of(payment.id) if a.id != attempt.id]
        uow.commit()
    if any(other.status.is_in_flight and other.id < attempt.id for other in others):
        payment_service.record_attempt_failed(
            uow_factory, clock, payment.id, attempt.id, failure_code=DUPLICATE_CONFIRMATION,
            failure_message="another confirmation of this payment is in flight",
        )
        return attempt, None
    order = QuickPayOrder(
        attempt_id=attempt.id,
        member_ref=candidate.binding.member_id,
        amount=attempt.amount,
        subject=payment.subject,
        created_at=attempt.created_at,
        notify_url=settings.gateway.notify_url(candidate.bank),
        card_token=open_card_token(tools.cipher, candidate.binding),
    )
    try:
        result = channels.quick_pay(candidate.bank).pay(order)
    except Exception:
        # Whatever broke, the bank may have been reached: only a query may decide.
        payment_service.record_attempt_unknown(
            uow_factory, clock, payment.id, attempt.id, cause="the quick-pay call broke off"
        )
        raise
    log.info("quick_pay.answer", payment_id=payment.id, attempt_id=attempt.id, bank=candidate.bank,
             outcome=result.outcome.value, bank_code=result.bank_code)
    routing.observe(
        uow_factory, clock, candidate.channel, routing.signal_of(result, candidate.bank, settings.routing),
        settings.routing.policy, failure=f"{result.outcome.value} {result.bank_code or ''}".rstrip(),
    )
    if result.outcome.allows_failover:
        return attempt, result
    apply_payment_result(uow_factory, clock, ids, attempt.id, result, source=f"{candidate.bank} quick pay")
    return attempt, None


def _record_failure(
    uow_factory: UnitOfWorkFactory, clock: Clock, attempt: PaymentAttempt, result: ChannelResult, *,
    retry_expected: bool,
) -> None:
    payment_service.record_attempt_failed(
        uow_factory, clock, attempt.payment_id, attempt.id,
        failure_code=result.bank_code or result.outcome.value, failure_message=result.bank_message,
        retry_expected=retry_expected,
    )


def _next_admitted(
    uow_factory: UnitOfWorkFactory, clock: Clock, settings: QuickPaySettings, candidates: list[Candidate]
) -> Candidate | None:
    """Pops candidates until one whose breaker admits a call (consumed: each channel is tried once)."""
    while candidates:
        candidate = candidates.pop(0)
        if routing.admit(uow_factory, clock, candidate.channel, settings.routing.policy):
            return candidate
        log.warning("quick_pay.channel_open", channel=candidate.channel)
    return None


def _payment(uow_factory: UnitOfWorkFactory, merchant_id: str | None, payment_id: str) -> Payment:
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id, merchant_id=merchant_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}", param="id")
    return payment


def _current(uow_factory: UnitOfWorkFactory, payment_id: str) -> Payment:
    return _payment(uow_factory, None, payment_id)
