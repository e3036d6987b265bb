"""The stale debit-claim sweep against the real JHB simulator, on both databases: a (schedule, period)
left ``claimed`` by a worker that died is taken over once its lease ran out, debited exactly once
(also when the dead worker had created the payment but not yet asked the bank), and never debited a
second time when the dead worker had already got its payment to the bank. A period whose payment
expired before any worker came back is recorded ``missed`` and told to the merchant once
(``debit_schedule.missed``), never debited late, never dropped silently. The jobs are the ones the
worker runs (``entrypoints/worker.py``)."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

import pytest

from tests.gateway.conftest import BankWorld
from tests.mandates import conftest as mandate_world
from tests.mandates import test_debit_schedules as schedule_tests
from tests.mandates.test_debit_schedules import SETTINGS, jhb_transfers, next_month_day, queued_events, run
from tests.payments.conftest import assert_ledger_sound
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.bootstrap import Container
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.debit_schedule import DebitSchedule, RunStatus
from tianpay.domain.mandate import Mandate, business_date, debit_period
from tianpay.domain.money import Money
from tianpay.domain.payment import Payment, PaymentMethod, PaymentRequest, PaymentStatus
from tianpay.entrypoints.worker import Job, direct_debit_jobs
from tianpay.ports.mandates import MandateDebit
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import debit_schedules, mandates
from tianpay.services import payments as payment_service
from tianpay.services.member_tools import MemberTools

pytestmark = pytest.mark.e2e
# The real bank world, a merchant priced for direct debit and an active JHB mandate: the direct-debit
# tests' fixtures, used here as they are.
bank_world, onboarded_dir, channels = mandate_world.bank_world, mandate_world.onboarded_dir, mandate_world.channels
clock, ids, tools = mandate_world.clock, mandate_world.ids, mandate_world.tools
merchant, mandate = schedule_tests.merchant, schedule_tests.mandate
LEASE = timedelta(minutes=15)


def sweep(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
          tools: MemberTools, worker_id: str = "w2") -> int:
    return debit_schedules.retake_stale_claims(
        uow_factory, clock, ids, channels, tools.cipher, SETTINGS, clock.now(), worker_id=worker_id, lease=LEASE
    )


def due_schedule(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str,
                 mandate: Mandate) -> tuple[DebitSchedule, str]:
    schedule = debit_schedules.create_schedule(
        uow_factory, clock, ids, merchant_id=merchant, mandate_id=mandate.id, day_of_month=3,
        amount=Money.cny(1_800), subject="水费",
    )
    clock.set(next_month_day(clock, 3))
    return schedule, f"{business_date(clock.now()):%Y-%m}"


def claim_and_die(uow_factory: UnitOfWorkFactory, clock: SettableClock, schedule: DebitSchedule, period: str) -> None:
    """What a worker leaves behind when it dies right after its claim committed."""
    with uow_factory() as uow:
        assert uow.debit_schedules.claim_run(schedule.id, period, worker_id="dead:1", now=clock.now())
        uow.commit()


def run_of(uow_factory: UnitOfWorkFactory, schedule: DebitSchedule, period: str) -> tuple[RunStatus, str | None]:
    with uow_factory() as uow:
        found = uow.debit_schedules.run_of(schedule.id, period)
    assert found is not None
    return found[0], found[1]


def created_by_dead_worker(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str,
                           mandate: Mandate, schedule: DebitSchedule, period: str) -> Payment:
    """The period's payment, created (through the service, as the debit does) by a worker that then died."""
    return payment_service.create_payment(uow_factory, clock, ids, PaymentRequest(
        merchant_id=merchant, out_trade_no=debit_schedules.out_trade_no_of(schedule.id, period),
        amount=Money.cny(1_800), method=PaymentMethod.DIRECT_DEBIT, subject="水费",
        metadata={"mandate_id": mandate.id},
    )).payment


def recorded_by_old_code(uow_factory: UnitOfWorkFactory, clock: SettableClock, payment: Payment,
                         mandate: Mandate) -> None:
    """The debit record older code committed before the attempt it never got to create."""
    with uow_factory() as uow:
        uow.mandates.add_debit(MandateDebit(payment.id, mandate.id, debit_period(clock.now()), payment.amount.minor,
                                            clock.now()))
        uow.commit()


def worker_jobs(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
                tools: MemberTools) -> dict[str, Job]:
    """The direct-debit jobs as the worker wires them, with the default 15-minute claim lease."""
    container = SimpleNamespace(
        uow=uow_factory, clock=clock, ids=ids, channels=channels, member_tools=tools,
        settings=SimpleNamespace(base_url=SETTINGS.base_url, requery_first_after_s=SETTINGS.requery_first_after_s,
                                 requery_max_interval_s=SETTINGS.requery_max_interval_s,
                                 absent_order_margin_s=SETTINGS.absent_order_margin_s,
                                 debit_claim_lease_s=LEASE.total_seconds()),
    )
    return {job.name: job for job in direct_debit_jobs(cast(Container, container), worker_id="w2")}


def missed_notices(uow_factory: UnitOfWorkFactory, merchant: str) -> list[dict[str, object]]:
    return [json.loads(payload)["data"] for kind, payload in queued_events(uow_factory, merchant)
            if kind == "debit_schedule.missed"]


def test_a_claim_left_by_a_dead_worker_is_taken_over_after_the_lease_and_debited_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    schedule, period = due_schedule(uow_factory, clock, ids, merchant, mandate)
    transfers_before = jhb_transfers(bank_world)
    claim_and_die(uow_factory, clock, schedule, period)

    # The claim keeps the normal job away, and the sweep leaves it alone while its lease runs.
    assert run(uow_factory, clock, ids, channels, tools) == 0
    clock.advance(LEASE - timedelta(seconds=1))
    assert sweep(uow_factory, clock, ids, channels, tools) == 0
    assert run_of(uow_factory, schedule, period) == (RunStatus.CLAIMED, None)

    clock.advance(timedelta(seconds=2))
    assert sweep(uow_factory, clock, ids, channels, tools) == 1
    status, payment_id = run_of(uow_factory, schedule, period)
    assert status is RunStatus.SUBMITTED
    assert payment_id is not None
    assert jhb_transfers(bank_world) == transfers_before + 1

    # Nothing more to take over, nothing due: later sweeps and runs debit nothing.
    clock.advance(LEASE * 2)
    assert sweep(uow_factory, clock, ids, channels, tools) == 0
    assert run(uow_factory, clock, ids, channels, tools) == 0
    assert jhb_transfers(bank_world) == transfers_before + 1
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id, merchant_id=merchant)
    assert payment is not None
    assert (payment.status, payment.amount.minor) == (PaymentStatus.SUCCEEDED, 1_800)
    assert_ledger_sound(uow_factory)


def test_a_dead_worker_whose_debit_reached_the_bank_is_not_debited_again(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    schedule, period = due_schedule(uow_factory, clock, ids, merchant, mandate)
    transfers_before = jhb_transfers(bank_world)
    claim_and_die(uow_factory, clock, schedule, period)
    # The dead worker got as far as the bank: its debit went through, but it never recorded the run.
    debited = mandates.debit(
        uow_factory, clock, ids, channels, tools.cipher, SETTINGS, merchant_id=merchant, mandate_id=mandate.id,
        out_trade_no=debit_schedules.out_trade_no_of(schedule.id, period), amount=Money.cny(1_800), subject="水费",
    )
    assert jhb_transfers(bank_world) == transfers_before + 1

    clock.advance(LEASE + timedelta(seconds=1))
    assert sweep(uow_factory, clock, ids, channels, tools) == 1
    assert run_of(uow_factory, schedule, period) == (RunStatus.SUBMITTED, debited.payment.id)
    assert jhb_transfers(bank_world) == transfers_before + 1
    assert_ledger_sound(uow_factory)


def test_a_dead_worker_that_created_the_payment_but_never_reached_the_bank_is_debited_by_the_sweep_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    schedule, period = due_schedule(uow_factory, clock, ids, merchant, mandate)
    transfers_before = jhb_transfers(bank_world)
    claim_and_die(uow_factory, clock, schedule, period)
    # The dead worker created the period's payment (through the service, as its debit does) and died
    # before asking the bank: without the sweep carrying it on, the payment would expire unpaid.
    stranded = payment_service.create_payment(uow_factory, clock, ids, PaymentRequest(
        merchant_id=merchant, out_trade_no=debit_schedules.out_trade_no_of(schedule.id, period),
        amount=Money.cny(1_800), method=PaymentMethod.DIRECT_DEBIT, subject="水费",
        metadata={"mandate_id": mandate.id},
    )).payment
    assert jhb_transfers(bank_world) == transfers_before

    clock.advance(LEASE + timedelta(seconds=1))
    assert sweep(uow_factory, clock, ids, channels, tools) == 1
    assert run_of(uow_factory, schedule, period) == (RunStatus.SUBMITTED, stranded.id)
    assert jhb_transfers(bank_world) == transfers_before + 1
    assert payment_service.find_payment(uow_factory, merchant, stranded.id).status is PaymentStatus.SUCCEEDED

    clock.advance(LEASE * 2)
    assert sweep(uow_factory, clock, ids, channels, tools) == 0
    assert run(uow_factory, clock, ids, channels, tools) == 0
    assert jhb_transfers(bank_world) == transfers_before + 1
    assert_ledger_sound(uow_factory)


def test_of_two_workers_taking_over_one_stale_claim_only_one_wins(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, mandate: Mandate,
) -> None:
    schedule, period = due_schedule(uow_factory, clock, ids, merchant, mandate)
    claim_and_die(uow_factory, clock, schedule, period)
    clock.advance(LEASE + timedelta(seconds=1))
    with uow_factory() as uow:
        (stale,) = uow.debit_schedules.stale_claims(clock.now() - LEASE, limit=10)
    assert (stale.schedule_id, stale.period, stale.claimed_by) == (schedule.id, period, "dead:1")
    outcomes = []
    for worker_id in ("w2", "w3"):
        with uow_factory() as uow:
            outcomes.append(uow.debit_schedules.retake_claim(stale, worker_id=worker_id, now=clock.now()))
            uow.commit()
    assert outcomes == [True, False]
    with uow_factory() as uow:
        assert list(uow.debit_schedules.stale_claims(clock.now() - LEASE, limit=10)) == []


def test_a_period_whose_payment_expired_before_any_worker_came_back_is_recorded_missed_and_told_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    schedule, period = due_schedule(uow_factory, clock, ids, merchant, mandate)
    jobs = worker_jobs(uow_factory, clock, ids, channels, tools)
    transfers_before = jhb_transfers(bank_world)
    claim_and_die(uow_factory, clock, schedule, period)
    stranded = created_by_dead_worker(uow_factory, clock, ids, merchant, mandate, schedule, period)

    # Every worker was away longer than a payment lives: the first job back is the payment expiry.
    clock.advance(timedelta(minutes=31))
    assert payment_service.expire_payments(uow_factory, clock.now()) == 1
    assert jobs["stale_debit_claims"].run_once(clock.now()) == 1

    assert run_of(uow_factory, schedule, period) == (RunStatus.MISSED, stranded.id)
    with uow_factory() as uow:
        assert uow.debit_schedules.run_of(schedule.id, period) == (RunStatus.MISSED, stranded.id, "payment_expired")
    assert payment_service.find_payment(uow_factory, merchant, stranded.id).status is PaymentStatus.CLOSED
    assert missed_notices(uow_factory, merchant) == [{
        "object": "debit_schedule_run", "schedule_id": schedule.id, "mandate_id": mandate.id, "period": period,
        "out_trade_no": debit_schedules.out_trade_no_of(schedule.id, period), "amount": 1_800, "currency": "CNY",
        "status": "missed", "payment_id": stranded.id, "failure_code": "payment_expired",
    }]
    assert [kind for kind, _ in queued_events(uow_factory, merchant) if kind.startswith("payment.")] == [
        "payment.closed"
    ]

    # The period is not debited late, by the sweep or by the daily job, and is told only once.
    clock.advance(LEASE * 2)
    assert jobs["stale_debit_claims"].run_once(clock.now()) == 0
    assert jobs["scheduled_debits"].run_once(clock.now()) == 0
    assert jhb_transfers(bank_world) == transfers_before
    assert len(missed_notices(uow_factory, merchant)) == 1
    with uow_factory() as uow:
        # A late finish by the dead worker (or another sweeper) changes nothing.
        assert not uow.debit_schedules.finish_run(schedule.id, period, RunStatus.SUBMITTED, payment_id=stranded.id,
                                                  failure_code=None, now=clock.now())
    assert run_of(uow_factory, schedule, period) == (RunStatus.MISSED, stranded.id)
    assert_ledger_sound(uow_factory)


def test_a_sweep_that_finds_the_payment_past_its_expiry_but_not_yet_closed_records_the_period_missed(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    schedule, period = due_schedule(uow_factory, clock, ids, merchant, mandate)
    jobs = worker_jobs(uow_factory, clock, ids, channels, tools)
    transfers_before = jhb_transfers(bank_world)
    claim_and_die(uow_factory, clock, schedule, period)
    # Older code had also recorded the debit against the mandate before it died.
    stranded = created_by_dead_worker(uow_factory, clock, ids, merchant, mandate, schedule, period)
    recorded_by_old_code(uow_factory, clock, stranded, mandate)

    clock.advance(timedelta(minutes=31))
    assert jobs["stale_debit_claims"].run_once(clock.now()) == 1
    with uow_factory() as uow:
        assert uow.debit_schedules.run_of(schedule.id, period) == (RunStatus.MISSED, stranded.id, "payment_expired")
    assert jhb_transfers(bank_world) == transfers_before
    assert [notice["status"] for notice in missed_notices(uow_factory, merchant)] == ["missed"]

    # The expiry job closes it as for any payment; its record no longer holds the month.
    assert payment_service.expire_payments(uow_factory, clock.now()) == 1
    assert payment_service.find_payment(uow_factory, merchant, stranded.id).status is PaymentStatus.CLOSED
    with uow_factory() as uow:
        assert uow.mandates.month_total_minor(mandate.id, debit_period(clock.now())) == 0
        assert uow.payments.attempts_of(stranded.id) == []
    assert len(missed_notices(uow_factory, merchant)) == 1


def test_a_sweep_in_time_carries_on_a_debit_whose_record_older_code_left_without_an_attempt(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    schedule, period = due_schedule(uow_factory, clock, ids, merchant, mandate)
    jobs = worker_jobs(uow_factory, clock, ids, channels, tools)
    transfers_before = jhb_transfers(bank_world)
    claim_and_die(uow_factory, clock, schedule, period)
    stranded = created_by_dead_worker(uow_factory, clock, ids, merchant, mandate, schedule, period)
    recorded_by_old_code(uow_factory, clock, stranded, mandate)

    clock.advance(LEASE + timedelta(seconds=1))
    assert jobs["stale_debit_claims"].run_once(clock.now()) == 1
    assert run_of(uow_factory, schedule, period) == (RunStatus.SUBMITTED, stranded.id)
    assert payment_service.find_payment(uow_factory, merchant, stranded.id).status is PaymentStatus.SUCCEEDED
    assert jhb_transfers(bank_world) == transfers_before + 1
    with uow_factory() as uow:
        assert uow.mandates.month_total_minor(mandate.id, debit_period(clock.now())) == 1_800
    assert missed_notices(uow_factory, merchant) == []
    assert_ledger_sound(uow_factory)
