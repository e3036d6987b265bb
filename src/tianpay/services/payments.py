"""Payment use cases: create (idempotent), read, list, close, expire, and record what banks answer.

Every state change is a compare-and-set write that follows the domain's transition tables, is
recorded in the payment's transition trail, and commits in one unit of work with its ledger entry
and its merchant notification (the outbox), so none of the three can exist without the others.
Bank calls never happen here: the channel layer calls the bank and then one of the ``record_*``
functions with the answer (DESIGN.md §7).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from tianpay.domain import ids as id_prefixes
from tianpay.domain.errors import Conflict, DomainError, IllegalTransition, NotFound
from tianpay.domain.ledger import JournalEntry
from tianpay.domain.merchant import FeePlan
from tianpay.domain.money import Money
from tianpay.domain.notifications import EventType, iso_utc
from tianpay.domain.payment import (
    ATTEMPT_TRANSITIONS,
    AmountMismatch,
    AttemptEvent,
    AttemptStatus,
    MethodNotAllowed,
    Payment,
    PaymentAttempt,
    PaymentEvent,
    PaymentMethod,
    PaymentRequest,
    PaymentStatus,
    check_attempt_allowed,
    event_after_failure,
    new_payment,
)
from tianpay.domain.posting_rules import bank_payment_succeeded, late_attempt_succeeded, wallet_payment_succeeded
from tianpay.domain.reconciliation import UNDONE_BY_RECOVERY, AfterClose, against_suspense
from tianpay.domain.wallet import TOP_UP_MERCHANT_ID, WALLET_BANK, WALLET_CHANNEL, WalletPayment
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.payments import LateSuccessRefund, PagePosition, PaymentFilter, Transition
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services.idempotency import run_idempotent
from tianpay.services.suspense_follow_ups import ClosedFollowUp, closed_follow_up, open_recorded_after_close
from tianpay.services.top_ups import credit_top_up

IDEMPOTENCY_SCOPE = "payments"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
EXPIRY_BATCH_SIZE = 200


class MethodNotEnabled(DomainError):
    """The merchant's fee plan does not price this method: it has not signed up for it."""

    code = "method_not_enabled"


class FeePlanMissing(DomainError):
    """A payment succeeded for a merchant whose fee plan no longer prices its method."""

    code = "fee_plan_missing"
    kind = "api_error"


class InvalidListRequest(DomainError):
    code = "parameter_invalid"


@dataclass(frozen=True, slots=True)
class CreatedPayment:
    """The payment a create call names: new, or the first one when the request is a repeat."""

    payment: Payment
    replayed: bool


@dataclass(frozen=True, slots=True)
class PaymentDetail:
    payment: Payment
    attempts: tuple[PaymentAttempt, ...]


@dataclass(frozen=True, slots=True)
class PaymentPage:
    payments: tuple[Payment, ...]
    has_more: bool


class Recorded(enum.Enum):
    """What recording a bank's answer did."""

    RECORDED = "recorded"
    # The same answer was recorded before (a duplicated notification, a query after a notification).
    REPLAYED = "replayed"
    # The attempt succeeded after another attempt of the payment had: it is to be refunded.
    LATE_SUCCESS = "late_success"
    # The bank's success came after an operator had recovered the line booked to suspense (returned the
    # payer's money): the attempt failed instead, and the merchant is not credited (docs/reconciliation.md).
    UNDONE = "undone"


@dataclass(frozen=True, slots=True)
class AttemptRecorded:
    payment: Payment
    attempt: PaymentAttempt
    outcome: Recorded


# ---- merchant-facing use cases ---------------------------------------------------------------------


def create_payment(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, request: PaymentRequest
) -> CreatedPayment:
    """Creates a payment, or names the first one when the merchant repeats its out_trade_no.

    The same out_trade_no with the same request returns the first payment (as it is now); with a
    different request it raises IdempotencyConflict. A request that breaks a rule stores nothing, so
    the merchant can correct it and send it again under the same number.
    """
    if not request.method.is_created_by_merchant_api:
        raise MethodNotAllowed(f"{request.method.value} payments are not created by merchants", param="method")
    return _create(uow_factory, clock, ids, request)


def create_pos_payment(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, request: PaymentRequest
) -> CreatedPayment:
    """Creates a POS payment for the POS front, with the same idempotency as ``create_payment``."""
    if request.method is not PaymentMethod.POS:
        raise MethodNotAllowed("the POS front creates POS payments only", param="method")
    return _create(uow_factory, clock, ids, request)


def _create(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, request: PaymentRequest
) -> CreatedPayment:
    created: list[Payment] = []

    def insert(uow: UnitOfWork) -> tuple[int, Mapping[str, object]]:
        now = clock.now()
        payment = new_payment(request, payment_id=ids.new(id_prefixes.PAYMENT), now=now)
        _check_method_enabled(uow, payment)
        uow.payments.add(payment)
        _record(uow, payment.id, None, None, payment.status.value, "created", "created by the merchant", now)
        created.append(payment)
        return 201, payment_view(payment)

    stored = run_idempotent(
        uow_factory,
        merchant_id=request.merchant_id,
        scope=IDEMPOTENCY_SCOPE,
        key=request.out_trade_no,
        request_hash=request.fingerprint(),
        create=insert,
        param="out_trade_no",
        taken_by=lambda uow: uow.payments.id_of_out_trade_no(request.merchant_id, request.out_trade_no),
    )
    if created:
        return CreatedPayment(created[0], replayed=False)
    # A repeat: the stored first answer names the payment, which is read as it is now.
    payment_id = str(stored.body["id"])
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id, merchant_id=request.merchant_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}")
    return CreatedPayment(payment, replayed=stored.replayed)


def get_payment(uow_factory: UnitOfWorkFactory, merchant_id: str, payment_id: str) -> PaymentDetail:
    """The merchant's payment with its attempts; another merchant's payment is NotFound."""
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id, merchant_id=merchant_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}", param="id")
        return PaymentDetail(payment, tuple(uow.payments.attempts_of(payment_id)))


def find_payment(uow_factory: UnitOfWorkFactory, merchant_id: str, payment_id: str) -> Payment:
    """The merchant's payment without its attempts (one statement); another merchant's is NotFound."""
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id, merchant_id=merchant_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}", param="id")
    return payment


def list_payments(
    uow_factory: UnitOfWorkFactory,
    merchant_id: str,
    filters: PaymentFilter = PaymentFilter(),
    *,
    starting_after: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> PaymentPage:
    """The merchant's payments newest first, after the payment ``starting_after`` (the cursor).

    The cursor is a payment id, as for events: the next page starts after the last id of this one.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidListRequest(f"limit is 1–{MAX_PAGE_SIZE}", param="limit")
    with uow_factory() as uow:
        after = None
        if starting_after is not None:
            cursor = uow.payments.get(starting_after, merchant_id=merchant_id)
            if cursor is None:
                raise InvalidListRequest(f"no payment {starting_after} to start after", param="starting_after")
            after = PagePosition(cursor.created_at, cursor.id)
        # One row more than asked tells whether another page exists without a count query.
        rows = uow.payments.list_for_merchant(merchant_id, filters, after=after, limit=limit + 1)
    return PaymentPage(tuple(rows[:limit]), has_more=len(rows) > limit)


def close_payment(uow_factory: UnitOfWorkFactory, clock: Clock, merchant_id: str, payment_id: str) -> Payment:
    """Closes a payment nobody is paying yet; closing a closed payment again returns it unchanged.

    A payment with an attempt in flight cannot be closed: the bank may still take the payer's money.
    """
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id, merchant_id=merchant_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}", param="id")
        if payment.status is PaymentStatus.CLOSED:
            return payment
        now = clock.now()
        closed = _move(uow, payment, PaymentEvent.CLOSED_BY_MERCHANT, now, "closed by the merchant")
        uow.outbox.add_event(merchant_id, EventType.PAYMENT_CLOSED, payment_view(closed))
        uow.commit()
        return closed


# ---- worker jobs ------------------------------------------------------------------------------------


def expire_payments(
    uow_factory: UnitOfWorkFactory,
    now: datetime,
    *,
    batch_size: int = EXPIRY_BATCH_SIZE,
    max_batches: int | None = None,
) -> int:
    """Closes ``created`` payments whose expiry has passed; returns how many it closed.

    Works in batches, one unit of work each, so a backlog never holds locks for long; it stops when
    none are left or after ``max_batches`` (a worker tick passes 1 and is called again while it
    finds work). Each close is a compare-and-set from ``created``: a payment whose first attempt
    started a moment ago is left alone, because its bank may still take the money.
    """
    closed_count = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        with uow_factory() as uow:
            due = uow.payments.due_for_expiry(now, limit=batch_size)
            for payment in due:
                closed = payment.moved_to(PaymentEvent.EXPIRED, now)
                if not uow.payments.update(closed, expected=payment.status):
                    continue
                _record_move(uow, payment, closed, PaymentEvent.EXPIRED, now, "expired")
                uow.outbox.add_event(closed.merchant_id, EventType.PAYMENT_CLOSED, payment_view(closed))
                closed_count += 1
            uow.commit()
        if len(due) < batch_size:
            break
    return closed_count


# ---- attempts: called by the cashier and the channel layer -------------------------------------------


def start_attempt(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    payment_id: str,
    *,
    channel: str,
    bank: str,
) -> PaymentAttempt:
    """Persists the intent to try ``payment_id`` on ``channel`` at ``bank``; call the bank after.

    The payment moves to (or stays) ``processing``: from now on it cannot be closed until this
    attempt is resolved. Raises PaymentExpired, InvalidBank or IllegalTransition (paid, closed …).
    """
    with uow_factory() as uow:
        attempt = add_attempt(uow, clock, ids, _locked(uow, payment_id), channel=channel, bank=bank)
        uow.commit()
        return attempt


def unstarted_payment(uow: UnitOfWork, payment_id: str) -> Payment | None:
    """Locks the payment in the caller's unit of work and returns it if it is still ``created`` with
    no attempt, else None (another call started it, or it was closed). Its expiry is the caller's
    to check.

    A backend-driven payment (direct debit) whose first call died before the bank is carried on by
    its retry only after this check, under the lock: of two retries racing, the second sees the
    first one's attempt and goes nowhere near the bank.
    """
    payment = _locked(uow, payment_id)
    if payment.status is not PaymentStatus.CREATED or uow.payments.attempts_of(payment_id):
        return None
    return payment


def close_unstarted(uow: UnitOfWork, clock: Clock, payment: Payment, *, cause: str) -> Payment:
    """Closes, in the caller's unit of work, a payment ``unstarted_payment`` returned that will not be
    started after all (refused before the bank), and queues ``payment.closed``; not committed.

    Closing under the same lock as the check means no other call can start it in between.
    """
    closed = _move(uow, payment, PaymentEvent.CLOSED_BY_MERCHANT, clock.now(), cause)
    uow.outbox.add_event(closed.merchant_id, EventType.PAYMENT_CLOSED, payment_view(closed))
    return closed


def add_attempt(
    uow: UnitOfWork, clock: Clock, ids: IdGenerator, payment: Payment, *, channel: str, bank: str
) -> PaymentAttempt:
    """Adds an attempt to ``payment`` (locked by the caller) in the caller's unit of work; not committed.

    The payment's move to ``processing`` is a compare-and-set from the status it was read with, so
    the attempt's id, which is the request number the bank sees, is created once per start.
    """
    now = clock.now()
    check_attempt_allowed(payment, bank, now)
    attempt = PaymentAttempt(
        id=ids.new(id_prefixes.ATTEMPT),
        payment_id=payment.id,
        channel=channel,
        bank=bank,
        status=AttemptStatus.CREATED,
        amount=payment.amount,
        created_at=now,
        updated_at=now,
    )
    _move(uow, payment, PaymentEvent.ATTEMPT_STARTED, now, f"attempt {attempt.id} started at {bank}")
    uow.payments.add_attempt(attempt)
    _record(uow, payment.id, attempt.id, None, attempt.status.value, "created", f"{channel} at {bank}", now)
    return attempt


def record_attempt_pending(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    payment_id: str,
    attempt_id: str,
    *,
    bank_reference: str | None = None,
) -> PaymentAttempt:
    """The bank accepted the attempt and will answer later; a repeat or a late one changes nothing."""
    return _record_attempt_only(
        uow_factory, clock, payment_id, attempt_id, AttemptEvent.PENDING, "the bank is processing it",
        bank_reference=bank_reference,
    )


def record_attempt_unknown(
    uow_factory: UnitOfWorkFactory, clock: Clock, payment_id: str, attempt_id: str, *, cause: str
) -> PaymentAttempt:
    """We do not know whether the bank moved money (a timeout …): the re-query job must resolve it.

    Ignored for an attempt the bank already acknowledged or answered: not knowing more is no news.
    """
    return _record_attempt_only(uow_factory, clock, payment_id, attempt_id, AttemptEvent.UNKNOWN, cause)


def record_attempt_succeeded(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    payment_id: str,
    attempt_id: str,
    *,
    bank_reference: str,
    amount: Money,
) -> AttemptRecorded:
    """The bank confirmed the attempt: the payment succeeds, the ledger and the merchant learn of it.

    One unit of work holds the attempt's and the payment's compare-and-set writes, the journal entry
    (amount and fee) and the ``payment.succeeded`` event. A second call for the same attempt is a
    no-op (``Recorded.REPLAYED``). An amount other than the attempt's raises AmountMismatch and
    records nothing. If another attempt already succeeded, this one is recorded, its money is put
    aside for a refund to the payer, and the merchant is told nothing (``Recorded.LATE_SUCCESS``).

    When reconciliation had booked the attempt's statement line to suspense and an operator closed that
    follow-up, the reserve already holds (or held) the money: a write-off is recorded against
    ``platform:suspense`` instead of the reserve, a recovery fails the attempt (``Recorded.UNDONE``), and
    either way an exception tells an operator (docs/reconciliation.md, "After a follow-up is closed").
    """
    with uow_factory() as uow:
        payment, attempt = _locked_with_attempt(uow, payment_id, attempt_id)
        if attempt.status is AttemptStatus.SUCCEEDED:
            if attempt.bank_reference != bank_reference:
                raise Conflict(
                    f"attempt {attempt_id} already succeeded with bank reference {attempt.bank_reference}",
                    param="bank_reference",
                )
            return AttemptRecorded(payment, attempt, Recorded.REPLAYED)
        if amount != attempt.amount:
            raise AmountMismatch(
                f"the bank reported {amount} for attempt {attempt_id} of {attempt.amount}", param="amount"
            )
        now = clock.now()
        closed = closed_follow_up(uow, attempt_id)
        if closed is not None and closed.treatment is AfterClose.UNDONE:
            # The bank's reference is kept, so the same success told again is known for what it is.
            undone = _fail(
                uow, payment, attempt, now, failure_code=UNDONE_BY_RECOVERY,
                failure_message=closed.undone_message,
                retry_expected=False, bank_reference=bank_reference,
            )
            open_recorded_after_close(uow, closed, entry_id=None, record_status=undone.attempt.status.value, now=now)
            uow.commit()
            return replace(undone, outcome=Recorded.UNDONE)
        succeeded = _move_attempt(
            uow, attempt, AttemptEvent.SUCCEEDED, now, f"bank reference {bank_reference}",
            bank_reference=bank_reference,
        )
        if payment.status is PaymentStatus.SUCCEEDED:
            entry_id = _put_aside_for_refund(uow, payment, succeeded, now, closed)
            outcome, paid = Recorded.LATE_SUCCESS, payment
        else:
            paid, entry_id = _succeed(uow, payment, succeeded, now, closed)
            outcome = Recorded.RECORDED
        if closed is not None:
            open_recorded_after_close(uow, closed, entry_id=entry_id, record_status=succeeded.status.value, now=now)
        uow.commit()
        return AttemptRecorded(paid, succeeded, outcome)


def record_attempt_failed(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    payment_id: str,
    attempt_id: str,
    *,
    failure_code: str,
    failure_message: str = "",
    retry_expected: bool = False,
) -> AttemptRecorded:
    """The bank declined the attempt, or it certainly never reached the bank.

    When no other attempt is in flight, a payment whose payer is at the cashier (or whose router is
    about to fail over: ``retry_expected``) returns to ``created`` so another attempt can start, and
    is closed at once if its time is up; any other payment fails and the merchant is told. A second
    call for the same attempt is a no-op.
    """
    with uow_factory() as uow:
        payment, attempt = _locked_with_attempt(uow, payment_id, attempt_id)
        if attempt.status is AttemptStatus.FAILED:
            return AttemptRecorded(payment, attempt, Recorded.REPLAYED)
        recorded = _fail(
            uow, payment, attempt, clock.now(), failure_code=failure_code, failure_message=failure_message,
            retry_expected=retry_expected,
        )
        uow.commit()
        return recorded


def _fail(
    uow: UnitOfWork,
    payment: Payment,
    attempt: PaymentAttempt,
    now: datetime,
    *,
    failure_code: str,
    failure_message: str,
    retry_expected: bool,
    bank_reference: str | None = None,
) -> AttemptRecorded:
    """Fails the attempt and moves its payment as ``record_attempt_failed`` says; does not commit."""
    cause = f"{failure_code}: {failure_message}" if failure_message else failure_code
    failed = _move_attempt(
        uow, attempt, AttemptEvent.FAILED, now, cause,
        bank_reference=bank_reference, failure_code=failure_code, failure_message=failure_message or None,
    )
    event = event_after_failure(payment, uow.payments.attempts_of(payment.id), retry_expected=retry_expected)
    if event is PaymentEvent.ATTEMPTS_EXHAUSTED:
        payment = _move(uow, payment, event, now, f"attempt {attempt.id} failed: {failure_code}")
        uow.outbox.add_event(payment.merchant_id, EventType.PAYMENT_FAILED, payment_view(payment))
    elif event is PaymentEvent.REOPENED:
        payment = _move(uow, payment, event, now, f"attempt {attempt.id} failed; the payer may try again")
        if payment.is_expired_at(now):
            payment = _move(uow, payment, PaymentEvent.EXPIRED, now, "expired while an attempt was in flight")
            uow.outbox.add_event(payment.merchant_id, EventType.PAYMENT_CLOSED, payment_view(payment))
    return AttemptRecorded(payment, failed, Recorded.RECORDED)


def pay_from_wallet(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    payment_id: str,
    *,
    member_id: str,
    merchant_id: str | None = None,
) -> AttemptRecorded:
    """Pays the payment from the member's wallet, in one unit of work, or changes nothing at all.

    The attempt (on the ``wallet`` channel), the payment's transitions, the journal entry (Dr
    ``member:U:wallet`` / Cr ``merchant:M:pending`` + fee) and the ``payment.succeeded`` event commit
    together. InsufficientBalance (the ledger's conditional write) rolls every one of them back.
    Only ``wallet`` and ``cashier`` payments may be paid so; the caller has checked the payment
    password. Paying again a payment this member's wallet already paid is REPLAYED.
    """
    with uow_factory() as uow:
        payment = _locked(uow, payment_id)
        if merchant_id is not None and payment.merchant_id != merchant_id:
            raise NotFound(f"no payment {payment_id}", param="id")
        if payment.method not in (PaymentMethod.WALLET, PaymentMethod.CASHIER):
            raise MethodNotAllowed(f"a {payment.method.value} payment is not paid from a wallet", param="method")
        if payment.status is PaymentStatus.SUCCEEDED and payment.succeeded_attempt_id is not None:
            paid_by = uow.wallet.payment_of_attempt(payment.succeeded_attempt_id)
            if paid_by is not None and paid_by.member_id == member_id:
                attempt = uow.payments.get_attempt(payment.succeeded_attempt_id)
                assert attempt is not None
                return AttemptRecorded(payment, attempt, Recorded.REPLAYED)
        if payment.merchant_id == TOP_UP_MERCHANT_ID:
            raise MethodNotAllowed("a wallet top-up is paid at a bank, not from the wallet", param="method")
        now = clock.now()
        check_attempt_allowed(payment, WALLET_BANK, now)
        attempt_id = ids.new(id_prefixes.ATTEMPT)
        started = PaymentAttempt(
            id=attempt_id,
            payment_id=payment.id,
            channel=WALLET_CHANNEL,
            bank=WALLET_BANK,
            status=AttemptStatus.CREATED,
            amount=payment.amount,
            created_at=now,
            updated_at=now,
        )
        # The wallet answers at once, so each row is written once in its final state: the attempt
        # inserted already succeeded, the payment moved created → processing → succeeded by one
        # compare-and-set (its row is locked above), and the four transitions recorded in one
        # statement, in the order they happened (docs/performance.md). Both moves still go through
        # the transition tables, so an illegal one raises before anything is written.
        succeeded = replace(started.moved_to(AttemptEvent.SUCCEEDED, now), bank_reference=attempt_id)
        processing = payment.moved_to(PaymentEvent.ATTEMPT_STARTED, now)
        fee = _fee(uow, payment)
        paid = replace(
            processing.moved_to(PaymentEvent.ATTEMPT_SUCCEEDED, now), fee_amount=fee, succeeded_attempt_id=attempt_id
        )
        if not uow.payments.update(paid, expected=payment.status):
            raise IllegalTransition(f"payment {payment.id} changed while it was paid from a wallet; read it again",
                                    param="status")
        uow.payments.add_attempt(succeeded)
        uow.wallet.add_payment(WalletPayment(attempt_id, payment.id, member_id, succeeded.amount, now))
        uow.payments.record_transitions([
            Transition(payment.id, None, payment.status.value, processing.status.value,
                       PaymentEvent.ATTEMPT_STARTED.value, f"attempt {attempt_id} from a wallet", now),
            Transition(payment.id, attempt_id, None, started.status.value, "created", f"wallet of {member_id}", now),
            Transition(payment.id, attempt_id, started.status.value, succeeded.status.value,
                       AttemptEvent.SUCCEEDED.value, "paid from the wallet", now),
            Transition(payment.id, None, processing.status.value, paid.status.value,
                       PaymentEvent.ATTEMPT_SUCCEEDED.value, f"attempt {attempt_id} succeeded", now),
        ])
        uow.ledger.post(
            wallet_payment_succeeded(
                payment_id=payment.id, merchant_id=payment.merchant_id, member_id=member_id,
                amount=succeeded.amount, fee=fee,
            )
        )
        uow.outbox.add_event(payment.merchant_id, EventType.PAYMENT_SUCCEEDED, payment_view(paid))
        uow.commit()
        return AttemptRecorded(paid, succeeded, Recorded.RECORDED)


def transitions_of(uow_factory: UnitOfWorkFactory, payment_id: str) -> Sequence[Transition]:
    """The payment's transition trail (its own and its attempts'), oldest first."""
    with uow_factory() as uow:
        return uow.payments.transitions_of(payment_id)


def late_success_refunds_of(uow_factory: UnitOfWorkFactory, payment_id: str) -> Sequence[LateSuccessRefund]:
    with uow_factory() as uow:
        return uow.payments.late_success_refunds_of(payment_id)


# ---- the payment as merchants see it -------------------------------------------------------------------


def payment_view(payment: Payment) -> dict[str, object]:
    """The payment's public JSON (the API's ``payment`` object and every ``payment.*`` event's data)."""
    return {
        "id": payment.id,
        "object": "payment",
        "merchant_id": payment.merchant_id,
        "out_trade_no": payment.out_trade_no,
        "amount": payment.amount.minor,
        "currency": payment.amount.currency.code,
        "method": payment.method.value,
        "bank": payment.bank,
        "status": payment.status.value,
        "subject": payment.subject,
        "description": payment.description,
        "metadata": dict(payment.metadata),
        "fee_amount": payment.fee_amount.minor,
        "refunded_amount": payment.refunded_amount.minor,
        "expires_at": iso_utc(payment.expires_at),
        "created_at": iso_utc(payment.created_at),
    }


# ---- helpers -------------------------------------------------------------------------------------------


def _fee_plan_pricing(uow: UnitOfWork, payment: Payment) -> FeePlan | None:
    """The merchant's fee plan if it prices the payment's method (signing up for it), else None."""
    plan = uow.merchants.fee_plan(payment.merchant_id)
    if plan is None or all(rate.method != payment.method.value for rate in plan.rates):
        return None
    return plan


def _check_method_enabled(uow: UnitOfWork, payment: Payment) -> None:
    if _fee_plan_pricing(uow, payment) is None:
        raise MethodNotEnabled(f"the merchant is not signed up for {payment.method.value}", param="method")


def _fee(uow: UnitOfWork, payment: Payment) -> Money:
    plan = _fee_plan_pricing(uow, payment)
    if plan is None:
        # Loud on purpose: the money moved and must be recorded, but not with an invented fee; the
        # bank's notification or the re-query job will retry once an operator restores the plan.
        raise FeePlanMissing(f"merchant {payment.merchant_id} has no fee rate for {payment.method.value}")
    return plan.fee(payment.method.value, payment.amount)


def _succeed(
    uow: UnitOfWork, payment: Payment, attempt: PaymentAttempt, now: datetime, closed: ClosedFollowUp | None = None
) -> tuple[Payment, str | None]:
    """Succeeds the payment with its entry; returns it and the entry's id (None for a top-up, whose entry
    the top-up service posts). ``closed``: a written-off follow-up, so the entry moves suspense, not the
    reserve that the suspense booking already moved."""
    if payment.merchant_id == TOP_UP_MERCHANT_ID:
        return _succeed_top_up(uow, payment, attempt, now, against_suspense=closed is not None), None
    fee = _fee(uow, payment)
    paid = replace(
        payment.moved_to(PaymentEvent.ATTEMPT_SUCCEEDED, now), fee_amount=fee, succeeded_attempt_id=attempt.id
    )
    _write(uow, payment, paid, PaymentEvent.ATTEMPT_SUCCEEDED, now, f"attempt {attempt.id} succeeded")
    entry = _success_entry(uow, payment, attempt, fee)
    if closed is not None:
        entry = against_suspense(entry, bank=attempt.bank) or entry
    uow.ledger.post(entry)
    uow.outbox.add_event(payment.merchant_id, EventType.PAYMENT_SUCCEEDED, payment_view(paid))
    return paid, entry.id


def _success_entry(uow: UnitOfWork, payment: Payment, attempt: PaymentAttempt, fee: Money) -> JournalEntry:
    """The bank reserve pays the merchant, or, for a wallet attempt, the payer's wallet does."""
    if attempt.channel != WALLET_CHANNEL:
        return bank_payment_succeeded(
            payment_id=payment.id, merchant_id=payment.merchant_id, bank=attempt.bank, amount=attempt.amount, fee=fee
        )
    payer = uow.wallet.payment_of_attempt(attempt.id)
    if payer is None:
        raise NotFound(f"wallet attempt {attempt.id} names no payer", param="attempt_id")
    return wallet_payment_succeeded(
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        member_id=payer.member_id,
        amount=attempt.amount,
        fee=fee,
    )


def _succeed_top_up(
    uow: UnitOfWork, payment: Payment, attempt: PaymentAttempt, now: datetime, *, against_suspense: bool = False
) -> Payment:
    # A top-up is the platform's own payment: no fee, no merchant notification; its money goes to
    # the member's wallet (docs/wallet.md).
    paid = replace(payment.moved_to(PaymentEvent.ATTEMPT_SUCCEEDED, now), succeeded_attempt_id=attempt.id)
    _write(uow, payment, paid, PaymentEvent.ATTEMPT_SUCCEEDED, now, f"attempt {attempt.id} succeeded: top-up")
    credit_top_up(
        uow, top_up_id=payment.id, bank=attempt.bank, amount=attempt.amount, now=now, against_suspense=against_suspense
    )
    return paid


def _put_aside_for_refund(
    uow: UnitOfWork, payment: Payment, attempt: PaymentAttempt, now: datetime, closed: ClosedFollowUp | None = None
) -> str | None:
    # The refund machinery (a later change) picks up pending rows and returns the money to the
    # payer; until then the money sits in platform:suspense, so the ledger still matches the bank.
    # After a written-off follow-up the suspense booking already put it there (reserve → suspense) and
    # the write-off took it out: the entry would move suspense to itself, so nothing is posted and the
    # exception opened with it shows the write-off to take back.
    uow.payments.add_late_success_refund(
        LateSuccessRefund(
            attempt_id=attempt.id,
            payment_id=payment.id,
            bank=attempt.bank,
            amount=attempt.amount,
            bank_reference=attempt.bank_reference,
            status="pending",
            created_at=now,
        )
    )
    entry: JournalEntry | None = late_attempt_succeeded(
        attempt_id=attempt.id, payment_id=payment.id, bank=attempt.bank, amount=attempt.amount
    )
    if closed is not None and entry is not None:
        entry = against_suspense(entry, bank=attempt.bank)
    if entry is None:
        return None
    uow.ledger.post(entry)
    return entry.id


def _record_attempt_only(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    payment_id: str,
    attempt_id: str,
    event: AttemptEvent,
    cause: str,
    *,
    bank_reference: str | None = None,
) -> PaymentAttempt:
    with uow_factory() as uow:
        _, attempt = _locked_with_attempt(uow, payment_id, attempt_id)
        # PENDING and UNKNOWN never move money: one that arrives late (a query answer racing the
        # bank's notification) or repeats what we know teaches nothing, so it is dropped.
        if (attempt.status, event) not in ATTEMPT_TRANSITIONS:
            return attempt
        moved = _move_attempt(uow, attempt, event, clock.now(), cause, bank_reference=bank_reference)
        uow.commit()
        return moved


def _locked(uow: UnitOfWork, payment_id: str) -> Payment:
    payment = uow.payments.get_for_update(payment_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}", param="payment_id")
    return payment


def _locked_with_attempt(uow: UnitOfWork, payment_id: str, attempt_id: str) -> tuple[Payment, PaymentAttempt]:
    # The payment row is locked before the attempt is read: every change to a payment's attempts
    # takes this lock first, so "is any other attempt still in flight?" has one consistent answer.
    payment = _locked(uow, payment_id)
    attempt = uow.payments.get_attempt(attempt_id)
    if attempt is None or attempt.payment_id != payment_id:
        raise NotFound(f"payment {payment_id} has no attempt {attempt_id}", param="attempt_id")
    return payment, attempt


def _move(uow: UnitOfWork, payment: Payment, event: PaymentEvent, now: datetime, cause: str) -> Payment:
    moved = payment.moved_to(event, now)
    _write(uow, payment, moved, event, now, cause)
    return moved


def _write(uow: UnitOfWork, before: Payment, after: Payment, event: PaymentEvent, now: datetime, cause: str) -> None:
    if not uow.payments.update(after, expected=before.status):
        raise IllegalTransition(
            f"payment {before.id} changed while {event.value} was being recorded; read it again", param="status"
        )
    _record_move(uow, before, after, event, now, cause)


def _record_move(
    uow: UnitOfWork, before: Payment, after: Payment, event: PaymentEvent, now: datetime, cause: str
) -> None:
    _record(uow, before.id, None, before.status.value, after.status.value, event.value, cause, now)


def _move_attempt(
    uow: UnitOfWork,
    attempt: PaymentAttempt,
    event: AttemptEvent,
    now: datetime,
    cause: str,
    *,
    bank_reference: str | None = None,
    failure_code: str | None = None,
    failure_message: str | None = None,
) -> PaymentAttempt:
    """Moves the attempt by ``event`` with whatever the bank said, and records the transition."""
    moved = replace(
        attempt.moved_to(event, now),
        bank_reference=bank_reference or attempt.bank_reference,
        failure_code=failure_code,
        failure_message=failure_message,
    )
    if not uow.payments.update_attempt(moved, expected=attempt.status):
        raise IllegalTransition(
            f"attempt {attempt.id} changed while {event.value} was being recorded; read it again", param="status"
        )
    _record(uow, attempt.payment_id, attempt.id, attempt.status.value, moved.status.value, event.value, cause, now)
    return moved


def _record(
    uow: UnitOfWork,
    payment_id: str,
    attempt_id: str | None,
    from_status: str | None,
    to_status: str,
    event: str,
    cause: str,
    now: datetime,
) -> None:
    uow.payments.record_transition(
        Transition(payment_id, attempt_id, from_status, to_status, event, cause, now)
    )
