"""Payouts through the real simulated banks, on SQLite and PostgreSQL: submit, success, failure,
unclear answers resolved by query, bounces, concurrent dispatchers, idempotent requests, and banks
switched off in the console."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from tests.lock_waits import overlapping_requests
from tests.payouts.conftest import (
    LI_NA_JHB,
    MERCHANT_ID,
    RESERVES,
    SHOP_BCB,
    WANG_FANG_HBB,
    PayoutWorld,
    available_minor,
    fund_merchant,
)
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.console import BankSwitchedOff, ChannelSetting
from tianpay.domain.errors import Conflict, IdempotencyConflict, InsufficientBalance
from tianpay.domain.money import Money
from tianpay.domain.payout import PayeeAccount, Payout, PayoutRequest, PayoutStatus
from tianpay.domain.posting_rules import bank_payment_succeeded
from tianpay.domain.settlement import business_date_of
from tianpay.ports.channels import ChannelResult, Outcome
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import payouts, settlement
from tianpay.services.member_tools import MemberTools
from tianpay.services.refunds import RequeryPolicy

POLICY = RequeryPolicy(first_after_s=60.0, max_interval_s=600.0)


def request(number: str, minor: int, payee: tuple[str, str, str] = WANG_FANG_HBB) -> PayoutRequest:
    return PayoutRequest(number, Money.cny(minor), "货款结算", PayeeAccount(*payee))


class Payer:
    """The services as the API and the worker call them, with the test's clock and the real channels."""

    def __init__(self, uow: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
                 tools: MemberTools) -> None:
        self.uow, self.clock, self.ids, self.channels, self.tools = uow, clock, ids, channels, tools

    def create(self, req: PayoutRequest) -> Payout:
        return payouts.create_payout(self.uow, self.clock, self.ids, self.channels, self.tools.cipher, MERCHANT_ID,
                                     req).payout

    def dispatch(self) -> int:
        return payouts.dispatch_payouts(self.uow, self.clock, self.ids, self.channels, self.tools.cipher,
                                        self.clock.now(), policy=POLICY)

    def requery_later(self, minutes: int = 5) -> int:
        self.clock.advance(timedelta(minutes=minutes))
        return payouts.requery_payouts(self.uow, self.clock, self.channels, self.tools.cipher, self.clock.now(),
                                       policy=POLICY)

    def get(self, payout_id: str) -> Payout:
        return payouts.get_payout(self.uow, MERCHANT_ID, payout_id)

    def trail(self, payout_id: str) -> list[str]:
        return [t.to_status for t in payouts.payout_transitions_of(self.uow, payout_id)]

    def events(self) -> list[str]:
        with self.uow() as uow:
            return [event.type.value for event in uow.outbox.list_events(MERCHANT_ID, limit=100).events]


@pytest.fixture
def payer(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
          tools: MemberTools) -> Payer:
    fund_merchant(uow_factory, clock, 1_000_000)
    return Payer(uow_factory, clock, ids, channels, tools)


def ledger_is_sound(uow: UnitOfWorkFactory) -> bool:
    with uow() as unit:
        return unit.ledger.verify() is None


def test_a_payout_to_an_hbb_account_arrives_and_books_the_success_entry(
    payer: Payer, payout_world: PayoutWorld, uow_factory: UnitOfWorkFactory
) -> None:
    before = payout_world.balance("HBB", WANG_FANG_HBB[1])
    created = payer.create(request("P-OK-1", 12_300))
    assert created.status is PayoutStatus.CREATED
    assert created.bank == "HBB"
    assert available_minor(uow_factory) == 1_000_000 - 12_300
    assert payer.dispatch() == 1
    if payer.get(created.id).status is not PayoutStatus.SUCCEEDED:
        payer.requery_later()
    done = payer.get(created.id)
    assert done.status is PayoutStatus.SUCCEEDED
    assert done.batch_id is not None
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == before + 12_300
    assert payer.trail(created.id)[:2] == ["created", "processing"]
    assert payer.trail(created.id)[-1] == "succeeded"
    assert "payout.succeeded" in payer.events()
    with uow_factory() as uow:
        assert uow.ledger.balance("bank:HBB:in_transit").minor == 0
    assert ledger_is_sound(uow_factory)


def test_a_declined_payout_fails_and_its_money_returns_to_the_available_balance(
    payer: Payer, payout_world: PayoutWorld, uow_factory: UnitOfWorkFactory
) -> None:
    before = payout_world.balance("HBB", WANG_FANG_HBB[1])
    created = payer.create(request("P-DECLINED", 10_051))
    payer.dispatch()
    failed = payer.get(created.id)
    assert failed.status is PayoutStatus.FAILED
    assert failed.failure_code
    assert available_minor(uow_factory) == 1_000_000
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == before
    assert "payout.failed" in payer.events()
    assert ledger_is_sound(uow_factory)


def test_a_lost_answer_leaves_the_payout_unknown_until_the_same_batch_is_queried(
    payer: Payer, payout_world: PayoutWorld, uow_factory: UnitOfWorkFactory
) -> None:
    before = payout_world.balance("HBB", WANG_FANG_HBB[1])
    created = payer.create(request("P-LOST", 10_096))
    payer.dispatch()
    unclear = payer.get(created.id)
    assert unclear.status is PayoutStatus.UNKNOWN
    assert payer.requery_later() == 1
    done = payer.get(created.id)
    assert done.status is PayoutStatus.SUCCEEDED
    assert done.batch_id == unclear.batch_id
    # One transfer only: the payout was queried, never sent again.
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == before + 10_096
    assert ledger_is_sound(uow_factory)


def test_a_bounce_after_success_returns_the_money_and_tells_the_merchant_once(
    payer: Payer, uow_factory: UnitOfWorkFactory
) -> None:
    created = payer.create(request("P-BOUNCE", 20_000))
    payer.dispatch()
    if payer.get(created.id).status is not PayoutStatus.SUCCEEDED:
        payer.requery_later()
    assert available_minor(uow_factory) == 1_000_000 - 20_000
    bounce = ChannelResult(Outcome.SUCCEEDED, bank_reference="RT-1", bank_message="户名不符退票")
    returned = payouts.apply_payout_return(uow_factory, payer.clock, created.id, bounce)
    again = payouts.apply_payout_return(uow_factory, payer.clock, created.id, bounce)
    assert returned.status is PayoutStatus.RETURNED
    assert returned.returned_at is not None
    assert again.status is PayoutStatus.RETURNED
    assert available_minor(uow_factory) == 1_000_000
    assert payer.events().count("payout.returned") == 1
    assert ledger_is_sound(uow_factory)


def test_a_success_after_the_money_was_returned_on_a_failure_raises_an_alert_and_changes_nothing(
    payer: Payer, uow_factory: UnitOfWorkFactory
) -> None:
    created = payer.create(request("P-CHANGED", 10_051))
    payer.dispatch()
    assert payer.get(created.id).status is PayoutStatus.FAILED
    after = payouts.apply_payout_result(uow_factory, payer.clock, created.id, ChannelResult(Outcome.SUCCEEDED))
    assert after.status is PayoutStatus.FAILED
    assert available_minor(uow_factory) == 1_000_000
    with uow_factory() as uow:
        alerts = [a for a in uow.alerts.open_alerts() if a.subject_id == created.id]
    assert [a.kind.value for a in alerts] == ["bank_changed_its_mind"]


def test_two_workers_dispatching_at_once_never_send_a_payout_twice(
    payer: Payer, payout_world: PayoutWorld, uow_factory: UnitOfWorkFactory
) -> None:
    before = payout_world.balance("HBB", WANG_FANG_HBB[1])
    made = [payer.create(request(f"P-RACE-{n}", 1_000 + n)) for n in range(6)]
    sent: list[int] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        sent.append(payer.dispatch())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(sent) == len(made)
    for payout in made:
        assert payer.trail(payout.id).count("processing") == 1
    payer.requery_later()
    assert all(payer.get(p.id).status is PayoutStatus.SUCCEEDED for p in made)
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == before + sum(p.amount.minor for p in made)


def test_a_repeated_request_names_the_first_payout_and_a_changed_one_is_a_conflict(
    payer: Payer, uow_factory: UnitOfWorkFactory
) -> None:
    first = payouts.create_payout(uow_factory, payer.clock, payer.ids, payer.channels, payer.tools.cipher,
                                  MERCHANT_ID, request("P-SAME", 5_000))
    repeat = payouts.create_payout(uow_factory, payer.clock, payer.ids, payer.channels, payer.tools.cipher,
                                   MERCHANT_ID, request("P-SAME", 5_000))
    assert not first.replayed
    assert repeat.replayed
    assert repeat.payout.id == first.payout.id
    with pytest.raises(IdempotencyConflict):
        payer.create(request("P-SAME", 5_001))
    assert available_minor(uow_factory) == 1_000_000 - 5_000


def test_a_repeat_sent_while_the_first_request_is_still_open_names_the_first_payout(
    payer: Payer, uow_factory: UnitOfWorkFactory, engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the overlap is observed through PostgreSQL's lock waits")
    # One request stops at its insert with its idempotency claim uncommitted, and the other is seen
    # waiting on that claim (without the claim it would reach the table's unique key instead).
    answers = overlapping_requests(engine, "payouts", lambda: payouts.create_payout(
        uow_factory, payer.clock, payer.ids, payer.channels, payer.tools.cipher, MERCHANT_ID, request("P-TWICE", 5_000)
    ))

    created = [answer for answer in answers if isinstance(answer, payouts.CreatedPayout)]
    assert len(created) == 2, answers
    assert len({c.payout.id for c in created}) == 1
    assert sorted(c.replayed for c in created) == [False, True]
    assert [p.id for p in payouts.list_payouts(uow_factory, MERCHANT_ID)[0]] == [created[0].payout.id]
    assert available_minor(uow_factory) == 1_000_000 - 5_000
    assert ledger_is_sound(uow_factory)


def test_a_duplicate_out_payout_no_that_reaches_the_table_is_a_conflict_and_the_unit_of_work_rolls_back(
    payer: Payer, uow_factory: UnitOfWorkFactory
) -> None:
    # The idempotency claim keeps this from happening through create_payout; the table's unique key is
    # the backstop, and without a savepoint around the insert (docs/performance.md) the whole unit of
    # work goes, on both databases, including what it wrote before the duplicate.
    first = payer.create(request("P-1", 5_000))
    with pytest.raises(Conflict) as raised, uow_factory() as uow:
        uow.payouts.add(replace(first, id=payer.ids.new("pyo"), out_payout_no="P-2"))
        uow.payouts.add(replace(first, id=payer.ids.new("pyo")))
        uow.commit()
    assert raised.value.param == "out_payout_no"
    assert [p.id for p in payouts.list_payouts(uow_factory, MERCHANT_ID)[0]] == [first.id]


def test_a_payout_the_balance_does_not_cover_is_refused_and_stores_nothing(
    payer: Payer, uow_factory: UnitOfWorkFactory
) -> None:
    with pytest.raises(InsufficientBalance):
        payer.create(request("P-TOO-MUCH", 1_000_001))
    assert available_minor(uow_factory) == 1_000_000
    assert payouts.list_payouts(uow_factory, MERCHANT_ID)[0] == []
    # The number stays free: the corrected request goes through.
    assert payer.create(request("P-TOO-MUCH", 1_000_000)).status is PayoutStatus.CREATED


def test_a_payee_at_a_bank_without_a_payout_channel_is_paid_from_bcb_through_clearing(
    payer: Payer, payout_world: PayoutWorld, channels: ChannelRegistry
) -> None:
    if "BCB" not in channels.payout_banks():
        pytest.fail("the BCB payout adapter is not registered yet")
    before = payout_world.balance("JHB", LI_NA_JHB[1])
    created = payer.create(request("P-CROSS", 30_000, LI_NA_JHB))
    assert created.bank == "BCB"
    payer.dispatch()
    for _ in range(3):
        if payer.get(created.id).status is PayoutStatus.SUCCEEDED:
            break
        payer.requery_later()
    assert payer.get(created.id).status is PayoutStatus.SUCCEEDED
    assert payout_world.balance("JHB", LI_NA_JHB[1]) == before + 30_000
    assert RESERVES["BCB"]


def test_a_settled_settlement_of_a_merchant_with_automatic_payout_is_paid_to_its_account_once(
    payer: Payer, payout_world: PayoutWorld, uow_factory: UnitOfWorkFactory
) -> None:
    now = payer.clock.now()
    yesterday = now - timedelta(days=1)
    payer.clock.set(yesterday)
    with uow_factory() as uow:
        uow.ledger.post(bank_payment_succeeded(payment_id="pay_settled", merchant_id=MERCHANT_ID, bank="HBB",
                                               amount=Money.cny(88_800), fee=Money.cny(800)))
        uow.commit()
    payer.clock.set(now)
    settlement.change_settlement_settings(
        uow_factory, payer.clock, payer.tools.cipher, MERCHANT_ID,
        settlement.SettingsChange(auto_payout=True, account=settlement.AccountInput(*SHOP_BCB)),
    )
    settled = settlement.settle_merchant(uow_factory, payer.clock, merchant_id=MERCHANT_ID,
                                         business_date=business_date_of(yesterday), required_banks=())
    assert settled.settlement is not None
    assert settled.settlement.net.minor == 88_000
    before = payout_world.balance("BCB", SHOP_BCB[1])

    def pay_settlements() -> int:
        return payouts.settlement_payouts(uow_factory, payer.clock, payer.ids, payer.channels, payer.tools.cipher,
                                          payer.clock.now())

    assert pay_settlements() == 1
    assert pay_settlements() == 0
    payer.dispatch()
    for _ in range(3):
        found = settlement.get_settlement(uow_factory, MERCHANT_ID, settled.settlement.id)
        if found.status.value == "paid":
            break
        payer.requery_later()
    paid = settlement.get_settlement(uow_factory, MERCHANT_ID, settled.settlement.id)
    assert paid.status.value == "paid"
    assert paid.payout_id is not None
    payout = payer.get(paid.payout_id)
    assert payout.settlement_id == paid.id
    assert payout.amount == Money.cny(88_000)
    assert payout.bank == "BCB"
    assert payout_world.balance("BCB", SHOP_BCB[1]) == before + 88_000
    assert "settlement.paid" in payer.events()
    assert ledger_is_sound(uow_factory)


@pytest.mark.parametrize("payee", [WANG_FANG_HBB, SHOP_BCB], ids=["HBB", "BCB"])
def test_a_batch_committed_but_never_sent_fails_once_the_bank_window_has_passed_and_the_money_returns(
    payer: Payer, payout_world: PayoutWorld, uow_factory: UnitOfWorkFactory, payee: tuple[str, str, str]
) -> None:
    now = payer.clock.now()
    # The payout and its batch are 40 minutes old: the worker that committed the batch died before
    # sending it (here: it had no channel to send with), so the bank never heard of it.
    payer.clock.set(now - timedelta(minutes=40))
    created = payer.create(request(f"P-NEVER-SENT-{payee[0]}", 4_321, payee))
    account_before = payout_world.balance(payee[0], payee[1])
    sent = payouts.dispatch_payouts(uow_factory, payer.clock, payer.ids, ChannelRegistry(), payer.tools.cipher,
                                    payer.clock.now(), policy=POLICY)
    assert sent == 1
    assert payer.get(created.id).status is PayoutStatus.UNKNOWN
    payer.clock.set(now)
    assert payouts.requery_payouts(uow_factory, payer.clock, payer.channels, payer.tools.cipher, now,
                                   policy=POLICY) == 1
    failed = payer.get(created.id)
    assert failed.status is PayoutStatus.FAILED
    assert available_minor(uow_factory) == 1_000_000
    assert payout_world.balance(payee[0], payee[1]) == account_before
    assert ledger_is_sound(uow_factory)


def _settled_for_auto_payout(
    payer: Payer, uow_factory: UnitOfWorkFactory, account: tuple[str, str, str], net_minor: int
) -> str:
    """A settlement of yesterday with ``net_minor`` (a payment less its fee), automatic payout on to
    ``account``; returns its id."""
    now = payer.clock.now()
    yesterday = now - timedelta(days=1)
    payer.clock.set(yesterday)
    with uow_factory() as uow:
        uow.ledger.post(bank_payment_succeeded(payment_id="pay_retry", merchant_id=MERCHANT_ID, bank="HBB",
                                               amount=Money.cny(net_minor + 500), fee=Money.cny(500)))
        uow.commit()
    payer.clock.set(now)
    settlement.change_settlement_settings(
        uow_factory, payer.clock, payer.tools.cipher, MERCHANT_ID,
        settlement.SettingsChange(auto_payout=True, account=settlement.AccountInput(*account)),
    )
    settled = settlement.settle_merchant(uow_factory, payer.clock, merchant_id=MERCHANT_ID,
                                         business_date=business_date_of(yesterday), required_banks=())
    assert settled.settlement is not None
    assert settled.settlement.net.minor == net_minor
    return settled.settlement.id


def _pay_settlements(payer: Payer) -> int:
    return payouts.settlement_payouts(payer.uow, payer.clock, payer.ids, payer.channels, payer.tools.cipher,
                                      payer.clock.now())


def _settlement_payouts(uow_factory: UnitOfWorkFactory, settlement_id: str) -> list[Payout]:
    found, _ = payouts.list_payouts(uow_factory, MERCHANT_ID, limit=100)
    return sorted((p for p in found if p.settlement_id == settlement_id), key=lambda p: (p.created_at, p.id))


def test_a_settlement_payout_refused_for_the_name_is_paid_again_once_the_account_is_corrected(
    payer: Payer, payout_world: PayoutWorld, uow_factory: UnitOfWorkFactory
) -> None:
    wrong_name = (WANG_FANG_HBB[0], WANG_FANG_HBB[1], "王五")
    settlement_id = _settled_for_auto_payout(payer, uow_factory, wrong_name, 66_000)
    before = payout_world.balance("HBB", WANG_FANG_HBB[1])

    assert _pay_settlements(payer) == 1
    payer.dispatch()

    # HBB checks its own holder's name and answers 56: the payout fails, its money returns.
    failed_settlement = settlement.get_settlement(uow_factory, MERCHANT_ID, settlement_id)
    assert failed_settlement.status.value == "payout_failed"
    assert failed_settlement.paid_at is None
    [failed] = _settlement_payouts(uow_factory, settlement_id)
    assert (failed.status, failed.failure_code) == (PayoutStatus.FAILED, "56")
    assert failed_settlement.payout_id == failed.id
    assert available_minor(uow_factory) == 1_000_000 + 66_000
    # The same account would fail the same way: the run leaves it alone until the account changes.
    assert _pay_settlements(payer) == 0
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == before

    settlement.change_settlement_settings(
        uow_factory, payer.clock, payer.tools.cipher, MERCHANT_ID,
        settlement.SettingsChange(account=settlement.AccountInput(*WANG_FANG_HBB)),
    )
    assert _pay_settlements(payer) == 1
    assert _pay_settlements(payer) == 0
    payer.dispatch()
    if settlement.get_settlement(uow_factory, MERCHANT_ID, settlement_id).status.value != "paid":
        payer.requery_later()

    paid = settlement.get_settlement(uow_factory, MERCHANT_ID, settlement_id)
    assert paid.status.value == "paid"
    first, second = _settlement_payouts(uow_factory, settlement_id)
    assert first.id == failed.id
    assert second.id != failed.id
    assert paid.payout_id == second.id
    assert second.status is PayoutStatus.SUCCEEDED
    assert [p.status for p in (first, second)].count(PayoutStatus.SUCCEEDED) == 1
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == before + 66_000
    assert available_minor(uow_factory) == 1_000_000
    assert payer.events().count("settlement.paid") == 1
    with uow_factory() as uow:
        assert uow.ledger.balance("bank:HBB:in_transit").minor == 0
    assert ledger_is_sound(uow_factory)


def test_a_settlement_payout_is_retried_once_by_an_operator_and_only_after_its_payout_failed(
    payer: Payer, payout_world: PayoutWorld, uow_factory: UnitOfWorkFactory
) -> None:
    settlement_id = _settled_for_auto_payout(payer, uow_factory, (WANG_FANG_HBB[0], WANG_FANG_HBB[1], "王五"),
                                             12_000)

    def retry() -> Payout | None:
        return payouts.retry_settlement_payout(uow_factory, payer.clock, payer.ids, payer.channels,
                                               payer.tools.cipher, settlement_id)

    assert _pay_settlements(payer) == 1
    # While its payout may still succeed, a settlement is never paid a second time.
    with pytest.raises(Conflict):
        retry()
    payer.dispatch()
    assert settlement.get_settlement(uow_factory, MERCHANT_ID, settlement_id).status.value == "payout_failed"

    retried = retry()
    assert retried is not None
    with pytest.raises(Conflict):
        retry()
    found = settlement.get_settlement(uow_factory, MERCHANT_ID, settlement_id)
    assert (found.status.value, found.payout_id) == ("settled", retried.id)
    assert available_minor(uow_factory) == 1_000_000 + 12_000 - 12_000
    payer.dispatch()
    # The operator sent it to the same account: it fails the same way, and waits again.
    assert payer.get(retried.id).failure_code == "56"
    assert settlement.get_settlement(uow_factory, MERCHANT_ID, settlement_id).status.value == "payout_failed"
    assert available_minor(uow_factory) == 1_000_000 + 12_000
    assert ledger_is_sound(uow_factory)


def test_a_settlement_to_an_account_at_a_switched_off_bank_waits_and_is_paid_once_the_bank_is_back_on(
    payer: Payer, payout_world: PayoutWorld, uow_factory: UnitOfWorkFactory
) -> None:
    settlement_id = _settled_for_auto_payout(payer, uow_factory, WANG_FANG_HBB, 15_000)
    available_before = available_minor(uow_factory)
    account_before = payout_world.balance("HBB", WANG_FANG_HBB[1])
    _switch(uow_factory, payer.clock, "HBB", is_enabled=False)
    # Skipped, not failed: no payout, no money reserved, the settlement still waits for its payout.
    assert _pay_settlements(payer) == 0
    assert _settlement_payouts(uow_factory, settlement_id) == []
    waiting = settlement.get_settlement(uow_factory, MERCHANT_ID, settlement_id)
    assert (waiting.status.value, waiting.payout_id) == ("settled", None)
    assert available_minor(uow_factory) == available_before
    # A merchant's own payout to that bank is refused up front the same way.
    with pytest.raises(BankSwitchedOff):
        payouts.create_payout(payer.uow, payer.clock, payer.ids, payer.channels, payer.tools.cipher, MERCHANT_ID,
                              request("P-OFF", 1_000))
    assert available_minor(uow_factory) == available_before

    _switch(uow_factory, payer.clock, "HBB", is_enabled=True)
    assert _pay_settlements(payer) == 1
    payer.dispatch()
    for _ in range(3):
        if settlement.get_settlement(uow_factory, MERCHANT_ID, settlement_id).status.value == "paid":
            break
        payer.requery_later()
    assert settlement.get_settlement(uow_factory, MERCHANT_ID, settlement_id).status.value == "paid"
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == account_before + 15_000
    assert ledger_is_sound(uow_factory)


def _switch(uow_factory: UnitOfWorkFactory, clock: SettableClock, bank: str, *, is_enabled: bool) -> None:
    """The bank's switch as the console stores it (``services.console.set_channel`` writes this row)."""
    with uow_factory() as uow:
        uow.channel_settings.save(ChannelSetting(bank, is_enabled, None, "ops.admin", clock.now()))
        uow.commit()
