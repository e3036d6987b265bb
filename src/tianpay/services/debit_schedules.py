"""Monthly debit schedules on mandates: registration, per-period bills, and the worker job that runs
due debits once per (schedule, period).

The job claims the (schedule, period) row in its own committed transaction before any bank is
asked (DESIGN.md §7: persist intent → commit → call the bank); a second worker's claim inserts
nothing and it moves on. The debit itself goes through ``services.mandates.debit`` with an
``out_trade_no`` derived from the claim, so even a replayed run is a replay, never a second debit.
A bank's refusal (insufficient funds) fails the payment, which sends ``payment.failed``.

A period the schedule gives up on without the bank's answer is never dropped silently: refused before
the bank, or ``missed`` (its payment closed before any worker got it to the bank), it is recorded so
and the merchant gets one ``debit_schedule.missed``. The schedule does not debit that period again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.debit_schedule import (
    AmountKind,
    DebitSchedule,
    DueDebit,
    InvalidSchedule,
    RunStatus,
    ScheduleStatus,
    check_period,
    check_terms,
    due_period,
    first_period,
)
from tianpay.domain.errors import DomainError, NotFound
from tianpay.domain.mandate import MandateNotActive, MandateStatus, business_date
from tianpay.domain.money import Money
from tianpay.domain.notifications import EventType, iso_utc
from tianpay.domain.payment import Payment, PaymentStatus
from tianpay.ports.channels import DirectDebitDirectory
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.debit_schedules import StaleClaim
from tianpay.ports.members import PiiCipher
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import mandates
from tianpay.services.gateway import GatewaySettings

log = structlog.stdlib.get_logger(__name__)

DUE_BATCH_SIZE = 50


class BillConflict(DomainError):
    """A period's bill was already posted with another amount; bills are never replaced."""

    code = "bill_conflict"


def create_schedule(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, *, merchant_id: str, mandate_id: str,
    day_of_month: int, amount: Money | None, subject: str,
) -> DebitSchedule:
    """A fixed schedule when ``amount`` is given, otherwise a ``bill`` schedule."""
    mandate = mandates.get_mandate(uow_factory, mandate_id, merchant_id=merchant_id)
    if mandate.status is not MandateStatus.ACTIVE:
        raise MandateNotActive(f"mandate {mandate.id} is {mandate.status.value}", param="id")
    kind = AmountKind.BILL if amount is None else AmountKind.FIXED
    check_terms(day_of_month, kind, amount, mandate.max_per_debit)
    now = clock.now()
    schedule = DebitSchedule(
        id=ids.new(id_prefixes.DEBIT_SCHEDULE), merchant_id=merchant_id, mandate_id=mandate.id,
        day_of_month=day_of_month, amount_kind=kind, fixed_amount=amount, subject=subject,
        first_period=first_period(now, day_of_month), status=ScheduleStatus.ACTIVE, created_at=now,
    )
    with uow_factory() as uow:
        uow.debit_schedules.add(schedule)
        uow.commit()
    return schedule


def add_bill(
    uow_factory: UnitOfWorkFactory, clock: Clock, *, merchant_id: str, mandate_id: str, schedule_id: str,
    period: str, amount: Money,
) -> Money:
    """Posts a period's amount on a ``bill`` schedule; posting the same bill again is a no-op."""
    check_period(period)
    if not amount.is_positive:
        raise InvalidSchedule("amount must be positive", param="amount")
    schedule = get_schedule(uow_factory, mandate_id, schedule_id, merchant_id=merchant_id)
    if schedule.amount_kind is not AmountKind.BILL:
        raise InvalidSchedule("this schedule debits a fixed amount; it takes no bills", param="schedule_id")
    with uow_factory() as uow:
        if not uow.debit_schedules.add_bill(schedule.id, period, amount.minor, clock.now()):
            existing = uow.debit_schedules.bill_minor(schedule.id, period)
            if existing != amount.minor:
                raise BillConflict(f"the bill for {period} was already posted with another amount", param="amount")
        uow.commit()
    return amount


def run_due_debits(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, channels: DirectDebitDirectory,
    pii: PiiCipher, settings: GatewaySettings, now: datetime, *, worker_id: str, batch_size: int = DUE_BATCH_SIZE,
) -> int:
    """The worker job: claims and debits each due (schedule, period); returns how many it claimed."""
    claimed = 0
    for due in _due(uow_factory, now, batch_size):
        with uow_factory() as uow:
            won = uow.debit_schedules.claim_run(due.schedule.id, due.period, worker_id=worker_id, now=clock.now())
            uow.commit()
        if not won:
            continue
        claimed += 1
        _debit(uow_factory, clock, ids, channels, pii, settings, due)
    return claimed


def retake_stale_claims(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, channels: DirectDebitDirectory,
    pii: PiiCipher, settings: GatewaySettings, now: datetime, *, worker_id: str, lease: timedelta,
    batch_size: int = DUE_BATCH_SIZE,
) -> int:
    """The sweep: a (schedule, period) still ``claimed`` after ``lease`` lost its worker between the
    claim and the end of its debit; this worker takes the claim over and finishes the period.

    Taking over is a compare-and-set on the claim's holder and time, so of two sweeping workers one
    wins. The debit's ``out_trade_no`` is fixed by the (schedule, period), so finishing is a repeat
    of the dead worker's debit and can never debit twice: a payment it created but never got to the
    bank is carried on to the bank now; one that has an attempt is recorded as it is (an unclear
    attempt is resolved by re-query, never sent again); with no payment yet, the debit runs now.
    Returns how many claims it took over.
    """
    with uow_factory() as uow:
        stale = uow.debit_schedules.stale_claims(now - lease, limit=batch_size)
    taken = 0
    for claim in stale:
        with uow_factory() as uow:
            won = uow.debit_schedules.retake_claim(claim, worker_id=worker_id, now=clock.now())
            uow.commit()
        if not won:
            continue
        taken += 1
        log.info("debit_schedule.claim_retaken", schedule_id=claim.schedule_id, period=claim.period,
                 dead_worker=claim.claimed_by)
        _finish_retaken(uow_factory, clock, ids, channels, pii, settings, claim)
    return taken


def _finish_retaken(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, channels: DirectDebitDirectory,
    pii: PiiCipher, settings: GatewaySettings, claim: StaleClaim,
) -> None:
    with uow_factory() as uow:
        schedule = uow.debit_schedules.get(claim.schedule_id)
        assert schedule is not None, "a run's schedule is never deleted"
        payment_id = uow.debit_schedules.payment_for(schedule.merchant_id, out_trade_no_of(schedule.id, claim.period))
        amount = schedule.fixed_amount
        if amount is None:
            bill = uow.debit_schedules.bill_minor(schedule.id, claim.period)
            amount = None if bill is None else Money.cny(bill)
    if schedule.status is ScheduleStatus.ACTIVE and amount is not None:
        # Whether or not the dead worker created the payment: a repeat of its debit is carried on to
        # the bank if it never got there, and returned as it is if it did.
        _debit(uow_factory, clock, ids, channels, pii, settings, DueDebit(schedule, claim.period, amount))
        return
    # Cancelled since the claim (a bill schedule is claimed only once its bill exists). A payment the
    # dead worker created is not carried on: the run names it as it is, and one that never reached
    # the bank expires with ``payment.closed``.
    status, failure_code = (RunStatus.REFUSED, "schedule_not_active") if payment_id is None else (
        RunStatus.SUBMITTED, None)
    with uow_factory() as uow:
        uow.debit_schedules.finish_run(schedule.id, claim.period, status, payment_id=payment_id,
                                       failure_code=failure_code, now=clock.now())
        uow.commit()


def get_schedule(uow_factory: UnitOfWorkFactory, mandate_id: str, schedule_id: str, *,
                 merchant_id: str | None) -> DebitSchedule:
    with uow_factory() as uow:
        schedule = uow.debit_schedules.get(schedule_id, merchant_id=merchant_id)
    if schedule is None or schedule.mandate_id != mandate_id:
        raise NotFound(f"no schedule {schedule_id} on mandate {mandate_id}", param="schedule_id")
    return schedule


def schedule_view(schedule: DebitSchedule) -> dict[str, object]:
    return {
        "id": schedule.id,
        "object": "debit_schedule",
        "mandate_id": schedule.mandate_id,
        "day_of_month": schedule.day_of_month,
        "amount_kind": schedule.amount_kind.value,
        "amount": None if schedule.fixed_amount is None else schedule.fixed_amount.minor,
        "currency": "CNY",
        "subject": schedule.subject,
        "first_period": schedule.first_period,
        "status": schedule.status.value,
        "created_at": iso_utc(schedule.created_at),
    }


def out_trade_no_of(schedule_id: str, period: str) -> str:
    """The debit's merchant number: one per (schedule, period), so a rerun can only replay it."""
    return f"{schedule_id}_{period}"


def _due(uow_factory: UnitOfWorkFactory, now: datetime, batch_size: int) -> Sequence[DueDebit]:
    today = business_date(now)
    period = f"{today:%Y-%m}"
    found: list[DueDebit] = []
    with uow_factory() as uow:
        for schedule in uow.debit_schedules.candidates(today.day, period, limit=batch_size):
            if due_period(schedule, now) != period:
                continue
            if schedule.fixed_amount is not None:
                found.append(DueDebit(schedule, period, schedule.fixed_amount))
                continue
            # A bill schedule waits for the period's bill; it is debited on the first run after it.
            bill = uow.debit_schedules.bill_minor(schedule.id, period)
            if bill is not None:
                found.append(DueDebit(schedule, period, Money.cny(bill)))
    return found


def _debit(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, channels: DirectDebitDirectory,
    pii: PiiCipher, settings: GatewaySettings, due: DueDebit,
) -> None:
    schedule = due.schedule
    try:
        created = mandates.debit(
            uow_factory, clock, ids, channels, pii, settings, merchant_id=schedule.merchant_id,
            mandate_id=schedule.mandate_id, out_trade_no=out_trade_no_of(schedule.id, due.period),
            amount=due.amount, subject=schedule.subject,
        )
    except DomainError as refused:
        # Refused before the bank (limit reached, mandate revoked meanwhile): the period is settled
        # as refused and the merchant sees the closed payment's ``payment.closed``.
        log.info("debit_schedule.refused", schedule_id=schedule.id, period=due.period, code=refused.code)
        _finish(uow_factory, clock, due, RunStatus.REFUSED, payment_id=None, failure_code=refused.code)
        return
    missed = _missed_because(uow_factory, created.payment, clock.now())
    if missed is not None:
        log.warning("debit_schedule.missed", schedule_id=schedule.id, period=due.period,
                    payment_id=created.payment.id, code=missed)
        _finish(uow_factory, clock, due, RunStatus.MISSED, payment_id=created.payment.id, failure_code=missed)
        return
    log.info("debit_schedule.debited", schedule_id=schedule.id, period=due.period,
             payment_id=created.payment.id, status=created.payment.status.value)
    _finish(uow_factory, clock, due, RunStatus.SUBMITTED, payment_id=created.payment.id, failure_code=None)


def _missed_because(uow_factory: UnitOfWorkFactory, payment: Payment, now: datetime) -> str | None:
    """Why the period's payment ended (or will end) without ever reaching the bank, or None when it
    reached the bank or still may.

    Only a worker that died after creating the payment leaves one unsent, and only a sweep that came
    after the payment's expiry finds it so: closed by the expiry job, or still ``created`` but past its
    time (``services.mandates`` never starts it then, and the expiry job will close it).
    """
    if payment.status is PaymentStatus.CREATED and not payment.is_expired_at(now):
        return None
    if payment.status not in (PaymentStatus.CREATED, PaymentStatus.CLOSED):
        return None
    with uow_factory() as uow:
        if uow.payments.attempts_of(payment.id):
            return None
    return "payment_expired" if payment.is_expired_at(now) else "payment_closed"


def _finish(uow_factory: UnitOfWorkFactory, clock: Clock, due: DueDebit, status: RunStatus, *,
            payment_id: str | None, failure_code: str | None) -> None:
    """Records the period's end; one the schedule gives up on is told to the merchant in the same
    unit of work, so the record and the notification exist together or not at all, and only once."""
    with uow_factory() as uow:
        finished = uow.debit_schedules.finish_run(due.schedule.id, due.period, status, payment_id=payment_id,
                                                  failure_code=failure_code, now=clock.now())
        if finished and status in (RunStatus.REFUSED, RunStatus.MISSED):
            uow.outbox.add_event(due.schedule.merchant_id, EventType.DEBIT_SCHEDULE_MISSED,
                                 run_view(due, status, payment_id=payment_id, failure_code=failure_code))
        uow.commit()


def run_view(
    due: DueDebit, status: RunStatus, *, payment_id: str | None, failure_code: str | None
) -> dict[str, object]:
    """A period's run as the merchant sees it (the data of ``debit_schedule.missed``)."""
    return {
        "object": "debit_schedule_run",
        "schedule_id": due.schedule.id,
        "mandate_id": due.schedule.mandate_id,
        "period": due.period,
        "out_trade_no": out_trade_no_of(due.schedule.id, due.period),
        "amount": due.amount.minor,
        "currency": due.amount.currency.code,
        "status": status.value,
        "payment_id": payment_id,
        "failure_code": failure_code,
    }
