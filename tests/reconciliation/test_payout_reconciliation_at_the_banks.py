"""Payouts reconciled against BCB's real statement, on SQLite and PostgreSQL.

The payouts world (tests/payouts/conftest.py) runs HBB, JHB and BCB in a subprocess. A payout is
paid from BCB's reserve and learned at once; another (magic 96) is paid but BCB's answer never
comes and nobody queries it. BCB's day then ends, the platform downloads BCB's statement through the real
adapter and reconciles it: the lost payout is made good through the payouts service, BCB's charges
are booked, and BCB's reserve moved exactly as ``bank:BCB:reserve`` did.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.payouts import conftest as payouts_world
from tests.payouts.conftest import RESERVES, WANG_FANG_BCB, PayoutWorld, fund_merchant
from tests.payouts.test_payouts_at_the_banks import POLICY
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.ledger import bank_reserve
from tianpay.domain.money import Money
from tianpay.domain.payout import PayeeAccount, PayoutRequest, PayoutStatus
from tianpay.domain.reconciliation import SHANGHAI, ExceptionStatus, RunStatus
from tianpay.ports.channels import ChannelResult, Outcome
from tianpay.ports.reconciliation import ReconciliationException, ReconciliationRun
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import payouts
from tianpay.services.ledger import verify_ledger
from tianpay.services.member_tools import MemberTools
from tianpay.services.reconciliation import ReconciliationPolicy, exceptions_of, reconcile, resolve_exception

pytestmark = pytest.mark.e2e

payout_world, payout_data_dir, channels, tools = (
    payouts_world.payout_world, payouts_world.payout_data_dir, payouts_world.channels, payouts_world.tools,
)


def _bank_now(world: PayoutWorld) -> datetime:
    return datetime.fromisoformat(httpx.get(world.urls["BCB"] + "/_sim/clock", timeout=10).json()["now"])


def _move_banks_to(world: PayoutWorld, moment: datetime) -> None:
    for url in world.urls.values():
        httpx.post(url + "/_sim/clock", json={"now": moment.isoformat()}, timeout=10).raise_for_status()


@pytest.fixture
def day(payout_world: PayoutWorld) -> date:
    fresh = _bank_now(payout_world).astimezone(SHANGHAI).date() + timedelta(days=2)
    _move_banks_to(payout_world, datetime(fresh.year, fresh.month, fresh.day, 10, tzinfo=SHANGHAI))
    return fresh


@pytest.fixture
def clock(payout_world: PayoutWorld, day: date) -> SettableClock:
    return SettableClock(_bank_now(payout_world).astimezone(UTC))


def _payout(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, number: str, minor: int,
) -> str:
    request = PayoutRequest(number, Money.cny(minor), "货款结算", PayeeAccount(*WANG_FANG_BCB))
    created = payouts.create_payout(
        uow_factory, clock, ids, channels, tools.cipher, payouts_world.MERCHANT_ID, request
    ).payout
    return created.id


def test_a_payout_whose_notice_was_lost_is_made_good_from_bcbs_statement(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, payout_world: PayoutWorld, day: date, tmp_path: Path,
) -> None:
    fund_merchant(uow_factory, clock, 100_000, source=f"funding-{day.isoformat()}")
    reserve_at_start = payout_world.balance("BCB", RESERVES["BCB"])
    plain = _payout(uow_factory, clock, ids, channels, tools, f"R-{day}-1", 12_300)
    payouts.dispatch_payouts(uow_factory, clock, ids, channels, tools.cipher, clock.now(), policy=POLICY)
    # Magic 96: BCB pays it but its answer never comes; nobody queries it afterwards.
    lost = _payout(uow_factory, clock, ids, channels, tools, f"R-{day}-2", 10_096)
    payouts.dispatch_payouts(uow_factory, clock, ids, channels, tools.cipher, clock.now(), policy=POLICY)
    with uow_factory() as uow:
        before = {p: found.status for p in (plain, lost) if (found := uow.payouts.get(p)) is not None}
    assert before == {plain: PayoutStatus.SUCCEEDED, lost: PayoutStatus.UNKNOWN}

    for offset in (1, 2):
        later = day + timedelta(days=offset)
        _move_banks_to(payout_world, datetime(later.year, later.month, later.day, 10, tzinfo=SHANGHAI))
        clock.advance(timedelta(days=1))
    policy = ReconciliationPolicy(statements_dir=tmp_path / "statements")
    report = reconcile(uow_factory, clock, ids, channels, "BCB", day, policy=policy, worker_id="w1")

    assert report.status == "finished", report.detail
    assert report.summary["exceptions"] == 0, exceptions_of(uow_factory)
    assert report.summary["made_good"] == 1
    assert report.summary["matched"] == 1
    with uow_factory() as uow:
        after = {p: found.status for p in (plain, lost) if (found := uow.payouts.get(p)) is not None}
    assert after == {plain: PayoutStatus.SUCCEEDED, lost: PayoutStatus.SUCCEEDED}
    assert verify_ledger(uow_factory).problem is None
    with uow_factory() as uow:
        uow.ledger.ensure_accounts([bank_reserve("BCB")])
        ledger_reserve = uow.ledger.balance("bank:BCB:reserve").minor
    assert payout_world.balance("BCB", RESERVES["BCB"]) - reserve_at_start == ledger_reserve


@pytest.mark.parametrize("closed_as", ["write_off", "recovered"])
def test_a_payout_success_after_its_suspense_follow_up_was_closed_moves_the_reserve_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, payout_world: PayoutWorld, day: date, closed_as: str,
) -> None:
    fund_merchant(uow_factory, clock, 100_000, source=f"funding-{day.isoformat()}-{closed_as}")
    available = f"merchant:{payouts_world.MERCHANT_ID}:available"
    # Magic 96: BCB pays it, its answer never comes.
    lost = _payout(uow_factory, clock, ids, channels, tools, f"S-{day}-{closed_as}", 10_096)
    payouts.dispatch_payouts(uow_factory, clock, ids, channels, tools.cipher, clock.now(), policy=POLICY)
    with uow_factory() as uow:
        in_flight = uow.payouts.get(lost)
    assert in_flight is not None
    assert in_flight.status is PayoutStatus.UNKNOWN
    # Its statement line, refused by its service (no payout refuses today, so the exception is written
    # here as reconciliation opens it), booked to suspense and closed by an operator.
    run_id, refused_id = f"rcn_payout_{closed_as}", f"rcx_payout_{closed_as}"
    with uow_factory() as uow:
        uow.reconciliation.add_run(ReconciliationRun(
            id=run_id, bank="BCB", business_date=day, status=RunStatus.FINISHED, file_id=None, summary={},
            lease_owner=None, lease_expires_at=None, next_try_at=None, last_error=None, started_at=None,
            finished_at=None, created_at=clock.now(),
        ))
        uow.reconciliation.add_exception(ReconciliationException(
            id=refused_id, run_id=run_id, bank="BCB", business_date=day, kind="make_good_refused",
            dedupe_key=f"test:{refused_id}", suspense_minor=0, status=ExceptionStatus.OPEN, created_at=clock.now(),
            record_id=lost, bank_ref="P-LATE", line_no=1, statement_amount_minor=-10_096,
            platform_amount_minor=-10_096,
        ))
        uow.commit()
    resolve_exception(uow_factory, clock, refused_id, action="book_to_suspense", operator="finance1", reason="r")
    resolve_exception(uow_factory, clock, f"{refused_id}_s", action=closed_as, operator="finance1", reason="c")
    with uow_factory() as uow:
        uow.ledger.ensure_accounts([bank_reserve("BCB")])
        reserve_before = uow.ledger.balance("bank:BCB:reserve").minor
        available_before = uow.ledger.balance(available).minor

    success = ChannelResult(Outcome.SUCCEEDED, bank_reference="P-LATE", amount=Money.cny(10_096))
    payouts.apply_payout_result(uow_factory, clock, lost, success)
    payouts.apply_payout_result(uow_factory, clock, lost, success)

    with uow_factory() as uow:
        after = uow.payouts.get(lost)
        reserve_after = uow.ledger.balance("bank:BCB:reserve").minor
        available_after = uow.ledger.balance(available).minor
    assert after is not None
    assert reserve_after == reserve_before
    assert verify_ledger(uow_factory).problem is None
    [after_close] = [e for e in exceptions_of(uow_factory) if e.id == f"{refused_id}_s_r"]
    if closed_as == "write_off":
        assert after.status is PayoutStatus.SUCCEEDED
        assert (available_after, after_close.suspense_minor) == (available_before, -10_096)
    else:
        # The money came back to the reserve: the payout failed and the merchant has it again.
        assert (after.status, after.failure_code) == (PayoutStatus.FAILED, "undone_by_recovery")
        assert (available_after, after_close.suspense_minor) == (available_before + 10_096, 0)
