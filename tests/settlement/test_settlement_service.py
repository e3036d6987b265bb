"""Settling a merchant's business date through the real services, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from tests.payments.conftest import assert_ledger_sound, events_of
from tianpay.domain.errors import Conflict
from tianpay.domain.errors import NotFound as SettlementNotFound
from tianpay.domain.ledger import merchant_available
from tianpay.domain.money import Money
from tianpay.domain.posting_rules import payout_submitted
from tianpay.domain.settlement import InvalidSettlementSettings, LineKind, SettlementStatus
from tianpay.services.merchants import merchant_balance
from tianpay.services.settlement import (
    AccountInput,
    ReconciliationUnfinished,
    SettingsChange,
    SettlementNotDue,
    change_settlement_settings,
    mark_settlement_paid,
    run_daily_settlement,
    settlement_account,
    statement_of,
)

from .conftest import DAY, DAY_START, Shop

NEXT_DAY = DAY + timedelta(days=1)
DAY_END = DAY_START + timedelta(days=1)


def a_day_of_trade(shop: Shop) -> None:
    """Three wallet payments (fee 0.30 %) and two partial refunds of one of them, all on DAY."""
    shop.at(DAY_START + timedelta(hours=1))
    first = shop.pay(10_000)  # fee 30
    shop.at(DAY_START + timedelta(hours=2))
    shop.pay(33_333)  # fee 100 (99.999 half up)
    shop.at(DAY_START + timedelta(hours=3))
    shop.pay(1_234)  # fee 4 (3.702 half up)
    shop.at(DAY_START + timedelta(hours=5))
    shop.refund(first, 2_500, "r-1")  # fee returned 8 (7.5 half up)
    shop.at(DAY_START + timedelta(hours=6))
    shop.refund(first, 1_000, "r-2")


def test_a_settlement_equals_payments_minus_refunds_minus_fees_to_the_fen(shop: Shop) -> None:
    a_day_of_trade(shop)
    pending_before = merchant_balance(shop.uow, shop.merchant_id).pending
    shop.at(DAY_END + timedelta(hours=2))

    outcome = shop.settle()

    settlement = outcome.settlement
    assert settlement is not None
    assert outcome.created
    assert settlement.status is SettlementStatus.SETTLED
    statement = statement_of(shop.uow, shop.merchant_id, DAY)
    assert [line.kind for line in statement.lines] == [LineKind.PAYMENT] * 3 + [LineKind.REFUND] * 2
    assert [line.fee_minor for line in statement.lines] == [30, 100, 4, -8, -3]
    totals = settlement.totals
    assert totals.gross_minor == 10_000 + 33_333 + 1_234
    assert totals.refunds_minor == 2_500 + 1_000
    assert totals.fees_minor == 30 + 100 + 4 - 8 - 3
    assert totals.net_minor == 44_567 - 3_500 - 123
    assert totals.net_minor == pending_before.minor
    assert sum(line.net_minor for line in statement.lines) == totals.net_minor
    balance = merchant_balance(shop.uow, shop.merchant_id)
    assert balance.pending.minor == 0
    assert balance.available.minor == totals.net_minor
    assert_ledger_sound(shop.uow)


def test_settling_a_date_again_changes_nothing(shop: Shop) -> None:
    a_day_of_trade(shop)
    shop.at(DAY_END + timedelta(hours=2))
    first = shop.settle()
    with shop.uow() as uow:
        stats_before = uow.ledger.stats()

    again = shop.settle()

    assert not again.created
    assert again.settlement == first.settlement
    with shop.uow() as uow:
        assert uow.ledger.stats() == stats_before
        assert first.settlement is not None
        assert len(uow.settlements.lines(first.settlement.id)) == 5
    assert_ledger_sound(shop.uow)


def test_entries_after_the_cutoff_are_settled_with_the_next_day(shop: Shop) -> None:
    shop.at(DAY_END - timedelta(seconds=1))
    shop.pay(10_000)
    shop.at(DAY_END)  # midnight in Shanghai: the next business date
    shop.pay(20_000)
    shop.at(DAY_END + timedelta(days=1, hours=1))

    today = shop.settle(DAY).settlement
    tomorrow = shop.settle(NEXT_DAY).settlement

    assert today is not None
    assert tomorrow is not None
    assert today.totals.gross_minor == 10_000
    assert tomorrow.totals.gross_minor == 20_000
    assert merchant_balance(shop.uow, shop.merchant_id).pending.minor == 0
    assert_ledger_sound(shop.uow)


def test_an_unsettled_earlier_entry_is_carried_into_the_next_settlement(shop: Shop) -> None:
    shop.at(DAY_START + timedelta(hours=1))
    shop.pay(10_000)
    shop.at(DAY_END + timedelta(hours=1))
    shop.pay(5_000)
    shop.at(DAY_END + timedelta(days=1, hours=1))

    # DAY was never settled on its own: the next date takes its entry with its own.
    settled = shop.settle(NEXT_DAY).settlement

    assert settled is not None
    assert settled.totals.count == 2
    assert settled.totals.gross_minor == 15_000
    assert shop.settle(DAY).settlement is None


def test_a_date_is_refused_until_every_required_bank_has_reconciled_it(shop: Shop) -> None:
    a_day_of_trade(shop)
    shop.at(DAY_END + timedelta(hours=2))

    with pytest.raises(ReconciliationUnfinished) as refused:
        shop.settle(banks=("HBB", "JHB"))

    assert refused.value.banks == ("HBB", "JHB")
    assert "HBB, JHB" in refused.value.message
    with shop.uow() as uow:
        assert uow.settlements.of_date(shop.merchant_id, DAY) is None


def test_a_date_that_is_not_over_is_not_settled(shop: Shop) -> None:
    a_day_of_trade(shop)
    shop.at(DAY_END - timedelta(minutes=1))

    with pytest.raises(SettlementNotDue):
        shop.settle()


def test_a_negative_net_is_settled_from_available_when_available_covers_it(shop: Shop) -> None:
    shop.at(DAY_START - timedelta(hours=3))
    paid = shop.pay(10_000)
    shop.at(DAY_START + timedelta(hours=1))
    assert shop.settle(DAY - timedelta(days=1)).settlement is not None
    shop.refund(paid, 10_000, "r-all")  # the whole fee (30) comes back with it
    shop.at(DAY_END + timedelta(hours=1))

    outcome = shop.settle()

    assert outcome.settlement is not None
    assert outcome.settlement.status is SettlementStatus.SETTLED
    assert outcome.settlement.totals.net_minor == -(10_000 - 30)
    balance = merchant_balance(shop.uow, shop.merchant_id)
    assert (balance.pending.minor, balance.available.minor) == (0, 0)
    assert_ledger_sound(shop.uow)


def test_a_negative_net_beyond_available_is_carried_until_payments_cover_it(shop: Shop) -> None:
    shop.at(DAY_START - timedelta(hours=3))
    paid = shop.pay(10_000)
    shop.at(DAY_START + timedelta(hours=1))
    assert shop.settle(DAY - timedelta(days=1)).settlement is not None
    with shop.uow() as uow:
        # A payout takes most of what was settled before the refund arrives.
        uow.ledger.post(payout_submitted(
            payout_id="pyo_test", source=merchant_available(shop.merchant_id), bank="BCB", amount=Money.cny(9_000)
        ))  # fmt: skip
        uow.commit()
    shop.refund(paid, 6_000, "r-part")  # fee returned 18
    shop.at(DAY_END + timedelta(hours=1))

    carried = shop.settle()

    assert carried.settlement is not None
    assert carried.settlement.status is SettlementStatus.CARRIED
    assert carried.settlement.totals.net_minor == -(6_000 - 18)
    with shop.uow() as uow:
        assert list(uow.settlements.lines(carried.settlement.id)) == []
    balance = merchant_balance(shop.uow, shop.merchant_id)
    assert (balance.pending.minor, balance.available.minor) == (-(6_000 - 18), 970)
    with pytest.raises(SettlementNotFound):
        statement_of(shop.uow, shop.merchant_id, DAY)
    # The next day's payment covers it: that date settles the refund's line with its own.
    shop.pay(20_000)
    shop.at(DAY_END + timedelta(days=1, hours=1))
    next_day = shop.settle(NEXT_DAY).settlement
    assert next_day is not None
    assert next_day.totals.count == 2
    assert next_day.totals.net_minor == 20_000 - 60 - 6_000 + 18
    balance = merchant_balance(shop.uow, shop.merchant_id)
    assert (balance.pending.minor, balance.available.minor) == (0, 970 + 20_000 - 60 - 6_000 + 18)
    assert_ledger_sound(shop.uow)


def test_a_settlement_paid_by_its_payout_is_marked_once_and_announced(shop: Shop) -> None:
    a_day_of_trade(shop)
    change_settlement_settings(shop.uow, shop.clock, shop.world.tools.cipher, shop.merchant_id, SettingsChange(
        auto_payout=True, account=AccountInput("BCB", "6230990000000000033", "天津津门好物商贸有限公司")))  # fmt: skip
    shop.at(DAY_END + timedelta(hours=2))
    settled = shop.settle().settlement
    assert settled is not None
    with shop.uow() as uow:
        assert [s.id for s in uow.settlements.awaiting_payout(10)] == [settled.id]
        assert uow.settlements.attach_payout(settled.id, "pyo_1")
        assert not uow.settlements.attach_payout(settled.id, "pyo_2")
        uow.commit()
    with shop.uow() as uow:
        assert uow.settlements.awaiting_payout(10) == []

    for _ in range(2):
        with shop.uow() as uow:
            mark_settlement_paid(uow, settlement_id=settled.id, payout_id="pyo_1", now=shop.clock.now())
            uow.commit()

    with shop.uow() as uow:
        paid = uow.settlements.get(settled.id)
        assert paid is not None
        assert paid.status is SettlementStatus.PAID
        assert paid.paid_at == shop.clock.now()
        with pytest.raises(Conflict):
            mark_settlement_paid(uow, settlement_id=settled.id, payout_id="pyo_2", now=shop.clock.now())
    announced = [e for e in events_of(shop.uow, shop.merchant_id) if e.type == "settlement.paid"]
    assert len(announced) == 1
    assert announced[0].data["id"] == settled.id
    assert announced[0].data["net"] == settled.totals.net_minor
    assert announced[0].data["status"] == "paid"


def test_the_settlement_account_is_sealed_masked_and_unsealed_only_for_a_payout(shop: Shop) -> None:
    cipher = shop.world.tools.cipher
    settings = change_settlement_settings(shop.uow, shop.clock, cipher, shop.merchant_id, SettingsChange(
        cycle_days=2, minimum_payout_minor=500, auto_payout=True,
        account=AccountInput("bcb", "6230 9900 0000 0000 033", "天津津门好物商贸有限公司")))  # fmt: skip

    assert settings.cycle_days == 2
    assert settings.account_bank == "BCB"
    assert settings.account_no is not None
    assert settings.account_no.masked == "6230***********0033"
    assert "6230990000000000033" not in repr(settings)
    with shop.uow() as uow:
        account = settlement_account(uow, shop.merchant_id, pii=cipher)
        stored = uow.settlements.settings(shop.merchant_id)
    assert account is not None
    assert account.account_no == "6230990000000000033"
    assert (account.bank, account.account_name) == ("BCB", "天津津门好物商贸有限公司")
    assert stored is not None
    assert stored.account_no is not None
    assert "6230990000000000033" not in stored.account_no.ciphertext


@pytest.mark.parametrize(
    ("change", "param"),
    [
        (SettingsChange(cycle_days=-1), "cycle_days"),
        (SettingsChange(cycle_days=31), "cycle_days"),
        (SettingsChange(minimum_payout_minor=-5), "minimum_payout_minor"),
        (SettingsChange(auto_payout=True), "auto_payout"),
        (SettingsChange(account=AccountInput("ICBC", "6230990000000000033", "x")), "account_bank"),
        (SettingsChange(account=AccountInput("BCB", "62309900x", "x")), "account_no"),
        (SettingsChange(account=AccountInput("BCB", "6230990000000000033", "  ")), "account_name"),
    ],
)
def test_invalid_settlement_settings_are_refused_naming_the_field(
    shop: Shop, change: SettingsChange, param: str
) -> None:
    with pytest.raises(InvalidSettlementSettings) as refused:
        change_settlement_settings(shop.uow, shop.clock, shop.world.tools.cipher, shop.merchant_id, change)

    assert refused.value.param == param
    assert "6230990000000000033" not in refused.value.message
    with shop.uow() as uow:
        assert uow.settlements.settings(shop.merchant_id) is None


def test_the_daily_job_settles_a_date_on_the_day_its_t_plus_n_makes_it_due(shop: Shop) -> None:
    change_settlement_settings(shop.uow, shop.clock, shop.world.tools.cipher, shop.merchant_id,
                               SettingsChange(cycle_days=2))  # fmt: skip
    a_day_of_trade(shop)
    done: set[tuple[str, date]] = set()

    def tick(moment: datetime) -> int:
        shop.at(moment)
        return run_daily_settlement(shop.uow, shop.clock, moment, required_banks=(), done=done)

    assert tick(DAY_END + timedelta(hours=1)) == 0  # T+1: too early for a T+2 merchant
    with shop.uow() as uow:
        assert uow.settlements.of_date(shop.merchant_id, DAY) is None
    assert tick(DAY_END + timedelta(days=1, hours=1)) == 1  # T+2
    assert tick(DAY_END + timedelta(days=1, hours=2)) == 0  # nothing twice
    with shop.uow() as uow:
        settled = uow.settlements.of_date(shop.merchant_id, DAY)
    assert settled is not None
    assert settled.status is SettlementStatus.SETTLED
    assert_ledger_sound(shop.uow)
