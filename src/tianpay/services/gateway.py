"""Gateway mode (网关支付): the payer pays on the bank's own pages, and the bank tells us how it ended.

``pay_at_bank`` persists an attempt, asks the channel for the signed form that sends the payer to the
bank, and records a refusal. The outcome arrives later by the bank's notification
(``handle_bank_notification``), by the signed form some banks post back to the cashier
(``handle_front_return``), or by the re-query job (``requery_attempts``). Every path records through
``services.payments``, whose writes are compare-and-set, so duplicates and races are no-ops.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.alerts import AlertKind, AlertSeverity, OperatorAlert
from tianpay.domain.errors import DomainError, NotFound
from tianpay.domain.payment import AmountMismatch, AttemptStatus, InvalidBank, PaymentAttempt
from tianpay.ports.channels import (
    KIND_MANDATE_REVOKED,
    ChannelDirectory,
    ChannelResult,
    FormNotIssued,
    InvalidNotification,
    NotificationAck,
    OnlineBankingOrder,
    Outcome,
    RedirectForm,
)
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.gateway import QuerySchedule
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import payments as payment_service
from tianpay.services import routing
from tianpay.services.mandate_records import apply_bank_revocation
from tianpay.services.refunds import apply_refund_result
from tianpay.services.suspense_follow_ups import repeats_undone_success

log = structlog.stdlib.get_logger(__name__)

KIND_PAYMENT: Final = "payment"
KIND_REFUND: Final = "refund"
REQUERY_BATCH_SIZE: Final = 50
# A payer pressing "check again" on the result page asks the bank at most this often per attempt.
NUDGE_MIN_INTERVAL: Final = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """What the gateway needs from configuration (built by the entry points from ``Settings``).

    ``absent_order_margin_s`` is how long after a payment's expiry (the ``payTimeout`` the bank was
    given) a bank's "no such order" is taken as final: a bank refuses an order after its pay
    timeout, so one it has not recorded by then never will be; the margin absorbs clock skew
    between the bank and us and a payer who pressed "pay" in the last second.
    """

    base_url: str
    requery_first_after_s: float = 60.0
    requery_max_interval_s: float = 1800.0
    absent_order_margin_s: float = 900.0
    order_not_found_codes: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def notify_url(self, bank: str) -> str:
        return f"{self.base_url.rstrip('/')}/channels/{bank}/notify"

    def return_url(self, payment_id: str, attempt_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/cashier/{payment_id}/return/{attempt_id}"

    def query_delay(self, query_count: int) -> timedelta:
        """The wait after the ``query_count``-th query (1-based): doubling, capped."""
        exponent = min(max(query_count - 1, 0), 30)
        return timedelta(seconds=min(self.requery_first_after_s * 2**exponent, self.requery_max_interval_s))


class BankRefused(DomainError):
    """The bank issued no payment page; ``outcome`` says whether an order may exist there."""

    code = "bank_unavailable"

    def __init__(self, bank: str, outcome: Outcome) -> None:
        super().__init__(f"{bank} did not open its payment page ({outcome.value})", param="bank")
        self.bank = bank
        self.outcome = outcome

    @property
    def may_try_another_bank(self) -> bool:
        return self.outcome.allows_failover


class Applied(enum.Enum):
    """What applying one bank message about an attempt did."""

    RECORDED = "recorded"
    # Nothing new: a duplicate, a replay, or a "still processing" about an attempt we already know.
    NO_CHANGE = "no_change"
    # Refused (amount mismatch, a race to retry, an unknown attempt): the bank should send it again.
    REJECTED = "rejected"

    @property
    def is_accepted(self) -> bool:
        return self is not Applied.REJECTED


# ---- the payer goes to the bank -------------------------------------------------------------------


def pay_at_bank(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    settings: GatewaySettings,
    payment_id: str,
    bank: str,
) -> RedirectForm:
    """Starts an attempt at ``bank`` and returns the signed form that takes the payer there.

    The intent is committed before the bank is called (JHB answers ``ebank.pay`` over the network).
    A refusal is recorded and raised as BankRefused: NOT_SUBMITTED or FAILED fails the attempt and
    the payment returns to ``created`` so the payer can pick another bank; UNKNOWN leaves the attempt
    ``unknown`` for the re-query job. Raises NotFound, PaymentExpired, InvalidBank, IllegalTransition.
    """
    # A bank an operator switched off in the console takes no new payment (docs/console.md).
    if bank in routing.disabled_banks(uow_factory):
        raise InvalidBank(f"bank {bank} is not taking payments now; choose another", param="bank")
    channel = channels.online_banking(bank)
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}", param="payment_id")
        merchant = uow.merchants.get(payment.merchant_id)
    merchant_name = merchant.name if merchant is not None else payment.merchant_id
    attempt = payment_service.start_attempt(
        uow_factory, clock, ids, payment_id, channel=f"{bank.lower()}.online_banking", bank=bank
    )
    order = OnlineBankingOrder(
        attempt_id=attempt.id,
        amount=attempt.amount,
        subject=payment.subject,
        merchant_name=merchant_name,
        created_at=attempt.created_at,
        expires_at=payment.expires_at,
        notify_url=settings.notify_url(bank),
        return_url=settings.return_url(payment_id, attempt.id),
    )
    try:
        form = channel.payment_form(order)
    except FormNotIssued as refused:
        _record_refusal(uow_factory, clock, attempt, refused.result)
        raise BankRefused(bank, refused.result.outcome) from None
    except Exception:
        # Whatever broke, the bank may have been reached: only a query may decide.
        payment_service.record_attempt_unknown(
            uow_factory, clock, payment_id, attempt.id, cause="the payment form could not be built"
        )
        raise
    # The payer is now in the bank's hands; from here only the bank's answer or a query moves it.
    payment_service.record_attempt_pending(uow_factory, clock, payment_id, attempt.id)
    log.info("gateway.form_issued", payment_id=payment_id, attempt_id=attempt.id, bank=bank)
    return form


def _record_refusal(
    uow_factory: UnitOfWorkFactory, clock: Clock, attempt: PaymentAttempt, result: ChannelResult
) -> None:
    log.warning(
        "gateway.form_refused",
        payment_id=attempt.payment_id,
        attempt_id=attempt.id,
        bank=attempt.bank,
        outcome=result.outcome.value,
        bank_code=result.bank_code,
    )
    if result.outcome.allows_failover:
        payment_service.record_attempt_failed(
            uow_factory, clock, attempt.payment_id, attempt.id,
            failure_code=result.bank_code or result.outcome.value, failure_message=result.bank_message,
        )
        return
    payment_service.record_attempt_unknown(
        uow_factory, clock, attempt.payment_id, attempt.id,
        cause=f"no payment page: {result.bank_message or result.outcome.value}",
    )


# ---- the bank tells us ------------------------------------------------------------------------------


def handle_bank_notification(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    bank: str,
    body: bytes,
    content_type: str,
) -> NotificationAck:
    """Verifies and applies a bank's asynchronous notification; returns the answer the bank expects.

    A notification that fails verification changes nothing and gets the rejecting answer. A
    duplicate or replay is accepted and changes nothing. Besides payments and refunds, a bank may
    report that the payer revoked a mandate at the bank (``KIND_MANDATE_REVOKED``).
    Raises NotFound for a bank we do not have.
    """
    channel = channels.online_banking(bank)
    try:
        notification = channel.parse_notification(body, content_type)
    except InvalidNotification as invalid:
        log.warning("gateway.notification_invalid", bank=bank, reason=str(invalid), body_bytes=len(body))
        return channel.notification_ack(False)
    reference = notification.platform_reference
    if notification.kind == KIND_REFUND:
        accepted = _apply_refund_result(uow_factory, clock, ids, bank, reference, notification.result)
        return channel.notification_ack(accepted)
    if notification.kind == KIND_MANDATE_REVOKED:
        # The payer revoked the mandate at the bank (JHB `mandate.revoke.notify`): final, idempotent.
        return channel.notification_ack(apply_bank_revocation(uow_factory, clock, bank, reference))
    if notification.kind != KIND_PAYMENT:
        log.warning("gateway.notification_kind_unknown", bank=bank, kind=notification.kind)
        return channel.notification_ack(False)
    applied = apply_payment_result(
        uow_factory, clock, ids, reference, notification.result, source=f"{bank} notification"
    )
    return channel.notification_ack(applied.is_accepted)


def handle_front_return(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    payment_id: str,
    attempt_id: str,
    body: bytes,
    content_type: str,
) -> Applied | None:
    """Applies the signed result a bank posts through the payer's browser (HBB's ``frontUrl``).

    The browser is not trusted: only a form that verifies as the bank's own message, about this
    very attempt, is applied (that is how HBB's magic 91, which sends no back notification, is
    learned). Unsigned display parameters (JHB's GET return) verify as nothing and are ignored.
    """
    if not body:
        return None
    with uow_factory() as uow:
        attempt = uow.payments.get_attempt(attempt_id)
    if attempt is None or attempt.payment_id != payment_id:
        log.warning("gateway.return_for_unknown_attempt", payment_id=payment_id, attempt_id=attempt_id)
        return None
    channel = channels.online_banking(attempt.bank)
    try:
        notification = channel.parse_notification(body, content_type)
    except InvalidNotification as invalid:
        log.info("gateway.return_not_verified", bank=attempt.bank, attempt_id=attempt_id, reason=str(invalid))
        return None
    if notification.kind != KIND_PAYMENT or notification.platform_reference != attempt_id:
        log.warning("gateway.return_about_another_order", bank=attempt.bank, attempt_id=attempt_id)
        return None
    return apply_payment_result(
        uow_factory, clock, ids, attempt_id, notification.result, source=f"{attempt.bank} front return"
    )


def apply_payment_result(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    attempt_id: str,
    result: ChannelResult,
    *,
    source: str,
) -> Applied:
    """Records what a bank said about an attempt (notification, front return or query).

    A final answer that repeats what we recorded is NO_CHANGE (so is the same success again about an
    attempt an operator's recovery failed ``undone_by_recovery``); one that contradicts it raises an
    operator alert (the bank changed its mind: reconciliation territory) and is not applied. An
    amount other than the attempt's is refused and alerted.
    """
    with uow_factory() as uow:
        attempt = uow.payments.get_attempt(attempt_id)
    if attempt is None:
        log.error("gateway.result_for_unknown_attempt", attempt_id=attempt_id, source=source)
        raise_alert(
            uow_factory, clock, ids, AlertKind.UNKNOWN_REFERENCE, AlertSeverity.ERROR,
            dedupe_key=f"unknown_attempt:{attempt_id}:{result.bank_reference or ''}",
            subject_id=None,
            message=f"{source} about attempt {attempt_id}, which this platform does not know",
            details=_result_details(result),
        )
        return Applied.REJECTED
    if not attempt.status.is_in_flight:
        return _against_final(uow_factory, clock, ids, attempt, result, source)
    try:
        return _record(uow_factory, clock, ids, attempt, result, source)
    except DomainError as error:
        # A race with another writer (IllegalTransition), a missing fee plan …: refuse, and let the
        # bank's retry or the next query try again.
        log.error("gateway.result_not_recorded", attempt_id=attempt_id, source=source, error=error.code)
        return Applied.REJECTED


def _record(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    attempt: PaymentAttempt,
    result: ChannelResult,
    source: str,
) -> Applied:
    payment_id = attempt.payment_id
    outcome = result.outcome
    if outcome is Outcome.SUCCEEDED:
        if result.amount is None or result.bank_reference is None:
            log.warning("gateway.success_without_amount_or_reference", attempt_id=attempt.id, source=source)
            return Applied.REJECTED
        try:
            recorded = payment_service.record_attempt_succeeded(
                uow_factory, clock, payment_id, attempt.id, bank_reference=result.bank_reference, amount=result.amount
            )
        except AmountMismatch:
            _alert_amount_mismatch(uow_factory, clock, ids, attempt, result, source)
            return Applied.REJECTED
        log.info("gateway.attempt_succeeded", attempt_id=attempt.id, source=source, outcome=recorded.outcome.value)
        return Applied.NO_CHANGE if recorded.outcome is payment_service.Recorded.REPLAYED else Applied.RECORDED
    if outcome in (Outcome.FAILED, Outcome.NOT_SUBMITTED):
        payment_service.record_attempt_failed(
            uow_factory, clock, payment_id, attempt.id,
            failure_code=result.bank_code or outcome.value, failure_message=result.bank_message,
        )
        log.info("gateway.attempt_failed", attempt_id=attempt.id, source=source, bank_code=result.bank_code)
        return Applied.RECORDED
    if outcome is Outcome.PENDING:
        moved = payment_service.record_attempt_pending(
            uow_factory, clock, payment_id, attempt.id, bank_reference=result.bank_reference
        )
        return Applied.RECORDED if moved.status is not attempt.status else Applied.NO_CHANGE
    moved = payment_service.record_attempt_unknown(
        uow_factory, clock, payment_id, attempt.id, cause=f"{source}: {result.bank_message or 'outcome unknown'}"
    )
    return Applied.RECORDED if moved.status is not attempt.status else Applied.NO_CHANGE


def _against_final(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    attempt: PaymentAttempt,
    result: ChannelResult,
    source: str,
) -> Applied:
    """A message about an attempt that is already succeeded or failed."""
    outcome = result.outcome
    if outcome in (Outcome.PENDING, Outcome.UNKNOWN):
        return Applied.NO_CHANGE
    if attempt.status is AttemptStatus.SUCCEEDED and outcome is Outcome.SUCCEEDED:
        if result.bank_reference == attempt.bank_reference and result.amount in (None, attempt.amount):
            return Applied.NO_CHANGE
    elif attempt.status is AttemptStatus.FAILED and outcome in (Outcome.FAILED, Outcome.NOT_SUBMITTED):
        return Applied.NO_CHANGE
    elif repeats_undone_success(
        result, failure_code=attempt.failure_code, bank_reference=attempt.bank_reference, amount=attempt.amount
    ):
        # The success an operator's recovery undid (docs/reconciliation.md), told again: the attempt
        # already failed on it and its exception is open; the bank has not changed its mind.
        log.info("gateway.undone_success_repeated", attempt_id=attempt.id, source=source)
        return Applied.NO_CHANGE
    # A success after a failure means money moved that we wrote off: an operator must act (refund
    # the payer or book it), so it is loud; the bank's message is acknowledged because sending it
    # again would not change what we can do automatically.
    log.error(
        "gateway.bank_changed_its_mind",
        attempt_id=attempt.id, recorded=attempt.status.value, reported=outcome.value, source=source,
    )
    raise_alert(
        uow_factory, clock, ids, AlertKind.BANK_CHANGED_ITS_MIND, AlertSeverity.ERROR,
        dedupe_key=f"changed_mind:{attempt.id}:{outcome.value}:{result.bank_reference or ''}",
        subject_id=attempt.payment_id,
        message=f"{source} says {outcome.value} for attempt {attempt.id}, recorded as {attempt.status.value}",
        details={"attempt_id": attempt.id, **_result_details(result)},
    )
    return Applied.NO_CHANGE


def _alert_amount_mismatch(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    attempt: PaymentAttempt,
    result: ChannelResult,
    source: str,
) -> None:
    reported = result.amount.format() if result.amount is not None else "none"
    log.error(
        "gateway.amount_mismatch",
        attempt_id=attempt.id, expected=attempt.amount.format(), reported=reported, source=source,
    )
    raise_alert(
        uow_factory, clock, ids, AlertKind.AMOUNT_MISMATCH, AlertSeverity.ERROR,
        dedupe_key=f"amount_mismatch:{attempt.id}:{result.bank_reference or ''}:{reported}",
        subject_id=attempt.payment_id,
        message=f"{source} reported {reported} for attempt {attempt.id} of {attempt.amount.format()}",
        details={"attempt_id": attempt.id, "expected": attempt.amount.format(), **_result_details(result)},
    )


def _apply_refund_result(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, bank: str, refund_id: str, result: ChannelResult
) -> bool:
    """Hands a refund notification to the refunds service; a refusal makes the bank send it again."""
    try:
        apply_refund_result(uow_factory, clock, ids, refund_id, result)
    except AmountMismatch:
        reported = result.amount.format() if result.amount is not None else "none"
        log.error("gateway.refund_amount_mismatch", bank=bank, refund_id=refund_id, reported=reported)
        raise_alert(
            uow_factory, clock, ids, AlertKind.AMOUNT_MISMATCH, AlertSeverity.ERROR,
            dedupe_key=f"refund_amount_mismatch:{refund_id}:{result.bank_reference or ''}:{reported}",
            subject_id=refund_id,
            message=f"{bank} notification reported {reported} for refund {refund_id}",
            details={"refund_id": refund_id, **_result_details(result)},
        )
        return False
    except DomainError as error:
        log.error("gateway.refund_result_not_recorded", bank=bank, refund_id=refund_id, error=error.code)
        return False
    return True


# ---- we ask the bank -------------------------------------------------------------------------------


def requery_attempts(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    settings: GatewaySettings,
    now: datetime,
    *,
    limit: int = REQUERY_BATCH_SIZE,
) -> int:
    """The worker job: queries the bank about in-flight attempts whose query is due; returns how many.

    The first query is due ``requery_first_after_s`` after the attempt was created; each query
    doubles the wait, up to ``requery_max_interval_s``. Rows are claimed (and the next query
    scheduled) in one short unit of work, then the banks are called with no transaction open.
    """
    with uow_factory() as uow:
        due = uow.attempt_queries.due_for_query(
            now, never_queried_before=now - timedelta(seconds=settings.requery_first_after_s), limit=limit
        )
        claimed = [
            schedule
            for schedule in due
            if uow.attempt_queries.claim(
                schedule.attempt.id,
                expected_count=schedule.query_count,
                next_query_at=now + settings.query_delay(schedule.query_count + 1),
                now=now,
            )
        ]
        uow.commit()
    for schedule in claimed:
        _query_and_apply(uow_factory, clock, ids, channels, settings, schedule, now)
    return len(claimed)


def nudge_payment(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    settings: GatewaySettings,
    payment_id: str,
) -> int:
    """Queries the bank now about the payment's in-flight attempts (the payer's "check again").

    At most once per attempt every few seconds, whatever the payer does; returns how many it asked.
    """
    now = clock.now()
    with uow_factory() as uow:
        attempts = [a for a in uow.payments.attempts_of(payment_id) if a.status.is_in_flight]
        schedules = [s for a in attempts if (s := uow.attempt_queries.schedule_of(a.id)) is not None]
        claimed = [
            schedule
            for schedule in schedules
            if (schedule.last_queried_at is None or now - schedule.last_queried_at >= NUDGE_MIN_INTERVAL)
            and uow.attempt_queries.claim(
                schedule.attempt.id,
                expected_count=schedule.query_count,
                next_query_at=now + settings.query_delay(schedule.query_count + 1),
                now=now,
            )
        ]
        uow.commit()
    for schedule in claimed:
        _query_and_apply(uow_factory, clock, ids, channels, settings, schedule, now)
    return len(claimed)


def _query_and_apply(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    settings: GatewaySettings,
    schedule: QuerySchedule,
    now: datetime,
) -> None:
    attempt = schedule.attempt
    try:
        # Any payment interface's attempts are queried here: online banking, quick pay, direct debit.
        channel = channels.payment_query(attempt.bank)
    except NotFound:
        log.error("gateway.requery_bank_missing", attempt_id=attempt.id, bank=attempt.bank)
        return
    try:
        result = channel.query_payment(attempt.id, attempt.created_at)
    except Exception:
        # Adapters answer UNKNOWN rather than raise; one that raises must not stop the batch.
        log.exception("gateway.requery_failed", attempt_id=attempt.id, bank=attempt.bank)
        return
    result = settle_absence(settings, schedule, result, now)
    log.info(
        "gateway.requeried",
        attempt_id=attempt.id, bank=attempt.bank, query_count=schedule.query_count + 1,
        outcome=result.outcome.value, bank_code=result.bank_code,
    )
    apply_payment_result(uow_factory, clock, ids, attempt.id, result, source=f"{attempt.bank} query")


def settle_absence(
    settings: GatewaySettings, schedule: QuerySchedule, result: ChannelResult, now: datetime
) -> ChannelResult:
    """Turns the bank's "no such order" into a failure once the bank can no longer take the order.

    Banks refuse an online-banking order after the pay timeout we gave them (the payment's
    expiry; HBB answers 69). An order the bank has not recorded by expiry plus a margin can
    therefore never move money, so the attempt fails and the payment can close. Before that,
    "no such order" is an absence (the payer may still be on the bank's pages), never a failure.
    """
    if result.outcome is not Outcome.UNKNOWN or result.bank_code is None:
        return result
    if result.bank_code not in settings.order_not_found_codes.get(schedule.attempt.bank, frozenset()):
        return result
    if now < schedule.payment_expires_at + timedelta(seconds=settings.absent_order_margin_s):
        return result
    return ChannelResult(
        Outcome.FAILED,
        bank_code=result.bank_code,
        bank_message="the bank has no such order long after its pay timeout: it was never placed",
    )


# ---- operator alerts ------------------------------------------------------------------------------


def raise_alert(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    kind: AlertKind,
    severity: AlertSeverity,
    *,
    dedupe_key: str,
    subject_id: str | None,
    message: str,
    details: Mapping[str, str],
) -> bool:
    """Stores an alert for the console; False when the same alert (``dedupe_key``) is already there."""
    alert = OperatorAlert(
        id=ids.new(id_prefixes.ALERT),
        kind=kind,
        severity=severity,
        dedupe_key=dedupe_key[:200],
        subject_id=subject_id,
        message=message,
        created_at=clock.now(),
        details=dict(details),
    )
    with uow_factory() as uow:
        raised = uow.alerts.raise_alert(alert)
        uow.commit()
    return raised


def open_alerts(uow_factory: UnitOfWorkFactory, *, limit: int = 100) -> list[OperatorAlert]:
    with uow_factory() as uow:
        return list(uow.alerts.open_alerts(limit=limit))


def _result_details(result: ChannelResult) -> dict[str, str]:
    details = {"outcome": result.outcome.value}
    if result.bank_code is not None:
        details["bank_code"] = result.bank_code
    if result.bank_reference is not None:
        details["bank_reference"] = result.bank_reference
    if result.amount is not None:
        details["reported"] = result.amount.format()
    return details
