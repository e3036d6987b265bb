"""Refund use cases: request (idempotent by out_refund_no), record the bank's answer, re-query, read.

A refund follows DESIGN.md §7: its intent (the refund row, the payment's refunded amount and the
ledger's request entry) commits in one unit of work; the bank is called after that, outside any
transaction; its answer is recorded in a new unit of work. A refund whose outcome is unknown is
queried until the bank answers, never submitted again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.errors import IllegalTransition, NotFound
from tianpay.domain.ledger import JournalEntry
from tianpay.domain.money import Money
from tianpay.domain.notifications import EventType, iso_utc
from tianpay.domain.payment import AmountMismatch, Payment, PaymentAttempt
from tianpay.domain.posting_rules import (
    late_success_refund_requested,
    refund_failed,
    refund_requested,
    refund_succeeded,
    wallet_refund,
)
from tianpay.domain.reconciliation import AfterClose, against_suspense
from tianpay.domain.refund import (
    TRANSITIONS,
    PaymentNotRefundable,
    Refund,
    RefundEvent,
    RefundExceedsPayment,
    RefundKind,
    RefundNotSupported,
    RefundRequest,
    RefundStatus,
    check_refundable,
    check_request,
    fee_returned_with,
    new_refund,
)
from tianpay.domain.wallet import WALLET_BANK, WALLET_CHANNEL
from tianpay.ports.channels import ChannelDirectory, ChannelResult, Outcome, RefundChannel, RefundOrder
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.payments import LateSuccessRefund
from tianpay.ports.refunds import RefundTransition
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services.idempotency import run_idempotent
from tianpay.services.suspense_follow_ups import ClosedFollowUp, closed_follow_up, open_recorded_after_close

log = structlog.stdlib.get_logger(__name__)

IDEMPOTENCY_SCOPE: Final = "refunds"
REQUERY_BATCH_SIZE: Final = 50
LATE_SUCCESS_BATCH_SIZE: Final = 20

# The statuses of a ``late_success_refunds`` row as the refund machinery moves it.
LATE_PENDING: Final = "pending"
LATE_REFUNDING: Final = "refunding"
LATE_DONE: Final = "done"
LATE_FAILED: Final = "failed"

# FAILED and NOT_SUBMITTED both mean that no money moved: the refund fails and is reversed.
_EVENT_BY_OUTCOME: Final[Mapping[Outcome, RefundEvent]] = {
    Outcome.SUCCEEDED: RefundEvent.SUCCEEDED,
    Outcome.FAILED: RefundEvent.FAILED,
    Outcome.NOT_SUBMITTED: RefundEvent.FAILED,
    Outcome.PENDING: RefundEvent.PENDING,
    Outcome.UNKNOWN: RefundEvent.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class RequeryPolicy:
    """When in-flight refunds are queried: first ``first_after_s`` after creation, then doubling.

    The services default to Settings' defaults; the worker passes the configured values.
    """

    first_after_s: float = 60.0
    max_interval_s: float = 1800.0

    def first_query_at(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.first_after_s)

    def next_query_at(self, now: datetime, queries_made: int) -> datetime:
        """The time of the query after the ``queries_made``-th: 2×, 4×, 8× … the first wait, capped."""
        interval_s = min(self.first_after_s * 2 ** min(queries_made, 32), self.max_interval_s)
        return now + timedelta(seconds=interval_s)


@dataclass(frozen=True, slots=True)
class CreatedRefund:
    """The refund a create call names: new, or the first one when the request is a repeat."""

    refund: Refund
    replayed: bool


# ---- merchant-facing use cases ---------------------------------------------------------------------


def create_refund(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    merchant_id: str,
    payment_id: str,
    request: RefundRequest,
    *,
    notify_base_url: str,
    policy: RequeryPolicy = RequeryPolicy(),
) -> CreatedRefund:
    """Refunds ``request.amount`` of the merchant's succeeded payment and returns the refund as it is now.

    The same out_refund_no with the same request returns the first refund (as it is now, the bank is
    not called again); with a different request it raises IdempotencyConflict. A refused request
    (RefundExceedsPayment, PaymentNotRefundable, NotFound …) stores nothing.
    """
    check_request(request)
    created: list[Refund] = []

    def insert(uow: UnitOfWork) -> tuple[int, Mapping[str, object]]:
        refund = _insert_merchant_refund(uow, clock, ids, channels, merchant_id, payment_id, request, policy)
        created.append(refund)
        return 201, refund_view(refund)

    stored = run_idempotent(
        uow_factory,
        merchant_id=merchant_id,
        scope=IDEMPOTENCY_SCOPE,
        key=request.out_refund_no,
        request_hash=request.fingerprint(payment_id),
        create=insert,
        param="out_refund_no",
        taken_by=lambda uow: uow.refunds.id_of_out_refund_no(merchant_id, request.out_refund_no),
    )
    if created:
        # A wallet payment's refund succeeded in its own unit of work: there is no bank to call.
        if created[0].status is RefundStatus.SUCCEEDED:
            return CreatedRefund(created[0], replayed=False)
        refund = _submit(uow_factory, clock, ids, channels, created[0], notify_base_url)
        return CreatedRefund(refund, replayed=False)
    # A repeat: the stored first answer names the refund, which is read as it is now.
    return CreatedRefund(get_refund(uow_factory, merchant_id, str(stored.body["id"])), replayed=stored.replayed)


def get_refund(uow_factory: UnitOfWorkFactory, merchant_id: str, refund_id: str) -> Refund:
    """The merchant's refund; another merchant's (or the platform's own late-success) refund is NotFound."""
    with uow_factory() as uow:
        refund = uow.refunds.get(refund_id, merchant_id=merchant_id)
    if refund is None or refund.kind is not RefundKind.MERCHANT:
        raise NotFound(f"no refund {refund_id}", param="id")
    return refund


def list_refunds_for_payment(uow_factory: UnitOfWorkFactory, merchant_id: str, payment_id: str) -> Sequence[Refund]:
    """The refunds the merchant asked for on its payment, oldest first."""
    with uow_factory() as uow:
        if uow.payments.get(payment_id, merchant_id=merchant_id) is None:
            raise NotFound(f"no payment {payment_id}", param="id")
        return uow.refunds.of_payment(payment_id, kind=RefundKind.MERCHANT)


def refund_transitions_of(uow_factory: UnitOfWorkFactory, refund_id: str) -> Sequence[RefundTransition]:
    """The refund's transition trail, oldest first (for support and tests)."""
    with uow_factory() as uow:
        return uow.refunds.transitions_of(refund_id)


def refunds_of_payment(uow_factory: UnitOfWorkFactory, payment_id: str) -> Sequence[Refund]:
    """Every refund of a payment, the platform's late-success refunds included (operators' view)."""
    with uow_factory() as uow:
        return uow.refunds.of_payment(payment_id, kind=None)


# ---- the bank's answer: called after the submit, by the re-query job and by notifications ----------------


def apply_refund_result(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, refund_id: str, result: ChannelResult
) -> None:
    """Records what the bank said about a refund: a compare-and-set that follows the transition table.

    SUCCEEDED posts the success entry; FAILED and NOT_SUBMITTED reverse the request entry and give
    the refunded amount back to the payment; PENDING and UNKNOWN only move the status. A repeat, a
    late duplicate (a notification after the query already recorded it) or an answer that teaches
    nothing (UNKNOWN about a processing refund) is a no-op. Raises NotFound for a refund we never
    made and AmountMismatch (recording nothing) when the bank confirms another amount.
    A success for a refund whose statement line was booked to suspense and whose follow-up an operator
    closed moves suspense instead of the reserve (written off) or fails the refund (recovered: the money
    came back), and opens an exception (docs/reconciliation.md, "After a follow-up is closed").
    ``ids`` is unused today and kept so every recorder has the same shape.
    """
    del ids
    event = _EVENT_BY_OUTCOME[result.outcome]
    with uow_factory() as uow:
        refund = uow.refunds.get(refund_id)
        if refund is None:
            raise NotFound(f"no refund {refund_id}", param="refund_id")
        if (refund.status, event) not in TRANSITIONS:
            return
        # Locks are taken payment first, then refund, in the same order as a refund request, so a
        # failure giving the amount back never deadlocks with a new refund of the same payment.
        if refund.kind is RefundKind.MERCHANT:
            uow.payments.get_for_update(refund.payment_id)
        refund = uow.refunds.get_for_update(refund_id)
        if refund is None or (refund.status, event) not in TRANSITIONS:
            return
        if event is RefundEvent.SUCCEEDED and result.amount is not None and result.amount != refund.amount:
            raise AmountMismatch(
                f"the bank reported {result.amount} for refund {refund_id} of {refund.amount}", param="amount"
            )
        now = clock.now()
        closed = closed_follow_up(uow, refund_id) if event is RefundEvent.SUCCEEDED else None
        if closed is not None and closed.treatment is AfterClose.UNDONE:
            event = RefundEvent.FAILED
            result = closed.undo(result)
        moved, entry_id = _move(uow, refund, event, result, now, closed)
        if closed is not None:
            open_recorded_after_close(uow, closed, entry_id=entry_id, record_status=moved.status.value, now=now)
        uow.commit()


# ---- worker jobs ------------------------------------------------------------------------------------


def requery_refunds(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    now: datetime,
    *,
    policy: RequeryPolicy = RequeryPolicy(),
    batch_size: int = REQUERY_BATCH_SIZE,
) -> int:
    """Queries the bank about in-flight refunds whose next query is due; returns how many it queried.

    Claiming is one unit of work that moves each due refund's next query into the future (first
    ``policy.first_after_s`` after creation, then doubling up to ``policy.max_interval_s``), so a
    second worker skips them; the queries run after the commit, outside any transaction.
    """
    with uow_factory() as uow:
        claimed: list[Refund] = []
        for refund in uow.refunds.due_for_query(now, limit=batch_size):
            queries = refund.query_count + 1
            next_at = policy.next_query_at(now, queries)
            if uow.refunds.reschedule(refund.id, expected=refund.status, next_query_at=next_at, query_count=queries):
                claimed.append(refund)
        uow.commit()
    for refund in claimed:
        try:
            result = _channel(channels, refund.bank).query_refund(refund.id, refund.created_at)
            apply_refund_result(uow_factory, clock, ids, refund.id, result)
        except Exception:
            # One refund's trouble (a bank without a channel, an amount mismatch) must not stop the
            # others; it stays in flight and is queried again at its next time.
            log.exception("refund_requery_failed", refund_id=refund.id, bank=refund.bank)
    return len(claimed)


def process_late_success_refunds(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    now: datetime,
    *,
    notify_base_url: str,
    policy: RequeryPolicy = RequeryPolicy(),
    batch_size: int = LATE_SUCCESS_BATCH_SIZE,
) -> int:
    """Refunds, at its bank, every attempt that succeeded after its payment already had; returns how many.

    Each pending ``late_success_refunds`` row is claimed (pending → refunding, a compare-and-set)
    in the unit of work that creates its refund and books it from ``platform:suspense``; the bank
    is called after the commit. The row ends ``done`` when the refund succeeds, or ``failed`` when
    the bank declines it, which leaves the money in suspense for an operator. The merchant is never
    notified: it never saw that attempt.
    """
    created: list[Refund] = []
    with uow_factory() as uow:
        for row in uow.refunds.pending_late_successes(limit=batch_size):
            refund = _insert_late_success_refund(uow, ids, row, now, policy)
            if refund is not None:
                created.append(refund)
        uow.commit()
    for refund in created:
        _submit(uow_factory, clock, ids, channels, refund, notify_base_url)
    return len(created)


# ---- the refund as merchants see it -----------------------------------------------------------------------


def refund_view(refund: Refund) -> dict[str, object]:
    """The refund's public JSON (the API's ``refund`` object and every ``refund.*`` event's data)."""
    return {
        "id": refund.id,
        "object": "refund",
        "payment_id": refund.payment_id,
        "out_refund_no": refund.out_refund_no,
        "amount": refund.amount.minor,
        "currency": refund.amount.currency.code,
        "fee_returned": refund.fee_returned.minor,
        "status": refund.status.public,
        "failure_code": refund.failure_code,
        "created_at": iso_utc(refund.created_at),
        "succeeded_at": None if refund.succeeded_at is None else iso_utc(refund.succeeded_at),
    }


# ---- helpers -------------------------------------------------------------------------------------------


def _insert_merchant_refund(
    uow: UnitOfWork,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    merchant_id: str,
    payment_id: str,
    request: RefundRequest,
    policy: RequeryPolicy,
) -> Refund:
    # The payment row is locked first: the refunded amount and the fee returned so far are then one
    # consistent reading, whatever other refunds of this payment are being requested or resolved.
    payment = uow.payments.get_for_update(payment_id)
    if payment is None or payment.merchant_id != merchant_id:
        raise NotFound(f"no payment {payment_id}", param="id")
    check_refundable(payment, request.amount)
    attempt = _succeeded_attempt(uow, payment)
    paid_from_wallet = attempt.channel == WALLET_CHANNEL
    if not paid_from_wallet:
        _channel(channels, attempt.bank)
    now = clock.now()
    standing = [r for r in uow.refunds.of_payment(payment.id) if r.status is not RefundStatus.FAILED]
    fee_before = sum((r.fee_returned for r in standing), Money.zero(payment.amount.currency))
    refund = new_refund(
        payment,
        request,
        refund_id=ids.new(id_prefixes.REFUND),
        bank=attempt.bank,
        attempt_id=attempt.id,
        fee_returned=fee_returned_with(payment, fee_before, request.amount),
        now=now,
        next_query_at=policy.first_query_at(now),
    )
    uow.refunds.add(refund)
    # Redundant under the row lock, and kept on purpose: the conditional write is what guarantees
    # refunded ≤ amount, even for a writer that forgot the lock.
    if not uow.refunds.add_refunded(payment.id, refund.amount):
        raise RefundExceedsPayment(f"the refund exceeds what is left of payment {payment.id}", param="amount")
    _record(uow, refund.id, None, refund.status.value, "created", "requested by the merchant", now)
    if paid_from_wallet:
        return _refund_to_wallet(uow, refund, now)
    uow.ledger.post(_request_entry(refund))
    return refund


def _refund_to_wallet(uow: UnitOfWork, refund: Refund, now: datetime) -> Refund:
    """A wallet payment's refund goes back to the wallet at once: one entry, succeeded, notified."""
    payer = uow.wallet.payment_of_attempt(refund.attempt_id)
    if payer is None:
        raise NotFound(f"wallet attempt {refund.attempt_id} names no payer", param="payment_id")
    uow.ledger.post(
        wallet_refund(
            refund_id=refund.id,
            payment_id=refund.payment_id,
            merchant_id=refund.merchant_id,
            member_id=payer.member_id,
            amount=refund.amount,
            fee_returned=refund.fee_returned,
        )
    )
    result = ChannelResult(Outcome.SUCCEEDED, bank_reference=refund.id, amount=refund.amount)
    return _move(uow, refund, RefundEvent.SUCCEEDED, result, now)[0]


def _insert_late_success_refund(
    uow: UnitOfWork, ids: IdGenerator, row: LateSuccessRefund, now: datetime, policy: RequeryPolicy
) -> Refund | None:
    if not uow.refunds.set_late_success_status(row.attempt_id, expected=LATE_PENDING, status=LATE_REFUNDING):
        return None
    payment = uow.payments.get(row.payment_id)
    if payment is None:
        raise NotFound(f"no payment {row.payment_id}", param="payment_id")
    refund = Refund(
        id=ids.new(id_prefixes.REFUND),
        kind=RefundKind.LATE_SUCCESS,
        payment_id=row.payment_id,
        merchant_id=payment.merchant_id,
        out_refund_no=None,
        amount=row.amount,
        fee_returned=Money.zero(row.amount.currency),
        reason=f"attempt {row.attempt_id} succeeded after the payment had already been paid",
        status=RefundStatus.CREATED,
        bank=row.bank,
        attempt_id=row.attempt_id,
        created_at=now,
        updated_at=now,
        next_query_at=policy.first_query_at(now),
    )
    uow.refunds.add(refund)
    uow.ledger.post(_request_entry(refund))
    _record(uow, refund.id, None, refund.status.value, "created", "late success returned to the payer", now)
    return refund


def _submit(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: ChannelDirectory,
    refund: Refund,
    notify_base_url: str,
) -> Refund:
    """Sends the committed refund to its bank once and records the answer; returns the refund as it is now."""
    with uow_factory() as uow:
        attempt = uow.payments.get_attempt(refund.attempt_id)
    if attempt is None or attempt.bank_reference is None:
        raise NotFound(f"refund {refund.id} names no paid attempt", param="attempt_id")
    order = RefundOrder(
        refund_id=refund.id,
        payment_attempt_id=attempt.id,
        payment_bank_reference=attempt.bank_reference,
        payment_created_at=attempt.created_at,
        amount=refund.amount,
        created_at=refund.created_at,
        notify_url=f"{notify_base_url.rstrip('/')}/channels/{refund.bank}/notify",
    )
    try:
        result = _channel(channels, refund.bank).refund(order)
    except Exception:
        # A channel answers every bank trouble with an outcome; an exception is our own bug, after
        # which nobody knows whether the request left. The refund is queried, never sent again.
        log.exception("refund_submit_failed", refund_id=refund.id, bank=refund.bank)
        result = ChannelResult(Outcome.UNKNOWN, bank_message="the refund call raised; query it")
    apply_refund_result(uow_factory, clock, ids, refund.id, result)
    with uow_factory() as uow:
        current = uow.refunds.get(refund.id)
    return current or refund


def _move(
    uow: UnitOfWork,
    refund: Refund,
    event: RefundEvent,
    result: ChannelResult,
    now: datetime,
    closed: ClosedFollowUp | None = None,
) -> tuple[Refund, str | None]:
    """Moves the refund and posts what the move books; returns it and that entry's id (if any)."""
    failed = event is RefundEvent.FAILED
    moved = replace(
        refund.moved_to(event, now),
        bank_reference=result.bank_reference or refund.bank_reference,
        failure_code=(result.bank_code or result.outcome.value) if failed else None,
        failure_message=(result.bank_message or None) if failed else None,
    )
    if not uow.refunds.update(moved, expected=refund.status):
        raise IllegalTransition(
            f"refund {refund.id} changed while {event.value} was being recorded; read it again", param="status"
        )
    cause = f"{result.outcome.value} {result.bank_code or ''} {result.bank_message}".strip()
    _record(uow, refund.id, refund.status.value, moved.status.value, event.value, cause, now)
    entry_id = None
    if event is RefundEvent.SUCCEEDED:
        entry_id = _on_success(uow, moved, against_suspense_of=closed)
    elif failed:
        entry_id = _on_failure(uow, moved)
    return moved, entry_id


def _on_success(uow: UnitOfWork, refund: Refund, *, against_suspense_of: ClosedFollowUp | None = None) -> str | None:
    # A wallet refund's one entry was posted with it (_refund_to_wallet); no money was in transit.
    entry_id = None
    if refund.bank != WALLET_BANK:
        entry = refund_succeeded(refund_id=refund.id, bank=refund.bank, amount=refund.amount)
        if against_suspense_of is not None:
            # The suspense booking already took the line out of the reserve: the refund's money in
            # transit settles against suspense instead (docs/reconciliation.md).
            entry = against_suspense(entry, bank=refund.bank) or entry
        uow.ledger.post(entry)
        entry_id = entry.id
    if refund.kind is RefundKind.LATE_SUCCESS:
        uow.refunds.set_late_success_status(refund.attempt_id, expected=LATE_REFUNDING, status=LATE_DONE)
        return entry_id
    uow.outbox.add_event(refund.merchant_id, EventType.REFUND_SUCCEEDED, refund_view(refund))
    return entry_id


def _on_failure(uow: UnitOfWork, refund: Refund) -> str:
    entry = refund_failed(_request_entry(refund))
    uow.ledger.post(entry)
    if refund.kind is RefundKind.LATE_SUCCESS:
        # The money stays in platform:suspense; an operator decides (another try, another way).
        uow.refunds.set_late_success_status(refund.attempt_id, expected=LATE_REFUNDING, status=LATE_FAILED)
        return entry.id
    if not uow.refunds.give_back_refunded(refund.payment_id, refund.amount):
        raise IllegalTransition(f"payment {refund.payment_id} has less refunded than refund {refund.id}")
    uow.outbox.add_event(refund.merchant_id, EventType.REFUND_FAILED, refund_view(refund))
    return entry.id


def _request_entry(refund: Refund) -> JournalEntry:
    if refund.kind is RefundKind.LATE_SUCCESS:
        return late_success_refund_requested(
            refund_id=refund.id, attempt_id=refund.attempt_id, bank=refund.bank, amount=refund.amount
        )
    return refund_requested(
        refund_id=refund.id,
        payment_id=refund.payment_id,
        merchant_id=refund.merchant_id,
        bank=refund.bank,
        amount=refund.amount,
        fee_returned=refund.fee_returned,
    )


def _succeeded_attempt(uow: UnitOfWork, payment: Payment) -> PaymentAttempt:
    attempt = None if payment.succeeded_attempt_id is None else uow.payments.get_attempt(payment.succeeded_attempt_id)
    if attempt is None or attempt.bank_reference is None:
        raise PaymentNotRefundable(f"payment {payment.id} has no paid attempt to refund", param="payment_id")
    return attempt


def _channel(channels: ChannelDirectory, bank: str) -> RefundChannel:
    try:
        return channels.refunds(bank)
    except NotFound:
        raise RefundNotSupported(f"{bank} takes no refunds through this platform", param="payment_id") from None


def _record(
    uow: UnitOfWork, refund_id: str, from_status: str | None, to_status: str, event: str, cause: str, now: datetime
) -> None:
    uow.refunds.record_transition(RefundTransition(refund_id, from_status, to_status, event, cause, now))
