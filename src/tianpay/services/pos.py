"""POS acquiring use cases: terminals, the terminal's transactions, and their money.

The POS front persists every request before it calls the switch (``begin``), then records the
answer here. An approved purchase becomes a platform payment (``method=pos``) with one attempt on
the ``tcs`` channel, so its ledger entry, transition trail and ``payment.succeeded`` webhook are the
ones every payment gets. A void or a reversal of an approved purchase posts the mirror entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from tianpay.domain.errors import NotFound
from tianpay.domain.money import Money
from tianpay.domain.notifications import EventType
from tianpay.domain.payment import PaymentMethod, PaymentRequest, PaymentStatus
from tianpay.domain.pos import (
    BatchTotals,
    PosKind,
    PosStatus,
    PosTransaction,
    ReversalStatus,
    Terminal,
    TerminalStatus,
    batch_totals,
)
from tianpay.domain.posting_rules import POS_VOID_REVERSED, pos_payment_undone
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services.payments import (
    create_pos_payment,
    payment_view,
    record_attempt_succeeded,
    start_attempt,
)

POS_CHANNEL = "tcs"
# The reversal schedule: quick retries first (a switch that dropped one answer usually takes the
# next), then the worker keeps trying with back-off up to the bound, after which an operator looks.
REVERSAL_BACKOFF_S: tuple[int, ...] = (1, 2, 5, 15, 60, 300, 900, 3600)
MAX_REVERSAL_TRIES = 30


def create_terminal(
    uow_factory: UnitOfWorkFactory, clock: Clock, *, merchant_id: str, tid: str, mid: str, tmk_ciphertext: str
) -> Terminal:
    with uow_factory() as uow:
        if uow.merchants.get(merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id}", param="merchant")
        terminal = Terminal(tid, mid, merchant_id, 1, TerminalStatus.ACTIVE, clock.now())
        uow.terminals.add(terminal, tmk_ciphertext)
        uow.commit()
        return terminal


def begin(uow_factory: UnitOfWorkFactory, txn: PosTransaction, *, pan_ciphertext: str | None = None) -> bool:
    """Persists the request before the switch sees it; False for a duplicate STAN in the batch."""
    with uow_factory() as uow:
        added = uow.pos_transactions.add(txn, pan_ciphertext)
        uow.commit()
        return added


def record_declined(uow_factory: UnitOfWorkFactory, clock: Clock, txn: PosTransaction, response_code: str) -> None:
    with uow_factory() as uow:
        declined = replace(txn, status=PosStatus.DECLINED, response_code=response_code)
        uow.pos_transactions.update(declined, expected=PosStatus.SUBMITTED, now=clock.now())
        uow.commit()


def record_balance(
    uow_factory: UnitOfWorkFactory, clock: Clock, txn: PosTransaction, *, rrn: str | None
) -> None:
    with uow_factory() as uow:
        answered = replace(txn, status=PosStatus.APPROVED, response_code="00", rrn=rrn)
        uow.pos_transactions.update(answered, expected=PosStatus.SUBMITTED, now=clock.now())
        uow.commit()


def record_purchase_approved(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    txn: PosTransaction,
    *,
    merchant_id: str,
    bank: str,
    rrn: str,
    auth_code: str,
) -> PosTransaction:
    """The issuer approved: the purchase becomes a succeeded platform payment (ledger + webhook)."""
    amount = Money.cny(txn.amount_minor)
    request = PaymentRequest(
        merchant_id=merchant_id,
        # The terminal's own key for the sale, unique per terminal, batch and STAN.
        out_trade_no=f"POS{txn.tid}{txn.batch_no:06d}{txn.stan}",
        amount=amount,
        method=PaymentMethod.POS,
        subject=f"POS {txn.tid} {txn.card_masked}",
        metadata={"tid": txn.tid, "stan": txn.stan, "rrn": rrn, "card": txn.card_masked},
    )
    payment = create_pos_payment(uow_factory, clock, ids, request).payment
    if payment.status is not PaymentStatus.SUCCEEDED:
        attempt = start_attempt(uow_factory, clock, ids, payment.id, channel=POS_CHANNEL, bank=bank)
        record_attempt_succeeded(
            uow_factory, clock, payment.id, attempt.id, bank_reference=rrn, amount=amount
        )
    approved = replace(
        txn, status=PosStatus.APPROVED, response_code="00", rrn=rrn, auth_code=auth_code,
        payment_id=payment.id, bank=bank,
    )
    with uow_factory() as uow:
        uow.pos_transactions.update(approved, expected=PosStatus.SUBMITTED, now=clock.now())
        uow.commit()
    return approved


def find(uow_factory: UnitOfWorkFactory, tid: str, batch_no: int, stan: str) -> PosTransaction | None:
    with uow_factory() as uow:
        return uow.pos_transactions.get(tid, batch_no, stan)


def record_void_approved(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    void: PosTransaction,
    original: PosTransaction,
    *,
    rrn: str,
    auth_code: str,
) -> PosTransaction:
    """A same-day void: the purchase's payment is fully refunded at once (``refund.succeeded``)."""
    now = clock.now()
    with uow_factory() as uow:
        _undo_payment(uow, original, now, voided=True)
        uow.pos_transactions.update(replace(original, status=PosStatus.VOIDED), expected=PosStatus.APPROVED, now=now)
        approved = replace(void, status=PosStatus.APPROVED, response_code="00", rrn=rrn, auth_code=auth_code,
                           payment_id=original.payment_id, bank=original.bank)
        uow.pos_transactions.update(approved, expected=PosStatus.SUBMITTED, now=now)
        uow.commit()
        return approved


def owe_reversal(uow_factory: UnitOfWorkFactory, clock: Clock, txn: PosTransaction) -> None:
    """Persists that a reversal is owed to the switch (the worker finishes it after a restart)."""
    now = clock.now()
    with uow_factory() as uow:
        current = uow.pos_transactions.get_by_id(txn.id)
        if current is None or current.reversal_status is not ReversalStatus.NONE:
            return
        uow.pos_transactions.set_reversal(txn.id, ReversalStatus.PENDING, tries=0, next_at=now, now=now)
        uow.commit()


def reversal_tried(uow_factory: UnitOfWorkFactory, clock: Clock, txn_id: str, tries: int) -> bool:
    """Schedules the next try; False once the bound is reached (left pending for an operator)."""
    now = clock.now()
    exhausted = tries >= MAX_REVERSAL_TRIES
    delay_s = REVERSAL_BACKOFF_S[min(tries, len(REVERSAL_BACKOFF_S)) - 1] if tries else REVERSAL_BACKOFF_S[0]
    # Past the bound the reversal stays pending with no next try: ``reversals_due`` no longer picks
    # it (a NULL time is never due) and an operator finds it among the pending ones.
    next_at = None if exhausted else now + timedelta(seconds=delay_s)
    with uow_factory() as uow:
        uow.pos_transactions.set_reversal(txn_id, ReversalStatus.PENDING, tries=tries, next_at=next_at, now=now)
        uow.commit()
    return not exhausted


def record_reversed(uow_factory: UnitOfWorkFactory, clock: Clock, txn_id: str) -> PosTransaction | None:
    """The switch acknowledged the reversal (0410): the transaction is reversed, and its money too.

    Idempotent: a second acknowledgement finds the transaction reversed already and does nothing.
    A reversed *void* revives its purchase: TCS debits the card again (docs/banks/tcs.md §4
    "Void"), so the purchase is approved again and the merchant's credit comes back.
    """
    now = clock.now()
    with uow_factory() as uow:
        txn = uow.pos_transactions.get_by_id(txn_id)
        if txn is None:
            return None
        if txn.status is not PosStatus.REVERSED:
            if txn.kind is PosKind.PURCHASE and txn.status is PosStatus.APPROVED:
                _undo_payment(uow, txn, now, voided=False)
            elif txn.kind is PosKind.VOID and txn.status is PosStatus.APPROVED and txn.original_stan:
                _revive_voided_purchase(uow, txn, now)
            reversed_txn = replace(txn, status=PosStatus.REVERSED)
            uow.pos_transactions.update(reversed_txn, expected=txn.status, now=now)
            txn = reversed_txn
        uow.pos_transactions.set_reversal(txn.id, ReversalStatus.DONE, tries=txn.reversal_tries, next_at=None, now=now)
        uow.commit()
        return txn


def record_reversal_refused(uow_factory: UnitOfWorkFactory, clock: Clock, txn_id: str) -> None:
    """TCS acknowledged the 0400 but could not undo (a void whose card can no longer pay, 0410 96,
    docs/banks/tcs.md §4 "Void"): the transaction stands as it is and nothing more is owed."""
    now = clock.now()
    with uow_factory() as uow:
        txn = uow.pos_transactions.get_by_id(txn_id)
        if txn is not None:
            uow.pos_transactions.set_reversal(
                txn.id, ReversalStatus.DONE, tries=txn.reversal_tries, next_at=None, now=now
            )
            uow.commit()


def sealed_pan(uow_factory: UnitOfWorkFactory, txn_id: str) -> str | None:
    with uow_factory() as uow:
        return uow.pos_transactions.sealed_pan(txn_id)


def reversals_due(uow_factory: UnitOfWorkFactory, clock: Clock, limit: int = 50) -> Sequence[PosTransaction]:
    with uow_factory() as uow:
        return uow.pos_transactions.reversals_due(clock.now(), limit)


def totals_of_batch(uow_factory: UnitOfWorkFactory, tid: str, batch_no: int) -> BatchTotals:
    with uow_factory() as uow:
        return batch_totals(uow.pos_transactions.in_batch(tid, batch_no))


def settle_batch(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    tid: str,
    batch_no: int,
    reported: BatchTotals,
    *,
    switch_agrees: bool = True,
) -> tuple[BatchTotals, bool]:
    """Compares the terminal's totals with ours; when they agree (and the switch agreed with ours,
    docs/banks/tcs.md §5) the terminal moves to a new batch."""
    with uow_factory() as uow:
        ours = batch_totals(uow.pos_transactions.in_batch(tid, batch_no))
        balanced = ours == reported and switch_agrees
        if balanced:
            uow.terminals.next_batch(tid, clock.now())
        uow.commit()
        return ours, balanced


def _revive_voided_purchase(work: UnitOfWork, void: PosTransaction, now: datetime) -> None:
    """Undoes a void's refund: the purchase is approved again and its ledger credit is re-posted.

    The re-posting is the exact reversal of the void's ``pos_payment.voided`` entry, so its id is
    derived from that entry's and a repeated acknowledgement cannot post it twice.
    """
    purchase = work.pos_transactions.get(void.tid, void.batch_no, void.original_stan or "")
    if purchase is None or purchase.status is not PosStatus.VOIDED:
        return
    work.pos_transactions.update(replace(purchase, status=PosStatus.APPROVED), expected=PosStatus.VOIDED, now=now)
    if purchase.payment_id is None or purchase.bank is None:
        return
    payment = work.payments.get_for_update(purchase.payment_id)
    if payment is None:
        raise NotFound(f"no payment {purchase.payment_id}", param="payment_id")
    voided = pos_payment_undone(
        payment_id=payment.id, merchant_id=payment.merchant_id, bank=purchase.bank, amount=payment.amount,
        fee=payment.fee_amount, voided=True,
    )
    work.ledger.post(voided.reversal(POS_VOID_REVERSED))
    work.payments.update(replace(payment, refunded_amount=Money.zero(payment.amount.currency), updated_at=now),
                         expected=payment.status)


def _undo_payment(work: UnitOfWork, txn: PosTransaction, now: datetime, *, voided: bool) -> None:
    if txn.payment_id is None or txn.bank is None:
        return
    payment = work.payments.get_for_update(txn.payment_id)
    if payment is None:
        raise NotFound(f"no payment {txn.payment_id}", param="payment_id")
    if payment.refunded_amount == payment.amount:
        return
    work.ledger.post(
        pos_payment_undone(
            payment_id=payment.id, merchant_id=payment.merchant_id, bank=txn.bank, amount=payment.amount,
            fee=payment.fee_amount, voided=voided,
        )
    )
    refunded = replace(payment, refunded_amount=payment.amount, updated_at=now)
    work.payments.update(refunded, expected=payment.status)
    view = payment_view(refunded)
    work.outbox.add_event(
        payment.merchant_id,
        EventType.REFUND_SUCCEEDED,
        {
            "object": "refund",
            "kind": "pos_void" if voided else "pos_reversal",
            "payment_id": payment.id,
            "amount": payment.amount.minor,
            "currency": payment.amount.currency.code,
            "status": "succeeded",
            "payment": view,
        },
    )
