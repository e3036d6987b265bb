"""Reconciliation end to end: real payments at the simulated HBB and JHB, their real statements, both databases.

The bank world runs in a subprocess (tests/gateway/conftest.py) and the platform meets it over
loopback HTTP only. A day of traffic (a plain payment, a lost notification, magic 98, and a day-cut
item, magic 93) is paid on the bank's pages; the banks' clock then ends the day, the platform
downloads the statement through the real adapter and reconciles it, then the next day's. Nothing
is left unexplained, the lost payment is made good, and the bank's reserve moved exactly as
``bank:B:reserve`` did.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from typer.testing import CliRunner

from tests.gateway import conftest as world
from tests.gateway.conftest import (
    BankWorld,
    add_merchant,
    form_ending,
    gateway_settings_for,
    new_payment,
    pay_on_hbb_pages,
    pay_on_jhb_pages,
    resp_codes_on,
)
from tests.payments.conftest import assert_ledger_sound, events_of
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.errors import NotFound
from tianpay.domain.ledger import bank_reserve
from tianpay.domain.merchant import FeePlan
from tianpay.domain.money import Money
from tianpay.domain.payment import AttemptStatus, PaymentStatus
from tianpay.domain.reconciliation import SHANGHAI, ExceptionStatus
from tianpay.domain.refund import RefundRequest, RefundStatus
from tianpay.entrypoints.cli import app
from tianpay.ports.channels import ChannelResult, Outcome
from tianpay.ports.reconciliation import ReconciliationException
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.gateway import Applied, handle_front_return, nudge_payment, pay_at_bank
from tianpay.services.reconciliation import (
    ReconciliationPolicy,
    exceptions_of,
    finished_banks,
    reconcile,
    resolve_exception,
)
from tianpay.services.refunds import RequeryPolicy, apply_refund_result, create_refund, requery_refunds

pytestmark = pytest.mark.e2e

bank_world, onboarded_dir, channels = world.bank_world, world.onboarded_dir, world.channels

HBB_RESERVE = "6217990000000000998"
JHB_RESERVE = "6227990000000000997"
# Notifications go to a closed port: what the platform learns, it learns from the payer's browser
# (HBB's signed front return) or, for the lost one, from the statement.
SETTINGS = gateway_settings_for("http://127.0.0.1:9")
FORM = "application/x-www-form-urlencoded"


def _bank_now(bank_world: BankWorld) -> datetime:
    clock = httpx.get(bank_world.urls["HBB"] + "/_sim/clock", timeout=10).json()
    return datetime.fromisoformat(clock["now"])


def _move_banks_to(bank_world: BankWorld, moment: datetime) -> None:
    for url in bank_world.urls.values():
        httpx.post(url + "/_sim/clock", json={"now": moment.isoformat()}, timeout=10).raise_for_status()


@pytest.fixture
def day(bank_world: BankWorld) -> date:
    """A fresh business day at the banks, later than any an earlier test used: 10:00 in Shanghai."""
    fresh = _bank_now(bank_world).astimezone(SHANGHAI).date() + timedelta(days=2)
    _move_banks_to(bank_world, datetime(fresh.year, fresh.month, fresh.day, 10, tzinfo=SHANGHAI))
    return fresh


@pytest.fixture
def clock(bank_world: BankWorld, day: date) -> SettableClock:
    # The platform's clock follows the banks' (txnTime, payTimeout are checked against it).
    return SettableClock(_bank_now(bank_world).astimezone(UTC))


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, follow_redirects=True) as client:
        yield client


def _reserve(uow_factory: UnitOfWorkFactory) -> int:
    with uow_factory() as uow:
        uow.ledger.ensure_accounts([bank_reserve("HBB")])
        return uow.ledger.balance("bank:HBB:reserve").minor


def _pay_keeping_the_front_return(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    browser: httpx.Client, merchant_id: str, amount_minor: int,
) -> tuple[str, str, bytes]:
    """Pays at HBB on its pages; returns (payment id, attempt id, HBB's signed front return), which the
    payer's browser has not posted to the platform yet."""
    payment = new_payment(uow_factory, clock, ids, merchant_id, amount_minor)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "HBB")
    page = pay_on_hbb_pages(browser, (form.url, dict(form.fields)))
    assert resp_codes_on(page) == ["00"]
    with uow_factory() as uow:
        (attempt,) = uow.payments.attempts_of(payment.id)
    return payment.id, attempt.id, urlencode(form_ending(page, "").fields).encode()


def _pay(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    browser: httpx.Client, merchant_id: str, amount_minor: int, *, return_to_platform: bool,
) -> tuple[str, str]:
    payment_id, attempt_id, front_return = _pay_keeping_the_front_return(
        uow_factory, clock, ids, channels, browser, merchant_id, amount_minor
    )
    if return_to_platform:
        applied = handle_front_return(uow_factory, clock, ids, channels, payment_id, attempt_id, front_return, FORM)
        assert applied is Applied.RECORDED
    return payment_id, attempt_id


def test_a_day_at_hbb_reconciles_to_zero_differences_and_the_reserve_matches_the_ledger(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    bank_world: BankWorld, browser: httpx.Client, day: date, tmp_path: Path, onboarded_dir: Path, db_url: str,
) -> None:
    merchant_id = add_merchant(uow_factory, clock, "mch_RECON")
    reserve_at_start = bank_world.balance("HBB", HBB_RESERVE)
    plain, _ = _pay(uow_factory, clock, ids, channels, browser, merchant_id, 12_300, return_to_platform=True)
    lost, lost_attempt = _pay(uow_factory, clock, ids, channels, browser, merchant_id, 10_098, return_to_platform=False)
    late, _ = _pay(uow_factory, clock, ids, channels, browser, merchant_id, 10_093, return_to_platform=True)
    with uow_factory() as uow:
        # Nothing has resolved the lost one: no notification came and the re-query job did not run.
        attempt = uow.payments.get_attempt(lost_attempt)
    assert attempt is not None
    assert attempt.status is AttemptStatus.PROCESSING
    policy = ReconciliationPolicy(statements_dir=tmp_path / "statements", chunk_lines=2)

    next_day = day + timedelta(days=1)
    _move_banks_to(bank_world, datetime(next_day.year, next_day.month, next_day.day, 10, tzinfo=SHANGHAI))
    clock.advance(timedelta(days=1))
    first = reconcile(uow_factory, clock, ids, channels, "HBB", day, policy=policy, worker_id="w1")

    assert first.status == "finished", first.detail
    assert first.summary["made_good"] == 1
    assert first.summary["matched"] >= 1
    assert first.summary["parked"] == 1
    assert first.summary["exceptions"] == 0
    with uow_factory() as uow:
        made_good = uow.payments.get(lost)
    assert made_good is not None
    assert made_good.status is PaymentStatus.SUCCEEDED
    assert [e.data["id"] for e in events_of(uow_factory, merchant_id) if e.type == "payment.succeeded"].count(lost) == 1

    day_after = day + timedelta(days=2)
    _move_banks_to(bank_world, datetime(day_after.year, day_after.month, day_after.day, 10, tzinfo=SHANGHAI))
    clock.advance(timedelta(days=1))
    second = reconcile(uow_factory, clock, ids, channels, "HBB", next_day, policy=policy, worker_id="w1")

    assert second.status == "finished", second.detail
    assert second.summary["matched_cross_day"] == 1
    assert second.summary["exceptions"] == 0
    assert second.summary["short"] == 0
    assert exceptions_of(uow_factory) == []
    assert finished_banks(uow_factory, day) == frozenset({"HBB"}) == finished_banks(uow_factory, next_day)
    assert_ledger_sound(uow_factory)
    # The ledger's reserve moved exactly as the bank's did: payments in, the bank's charges out.
    assert bank_world.balance("HBB", HBB_RESERVE) - reserve_at_start == _reserve(uow_factory)
    assert {plain, late} <= {e.data["id"] for e in events_of(uow_factory, merchant_id)}

    again = reconcile(uow_factory, clock, ids, channels, "HBB", day, policy=policy, worker_id="w2")
    assert again.status == "already_finished"
    assert again.summary == first.summary
    assert bank_world.balance("HBB", HBB_RESERVE) - reserve_at_start == _reserve(uow_factory)

    # The command line reruns the same finished date: exit 0, the same summary, nothing moves.
    cli = CliRunner().invoke(
        app, ["reconcile", "--bank", "HBB", "--date", day.isoformat(), "--data-dir", str(onboarded_dir), "--json"],
        env={"TIANPAY_DATABASE_URL": db_url},
    )
    assert cli.exit_code == 0, cli.output
    printed = json.loads(cli.stdout.strip().splitlines()[-1])
    assert printed["status"] == "already_finished"
    assert printed["made_good"] == 1
    assert printed["parked"] == 1
    assert bank_world.balance("HBB", HBB_RESERVE) - reserve_at_start == _reserve(uow_factory)


def _pay_at_jhb(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    browser: httpx.Client, merchant_id: str, amount_minor: int, *, ask_the_bank: bool,
) -> str:
    payment = new_payment(uow_factory, clock, ids, merchant_id, amount_minor)
    form = pay_at_bank(uow_factory, clock, ids, channels, SETTINGS, payment.id, "JHB")
    # JHB's pages answer with 303s the payer's browser follows by hand.
    with httpx.Client(timeout=10.0, follow_redirects=False) as bank_browser:
        assert pay_on_jhb_pages(bank_browser, form.url, dict(form.fields)).status_code == 303
    if ask_the_bank:
        # The payer's "check again": a query of this payment only (the re-query job never runs here).
        assert nudge_payment(uow_factory, clock, ids, channels, SETTINGS, payment.id) == 1
    return payment.id


def test_a_day_at_jhb_makes_the_lost_payment_good_and_matches_the_late_one_the_next_day(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    bank_world: BankWorld, browser: httpx.Client, day: date, tmp_path: Path,
) -> None:
    merchant_id = add_merchant(uow_factory, clock, "mch_RECON_J")
    reserve_at_start = bank_world.balance("JHB", JHB_RESERVE)
    plain = _pay_at_jhb(uow_factory, clock, ids, channels, browser, merchant_id, 23_400, ask_the_bank=True)
    lost = _pay_at_jhb(uow_factory, clock, ids, channels, browser, merchant_id, 20_098, ask_the_bank=False)
    _pay_at_jhb(uow_factory, clock, ids, channels, browser, merchant_id, 20_093, ask_the_bank=True)
    with uow_factory() as uow:
        states = {p: found.status for p in (plain, lost) if (found := uow.payments.get(p)) is not None}
    # Nothing has resolved the lost one: no notification came and nobody asked the bank.
    assert states == {plain: PaymentStatus.SUCCEEDED, lost: PaymentStatus.PROCESSING}
    policy = ReconciliationPolicy(statements_dir=tmp_path / "statements")

    for offset in (1, 2):
        later = day + timedelta(days=offset)
        _move_banks_to(bank_world, datetime(later.year, later.month, later.day, 10, tzinfo=SHANGHAI))
        clock.advance(timedelta(days=1))
    first = reconcile(uow_factory, clock, ids, channels, "JHB", day, policy=policy, worker_id="w1")
    second = reconcile(uow_factory, clock, ids, channels, "JHB", day + timedelta(days=1), policy=policy, worker_id="w1")

    assert first.status == "finished", first.detail
    assert (first.summary["made_good"], first.summary["parked"], first.summary["exceptions"]) == (1, 1, 0)
    assert second.status == "finished", second.detail
    assert (second.summary["matched_cross_day"], second.summary["exceptions"]) == (1, 0)
    with uow_factory() as uow:
        made_good = uow.payments.get(lost)
    assert made_good is not None
    assert made_good.status is PaymentStatus.SUCCEEDED
    assert_ledger_sound(uow_factory)
    with uow_factory() as uow:
        uow.ledger.ensure_accounts([bank_reserve("JHB")])
        ledger_reserve = uow.ledger.balance("bank:JHB:reserve").minor
    assert bank_world.balance("JHB", JHB_RESERVE) - reserve_at_start == ledger_reserve


def test_a_refused_make_good_booked_to_suspense_brings_the_ledger_back_to_the_banks_reserve(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    bank_world: BankWorld, browser: httpx.Client, day: date, tmp_path: Path,
) -> None:
    merchant_id = add_merchant(uow_factory, clock, "mch_RECON_REFUSED")
    reserve_at_start = bank_world.balance("HBB", HBB_RESERVE)
    # Magic 98: HBB takes the money and never tells; meanwhile the merchant's plan stops pricing the
    # cashier, so the payment service refuses the statement's 补单 (FeePlanMissing).
    _, attempt_id = _pay(uow_factory, clock, ids, channels, browser, merchant_id, 10_098, return_to_platform=False)
    with uow_factory() as uow:
        plan = uow.merchants.fee_plan(merchant_id)
        assert plan is not None
        uow.merchants.set_fee_plan(FeePlan.of(merchant_id, tuple(r for r in plan.rates if r.method != "cashier")))
        uow.commit()
    policy = ReconciliationPolicy(statements_dir=tmp_path / "statements")
    next_day = day + timedelta(days=1)
    _move_banks_to(bank_world, datetime(next_day.year, next_day.month, next_day.day, 10, tzinfo=SHANGHAI))
    clock.advance(timedelta(days=1))

    report = reconcile(uow_factory, clock, ids, channels, "HBB", day, policy=policy, worker_id="w1")

    assert report.summary["make_good_refused"] == 1
    [refused] = [e for e in exceptions_of(uow_factory, run_id=report.run_id) if e.record_id == attempt_id]
    assert bank_world.balance("HBB", HBB_RESERVE) - reserve_at_start != _reserve(uow_factory)

    resolve_exception(uow_factory, clock, refused.id, action="book_to_suspense", operator="finance1",
                      reason="the fee plan was withdrawn while the payer paid")

    assert_ledger_sound(uow_factory)
    assert bank_world.balance("HBB", HBB_RESERVE) - reserve_at_start == _reserve(uow_factory)
    [follow_up] = [e for e in exceptions_of(uow_factory, run_id=report.run_id) if e.kind == "booked_to_suspense"]
    assert follow_up.suspense_minor == -10_098


def _booked_to_suspense_and_closed(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    browser: httpx.Client, day: date, tmp_path: Path, bank_world: BankWorld, merchant_id: str, *, closed_as: str,
) -> tuple[str, str, str, bytes]:
    """Magic 98 at HBB, its 补单 refused (the fee plan stopped pricing the cashier), the line booked to
    suspense, its follow-up closed ``closed_as``, and the plan restored: the payment is still in flight
    and HBB's query now answers success. Returns (payment id, attempt id, follow-up id, HBB's signed front
    return, which the payer's browser never brought back)."""
    payment_id, attempt_id, front_return = _pay_keeping_the_front_return(
        uow_factory, clock, ids, channels, browser, merchant_id, 10_098
    )
    with uow_factory() as uow:
        plan = uow.merchants.fee_plan(merchant_id)
        assert plan is not None
        uow.merchants.set_fee_plan(FeePlan.of(merchant_id, tuple(r for r in plan.rates if r.method != "cashier")))
        uow.commit()
    next_day = day + timedelta(days=1)
    _move_banks_to(bank_world, datetime(next_day.year, next_day.month, next_day.day, 10, tzinfo=SHANGHAI))
    clock.advance(timedelta(days=1))
    report = reconcile(uow_factory, clock, ids, channels, "HBB", day,
                       policy=ReconciliationPolicy(statements_dir=tmp_path / "statements"), worker_id="w1")
    [refused] = [e for e in exceptions_of(uow_factory, run_id=report.run_id) if e.record_id == attempt_id]
    resolve_exception(uow_factory, clock, refused.id, action="book_to_suspense", operator="finance1",
                      reason="the fee plan was withdrawn while the payer paid")
    follow_up = f"{refused.id}_s"
    resolve_exception(uow_factory, clock, follow_up, action=closed_as, operator="finance1", reason="closed")
    with uow_factory() as uow:
        uow.merchants.set_fee_plan(plan)
        uow.commit()
    return payment_id, attempt_id, follow_up, front_return


def _balance(uow_factory: UnitOfWorkFactory, code: str) -> int:
    """An account's balance; zero for one nothing was ever posted to (a merchant never credited)."""
    with uow_factory() as uow:
        try:
            return uow.ledger.balance(code).minor
        except NotFound:
            return 0


def test_a_success_after_its_suspense_follow_up_was_written_off_is_recorded_against_suspense_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    bank_world: BankWorld, browser: httpx.Client, day: date, tmp_path: Path,
) -> None:
    merchant_id = add_merchant(uow_factory, clock, "mch_RECON_WRITTEN_OFF")
    pending = f"merchant:{merchant_id}:pending"
    reserve_at_start = bank_world.balance("HBB", HBB_RESERVE)
    payment_id, _, follow_up, _ = _booked_to_suspense_and_closed(
        uow_factory, clock, ids, channels, browser, day, tmp_path, bank_world, merchant_id, closed_as="write_off"
    )
    suspense_before = _balance(uow_factory, "platform:suspense")
    reserve_before = _reserve(uow_factory)

    # The payer's "check again" asks HBB, which answers success: the merchant is paid, once.
    assert nudge_payment(uow_factory, clock, ids, channels, SETTINGS, payment_id) == 1

    with uow_factory() as uow:
        paid = uow.payments.get(payment_id)
    assert paid is not None
    assert paid.status is PaymentStatus.SUCCEEDED
    assert paid.fee_amount is not None
    assert _balance(uow_factory, pending) == 10_098 - paid.fee_amount.minor
    assert [e.data["id"] for e in events_of(uow_factory, merchant_id)].count(payment_id) == 1
    # The reserve is not counted twice: it moved with the suspense booking, and the bank still agrees.
    assert _reserve(uow_factory) == reserve_before
    assert bank_world.balance("HBB", HBB_RESERVE) - reserve_at_start == _reserve(uow_factory)
    assert _balance(uow_factory, "platform:suspense") - suspense_before == 10_098
    assert_ledger_sound(uow_factory)
    [after_close] = [e for e in exceptions_of(uow_factory) if e.id == f"{follow_up}_r"]
    assert (after_close.kind, after_close.status.value, after_close.suspense_minor) == (
        "recorded_after_close", "open", 10_098
    )

    # The operator takes the earlier write-off back: suspense is clear, the reserve still the bank's.
    resolve_exception(uow_factory, clock, after_close.id, action="write_off", operator="finance1",
                      reason="the merchant's money, not ours: the write-off is taken back")
    assert _balance(uow_factory, "platform:suspense") == suspense_before
    assert bank_world.balance("HBB", HBB_RESERVE) - reserve_at_start == _reserve(uow_factory)
    assert_ledger_sound(uow_factory)


def test_a_success_after_its_suspense_follow_up_was_recovered_fails_the_attempt_and_pays_nobody_twice(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    bank_world: BankWorld, browser: httpx.Client, day: date, tmp_path: Path,
) -> None:
    merchant_id = add_merchant(uow_factory, clock, "mch_RECON_RECOVERED")
    pending = f"merchant:{merchant_id}:pending"
    payment_id, attempt_id, follow_up, front_return = _booked_to_suspense_and_closed(
        uow_factory, clock, ids, channels, browser, day, tmp_path, bank_world, merchant_id, closed_as="recovered"
    )
    suspense_before = _balance(uow_factory, "platform:suspense")
    reserve_before = _reserve(uow_factory)

    assert nudge_payment(uow_factory, clock, ids, channels, SETTINGS, payment_id) == 1

    # The payer has the money back: the merchant is neither credited nor told of a success.
    with uow_factory() as uow:
        attempt = uow.payments.get_attempt(attempt_id)
        payment = uow.payments.get(payment_id)
    assert attempt is not None
    assert payment is not None
    assert (attempt.status, attempt.failure_code) == (AttemptStatus.FAILED, "undone_by_recovery")
    assert payment.status is not PaymentStatus.SUCCEEDED
    assert _balance(uow_factory, pending) == 0
    assert "payment.succeeded" not in {e.type for e in events_of(uow_factory, merchant_id)}
    assert (_reserve(uow_factory), _balance(uow_factory, "platform:suspense")) == (reserve_before, suspense_before)
    assert_ledger_sound(uow_factory)
    [after_close] = [e for e in exceptions_of(uow_factory) if e.id == f"{follow_up}_r"]
    assert (after_close.kind, after_close.suspense_minor) == ("recorded_after_close", 0)

    # The same success told again, twice (the payer's browser brings HBB's signed front return back late,
    # then once more): the same news, not the bank changing its mind.
    for _ in range(2):
        again = handle_front_return(uow_factory, clock, ids, channels, payment_id, attempt_id, front_return, FORM)
        assert again is Applied.NO_CHANGE
    assert _alerts_about(uow_factory, payment_id) == []
    assert [e.id for e in exceptions_of(uow_factory) if e.record_id == attempt_id and e.kind == "recorded_after_close"
            ] == [after_close.id]
    with uow_factory() as uow:
        still = uow.payments.get_attempt(attempt_id)
    assert still is not None
    assert (still.status, still.failure_code) == (AttemptStatus.FAILED, "undone_by_recovery")
    assert "payment.succeeded" not in {e.type for e in events_of(uow_factory, merchant_id)}
    assert (_reserve(uow_factory), _balance(uow_factory, "platform:suspense")) == (reserve_before, suspense_before)
    assert_ledger_sound(uow_factory)
    resolve_exception(uow_factory, clock, after_close.id, action="dismiss", operator="finance1",
                      reason="the payer was paid back; the late success was recorded as undone")


def _alerts_about(uow_factory: UnitOfWorkFactory, subject_id: str) -> list[str]:
    """The kinds of the operator alerts open about a payment, refund or payout."""
    with uow_factory() as uow:
        return [a.kind.value for a in uow.alerts.open_alerts() if a.subject_id == subject_id]


@pytest.mark.parametrize("closed_as", ["write_off", "recovered"])
def test_a_refund_success_after_its_suspense_follow_up_was_closed_moves_the_reserve_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    bank_world: BankWorld, browser: httpx.Client, day: date, tmp_path: Path, closed_as: str,
) -> None:
    merchant_id = add_merchant(uow_factory, clock, f"mch_RECON_RFD_{closed_as.upper()}")
    pending = f"merchant:{merchant_id}:pending"
    paid_id, _ = _pay(uow_factory, clock, ids, channels, browser, merchant_id, 20_000, return_to_platform=True)
    # Magic 97: HBB's answer never comes, so the refund stays unknown at the platform.
    refund = create_refund(
        uow_factory, clock, ids, channels, merchant_id, paid_id, RefundRequest("RFD-S", Money.cny(1_097), None),
        notify_base_url="http://127.0.0.1:9",
    ).refund
    next_day = day + timedelta(days=1)
    _move_banks_to(bank_world, datetime(next_day.year, next_day.month, next_day.day, 10, tzinfo=SHANGHAI))
    clock.advance(timedelta(days=1))
    report = reconcile(uow_factory, clock, ids, channels, "HBB", day,
                       policy=ReconciliationPolicy(statements_dir=tmp_path / "statements"), worker_id="w1")
    # A refund line whose 补单 its service would not take, as reconciliation opens it (no refund refuses
    # today, so the exception is written here), then booked to suspense and closed by an operator.
    assert report.run_id is not None
    refused_id = f"rcx_refused_{closed_as}"
    with uow_factory() as uow:
        uow.reconciliation.add_exception(ReconciliationException(
            id=refused_id, run_id=report.run_id, bank="HBB", business_date=day, kind="make_good_refused",
            dedupe_key=f"test:{refused_id}", suspense_minor=0, status=ExceptionStatus.OPEN, created_at=clock.now(),
            record_id=refund.id, bank_ref="R-LATE", line_no=99, statement_amount_minor=-1_097,
            platform_amount_minor=-1_097,
        ))
        uow.commit()
    resolve_exception(uow_factory, clock, refused_id, action="book_to_suspense", operator="finance1", reason="r")
    resolve_exception(uow_factory, clock, f"{refused_id}_s", action=closed_as, operator="finance1", reason="c")
    reserve_before, pending_before = _reserve(uow_factory), _balance(uow_factory, pending)

    # The bank's late word: the refund was paid.
    apply_refund_result(uow_factory, clock, ids, refund.id,
                        ChannelResult(Outcome.SUCCEEDED, bank_reference="R-LATE", amount=Money.cny(1_097)))
    apply_refund_result(uow_factory, clock, ids, refund.id,
                        ChannelResult(Outcome.SUCCEEDED, bank_reference="R-LATE", amount=Money.cny(1_097)))

    with uow_factory() as uow:
        after = uow.refunds.get(refund.id)
    assert after is not None
    # Never through the reserve a second time: the suspense booking already moved it.
    assert _reserve(uow_factory) == reserve_before
    assert_ledger_sound(uow_factory)
    [after_close] = [e for e in exceptions_of(uow_factory) if e.id == f"{refused_id}_s_r"]
    if closed_as == "write_off":
        # The platform bore the refund; the merchant's money in transit pays it after all.
        assert after.status is RefundStatus.SUCCEEDED
        assert _balance(uow_factory, pending) == pending_before
        assert after_close.suspense_minor == -1_097
        resolve_exception(uow_factory, clock, after_close.id, action="write_off", operator="finance1",
                          reason="the loss is taken back")
        assert _balance(uow_factory, "platform:suspense") == 0
    else:
        # The money came back to the reserve: the refund failed and the merchant has it back.
        assert (after.status, after.failure_code) == (RefundStatus.FAILED, "undone_by_recovery")
        assert _balance(uow_factory, pending) == pending_before + 1_097 - after.fee_returned.minor
        assert after_close.suspense_minor == 0
    assert_ledger_sound(uow_factory)


def test_an_in_flight_refund_the_statement_does_not_name_is_queried_at_once_not_left(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    bank_world: BankWorld, browser: httpx.Client, day: date, tmp_path: Path,
) -> None:
    merchant_id = add_merchant(uow_factory, clock, "mch_RECON_RFD")
    paid, _ = _pay(uow_factory, clock, ids, channels, browser, merchant_id, 20_000, return_to_platform=True)
    # Magic 97: HBB never records the refund and its answer never comes, so the refund is unknown.
    refund = create_refund(
        uow_factory, clock, ids, channels, merchant_id, paid, RefundRequest("RFD1", Money.cny(1_097), None),
        notify_base_url="http://127.0.0.1:9",
    ).refund
    assert refund.status is RefundStatus.UNKNOWN
    next_day = day + timedelta(days=1)
    _move_banks_to(bank_world, datetime(next_day.year, next_day.month, next_day.day, 10, tzinfo=SHANGHAI))
    clock.advance(timedelta(days=1))
    # A query with a long wait after it: left alone, the next one would be two hours away.
    patient = RequeryPolicy(first_after_s=3_600, max_interval_s=86_400)
    assert requery_refunds(uow_factory, clock, ids, channels, clock.now(), policy=patient) == 1
    assert requery_refunds(uow_factory, clock, ids, channels, clock.now(), policy=patient) == 0

    report = reconcile(uow_factory, clock, ids, channels, "HBB", day,
                       policy=ReconciliationPolicy(statements_dir=tmp_path / "statements"), worker_id="w1")  # fmt: skip

    assert report.status == "finished", report.detail
    assert report.summary["exceptions"] == 0
    with uow_factory() as uow:
        due = uow.refunds.get(refund.id)
    assert due is not None
    assert (due.status, due.next_query_at) == (RefundStatus.UNKNOWN, clock.now())
    assert requery_refunds(uow_factory, clock, ids, channels, clock.now(), policy=patient) == 1
