"""Monthly debit schedules against the real JHB simulator: a fixed schedule debits once per period
however often (and however many workers) run the job; a bill schedule waits for its bill; an
insufficient-funds answer fails the payment and queues ``payment.failed``.

The platform's clock is moved to next month's debit day; the bank keeps real time (the channel
stamps its own requests), so only the platform's idea of "due" moves.
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.bindings.conftest import ZHANG_WEI, bank_sms_code, register
from tests.gateway.conftest import BankWorld, add_merchant, gateway_settings_for
from tests.payments.conftest import assert_ledger_sound
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db.tables import events
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.debit_schedule import InvalidSchedule, RunStatus
from tianpay.domain.mandate import BEIJING, Mandate, business_date
from tianpay.domain.merchant import FeePlan, FeeRate
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentStatus
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import debit_schedules, mandates
from tianpay.services.member_tools import MemberTools

pytestmark = pytest.mark.e2e
SETTINGS = gateway_settings_for("http://127.0.0.1:9")
MERCHANT = "mch_SCHED"
JHB_CARD = "6227990000000000013"


@pytest.fixture
def merchant(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> str:
    add_merchant(uow_factory, clock, MERCHANT)
    with uow_factory() as uow:
        uow.merchants.set_fee_plan(FeePlan.of(MERCHANT, (FeeRate("direct_debit", 30), FeeRate("cashier", 60))))
        uow.commit()
    return MERCHANT


@pytest.fixture
def mandate(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
            tools: MemberTools, bank_world: BankWorld, merchant: str) -> Mandate:
    member_id = register(uow_factory, tools, merchant, ZHANG_WEI)
    request = mandates.MandateRequest(
        member_id=member_id, merchant_mandate_no=f"M-{ids.new('x')}", max_per_debit=Money.cny(20_000),
        max_per_month=Money.cny(30_000), valid_until=business_date(clock.now()) + timedelta(days=365),
        purpose="utility:gas", card_number=JHB_CARD, name=ZHANG_WEI.name, id_number=ZHANG_WEI.id_number,
        phone=ZHANG_WEI.phone,
    )
    applied = mandates.create_mandate(uow_factory, clock, ids, channels, tools.cipher, request, merchant_id=merchant)
    code = bank_sms_code(bank_world, "JHB", ZHANG_WEI.phone)
    return mandates.confirm_mandate(uow_factory, clock, channels, tools.cipher, applied.id, code, merchant_id=merchant)


def next_month_day(clock: SettableClock, day: int) -> datetime:
    today = business_date(clock.now())
    first = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return datetime(first.year, first.month, day, 10, 0, tzinfo=BEIJING)


def jhb_transfers(world: BankWorld) -> int:
    return len(world.state("JHB")["transfers"])


def run(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
        tools: MemberTools, worker_id: str = "w1") -> int:
    return debit_schedules.run_due_debits(uow_factory, clock, ids, channels, tools.cipher, SETTINGS, clock.now(),
                                          worker_id=worker_id)


def queued_events(uow_factory: UnitOfWorkFactory, merchant_id: str) -> list[tuple[str, str]]:
    """(type, payload text) of the merchant's queued webhooks."""
    with uow_factory() as uow:
        rows = uow._connection.execute(  # type: ignore[attr-defined]
            select(events.c.type, events.c.payload).where(events.c.merchant_id == merchant_id)
        ).all()
    return [(row.type, row.payload) for row in rows]


def test_a_fixed_schedule_debits_once_on_its_day_however_often_the_job_runs(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    schedule = debit_schedules.create_schedule(
        uow_factory, clock, ids, merchant_id=merchant, mandate_id=mandate.id, day_of_month=5,
        amount=Money.cny(3_000), subject="燃气费",
    )
    transfers_before = jhb_transfers(bank_world)
    clock.set(next_month_day(clock, 4))
    assert run(uow_factory, clock, ids, channels, tools) == 0
    clock.set(next_month_day(clock, 5))
    assert run(uow_factory, clock, ids, channels, tools) == 1
    assert run(uow_factory, clock, ids, channels, tools) == 0
    clock.advance(timedelta(days=3))
    assert run(uow_factory, clock, ids, channels, tools) == 0
    assert jhb_transfers(bank_world) == transfers_before + 1

    period = f"{business_date(clock.now()):%Y-%m}"
    with uow_factory() as uow:
        status, payment_id, _ = uow.debit_schedules.run_of(schedule.id, period) or (None, None, None)
        assert status is RunStatus.SUBMITTED
        assert payment_id is not None
        payment = uow.payments.get(payment_id, merchant_id=merchant)
    assert payment is not None
    assert (payment.status, payment.amount.minor) == (PaymentStatus.SUCCEEDED, 3_000)
    assert payment.out_trade_no == debit_schedules.out_trade_no_of(schedule.id, period)
    assert_ledger_sound(uow_factory)


def test_two_workers_running_at_once_debit_a_period_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    debit_schedules.create_schedule(uow_factory, clock, ids, merchant_id=merchant, mandate_id=mandate.id,
                                    day_of_month=1, amount=Money.cny(2_500), subject="物业费")
    clock.set(next_month_day(clock, 1))
    transfers_before = jhb_transfers(bank_world)
    start = threading.Barrier(2)
    claimed: dict[str, int] = {}

    def worker(name: str) -> None:
        start.wait()
        claimed[name] = run(uow_factory, clock, ids, channels, tools, worker_id=name)

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(claimed.values()) == [0, 1]
    assert jhb_transfers(bank_world) == transfers_before + 1


def test_a_claim_held_by_an_uncommitted_worker_is_not_claimed_again(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, mandate: Mandate,
    db_url: str,
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers; the race is PostgreSQL's")
    schedule = debit_schedules.create_schedule(uow_factory, clock, ids, merchant_id=merchant,
                                               mandate_id=mandate.id, day_of_month=1, amount=Money.cny(100),
                                               subject="物业费")
    first_claimed, release = threading.Event(), threading.Event()
    results: dict[str, bool] = {}

    def first() -> None:
        with uow_factory() as uow:
            results["first"] = uow.debit_schedules.claim_run(schedule.id, "2099-01", worker_id="a", now=clock.now())
            first_claimed.set()
            release.wait(10)
            uow.commit()

    def second() -> None:
        first_claimed.wait(10)
        with uow_factory() as uow:
            # Blocks on the first worker's uncommitted row, then inserts nothing.
            results["second"] = uow.debit_schedules.claim_run(schedule.id, "2099-01", worker_id="b", now=clock.now())
            uow.commit()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_claimed.wait(10)
    release.set()
    for thread in threads:
        thread.join(timeout=20)
    assert results == {"first": True, "second": False}


def test_a_bill_schedule_waits_for_its_bill_and_reports_insufficient_funds_by_webhook(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    schedule = debit_schedules.create_schedule(uow_factory, clock, ids, merchant_id=merchant,
                                               mandate_id=mandate.id, day_of_month=10, amount=None, subject="水费")
    clock.set(next_month_day(clock, 12))
    assert run(uow_factory, clock, ids, channels, tools) == 0  # no bill yet: nothing is due
    period = f"{business_date(clock.now()):%Y-%m}"
    # Ends in 51: JHB declines it for insufficient funds (BANKS.md, magic amounts).
    debit_schedules.add_bill(uow_factory, clock, merchant_id=merchant, mandate_id=mandate.id,
                             schedule_id=schedule.id, period=period, amount=Money.cny(10_051))
    debit_schedules.add_bill(uow_factory, clock, merchant_id=merchant, mandate_id=mandate.id,
                             schedule_id=schedule.id, period=period, amount=Money.cny(10_051))
    with pytest.raises(debit_schedules.BillConflict):
        debit_schedules.add_bill(uow_factory, clock, merchant_id=merchant, mandate_id=mandate.id,
                                 schedule_id=schedule.id, period=period, amount=Money.cny(9_000))
    assert run(uow_factory, clock, ids, channels, tools) == 1
    assert run(uow_factory, clock, ids, channels, tools) == 0

    with uow_factory() as uow:
        _, payment_id, _ = uow.debit_schedules.run_of(schedule.id, period) or (None, None, None)
        assert payment_id is not None
        payment = uow.payments.get(payment_id, merchant_id=merchant)
    assert payment is not None
    assert payment.status is PaymentStatus.FAILED
    failed = [payload for kind, payload in queued_events(uow_factory, merchant) if kind == "payment.failed"]
    assert len(failed) == 1
    assert payment_id in failed[0]
    assert json.loads(failed[0])["data"]["status"] == "failed"
    with uow_factory() as uow:
        assert [a.failure_code for a in uow.payments.attempts_of(payment_id)] == ["1051"]
    assert_ledger_sound(uow_factory)


def test_schedule_terms_are_checked(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, mandate: Mandate,
) -> None:
    with pytest.raises(InvalidSchedule):
        debit_schedules.create_schedule(uow_factory, clock, ids, merchant_id=merchant, mandate_id=mandate.id,
                                        day_of_month=31, amount=Money.cny(100), subject="x")
    with pytest.raises(InvalidSchedule):
        debit_schedules.create_schedule(uow_factory, clock, ids, merchant_id=merchant, mandate_id=mandate.id,
                                        day_of_month=3, amount=Money.cny(20_001), subject="x")


def test_a_period_refused_before_the_bank_is_recorded_and_told_to_the_merchant(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    schedule = debit_schedules.create_schedule(uow_factory, clock, ids, merchant_id=merchant, mandate_id=mandate.id,
                                               day_of_month=2, amount=Money.cny(5_000), subject="物业费")
    clock.set(next_month_day(clock, 2))
    period = f"{business_date(clock.now()):%Y-%m}"
    # The merchant's own debits used the whole month's 300.00 before the schedule's day.
    for number, amount_minor in (("manual-1", 20_000), ("manual-2", 10_000)):
        mandates.debit(uow_factory, clock, ids, channels, tools.cipher, SETTINGS, merchant_id=merchant,
                       mandate_id=mandate.id, out_trade_no=number, amount=Money.cny(amount_minor), subject="燃气费")
    transfers_before = jhb_transfers(bank_world)

    assert run(uow_factory, clock, ids, channels, tools) == 1
    assert run(uow_factory, clock, ids, channels, tools) == 0
    assert jhb_transfers(bank_world) == transfers_before
    with uow_factory() as uow:
        assert uow.debit_schedules.run_of(schedule.id, period) == (RunStatus.REFUSED, None, "mandate_limit_exceeded")
    notices = [json.loads(payload)["data"] for kind, payload in queued_events(uow_factory, merchant)
               if kind == "debit_schedule.missed"]
    assert [(n["schedule_id"], n["period"], n["status"], n["failure_code"], n["payment_id"]) for n in notices] == [
        (schedule.id, period, "refused", "mandate_limit_exceeded", None)
    ]
