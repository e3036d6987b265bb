"""BCB direct debit end to end against the simulated bank's AIPG dialect: a mandate for 王芳's BCB card
confirmed with the code from BCB's SMS outbox, two debits, over-limit and after-revocation refused
before the bank (BCB records no request), and insufficient funds at 陈静's card failing the payment
with ``payment.failed`` queued.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.bindings.conftest import Person, register
from tests.gateway.conftest import WORLD_START_TIMEOUT_S, _readline_within, add_merchant, gateway_settings_for
from tests.payments.conftest import assert_ledger_sound
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db.tables import events
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry, load_channels, onboard_banks
from tianpay.domain.mandate import MandateLimitExceeded, MandateNotActive, MandateStatus, business_date
from tianpay.domain.merchant import FeePlan, FeeRate
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentMethod, PaymentRequest, PaymentStatus
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import mandates
from tianpay.services.gateway import requery_attempts
from tianpay.services.member_tools import MemberTools

pytestmark = pytest.mark.e2e
SETTINGS = gateway_settings_for("http://127.0.0.1:9")
MERCHANT = "mch_BCBDD"
WANG_FANG = Person("王芳", "12010119900725002X", "13800138002", {"BCB": "6230990000000000017"})
CHEN_JING = Person("陈静", "440305198808080055", "13800138005", {"BCB": "6230990000000000025"})
BCB_RESERVE = "6230990000000000991"


@pytest.fixture(scope="module")
def bcb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("bcb-world")
    env = {**os.environ, "BANKSIM_NOTIFY_SCALE": "0.001", "BANKSIM_HANG_S": "2.5"}
    with (directory / "banksim.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "banksim", "serve", "--data-dir", str(directory), "--base-port", "0", "--json"],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env,
        )
        try:
            line = _readline_within(process, WORLD_START_TIMEOUT_S)
            assert line, (directory / "banksim.log").read_text()
            yield str(json.loads(line)["BCB"])
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def bcb_channels(bcb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChannelRegistry]:
    data_dir: Path = tmp_path_factory.mktemp("platform-bcb")
    assert onboard_banks(data_dir, {"BCB": bcb_url}) == ["BCB"]
    registry = load_channels(data_dir, timeout_s=1.0)
    yield registry
    registry.close()


@pytest.fixture
def merchant(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> str:
    add_merchant(uow_factory, clock, MERCHANT)
    with uow_factory() as uow:
        uow.merchants.set_fee_plan(FeePlan.of(MERCHANT, (FeeRate("direct_debit", 30), FeeRate("cashier", 60))))
        uow.commit()
    return MERCHANT


def state(url: str) -> dict[str, object]:
    result: dict[str, object] = httpx.get(url + "/_sim/state", timeout=10).json()
    return result


def balance(url: str, acc_no: str) -> int:
    accounts = state(url)["accounts"]
    assert isinstance(accounts, list)
    return int(next(a["balance_minor"] for a in accounts if a["acc_no"] == acc_no))


def transfers(url: str) -> int:
    found = state(url)["transfers"]
    assert isinstance(found, list)
    return len(found)


def sms_code(url: str, phone: str) -> str:
    return str(httpx.get(url + "/_sim/sms", params={"phone": phone}, timeout=10).json()[0]["code"])


def mandate_for(person: Person, uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator,
                channels: ChannelRegistry, tools: MemberTools, url: str, merchant: str) -> mandates.Mandate:
    member_id = register(uow_factory, tools, merchant, person)
    request = mandates.MandateRequest(
        member_id=member_id, merchant_mandate_no=f"M-{ids.new('x')}", max_per_debit=Money.cny(20_000),
        max_per_month=Money.cny(30_000), valid_until=business_date(clock.now()) + timedelta(days=365),
        purpose="utility:electricity", card_number=person.cards["BCB"], name=person.name,
        id_number=person.id_number, phone=person.phone,
    )
    applied = mandates.create_mandate(uow_factory, clock, ids, channels, tools.cipher, request, merchant_id=merchant)
    assert applied.status is MandateStatus.APPLIED
    code = sms_code(url, person.phone)
    return mandates.confirm_mandate(uow_factory, clock, channels, tools.cipher, applied.id, code,
                                    merchant_id=merchant)


def test_a_bcb_mandate_debits_twice_and_refuses_outside_its_limits_before_the_bank(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, bcb_channels: ChannelRegistry,
    tools: MemberTools, bcb_url: str, merchant: str,
) -> None:
    active = mandate_for(WANG_FANG, uow_factory, clock, ids, bcb_channels, tools, bcb_url, merchant)
    assert active.status is MandateStatus.ACTIVE
    card_before = balance(bcb_url, WANG_FANG.cards["BCB"])

    def debit(amount_minor: int) -> mandates.payment_service.CreatedPayment:
        return mandates.debit(
            uow_factory, clock, ids, bcb_channels, tools.cipher, SETTINGS, merchant_id=merchant,
            mandate_id=active.id, out_trade_no=f"D-{ids.new('x')}", amount=Money.cny(amount_minor), subject="电费",
        )

    assert debit(10_000).payment.status is PaymentStatus.SUCCEEDED
    assert debit(15_000).payment.status is PaymentStatus.SUCCEEDED
    seen = transfers(bcb_url)
    with pytest.raises(MandateLimitExceeded):
        debit(20_001)
    with pytest.raises(MandateLimitExceeded):
        debit(5_001)
    mandates.revoke_mandate(uow_factory, clock, bcb_channels, tools.cipher, active.id, merchant_id=merchant)
    with pytest.raises(MandateNotActive):
        debit(100)
    assert transfers(bcb_url) == seen
    assert balance(bcb_url, WANG_FANG.cards["BCB"]) == card_before - 25_000
    assert_ledger_sound(uow_factory)


def test_insufficient_funds_at_chen_jings_card_fails_the_debit_with_a_webhook(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, bcb_channels: ChannelRegistry,
    tools: MemberTools, bcb_url: str, merchant: str,
) -> None:
    active = mandate_for(CHEN_JING, uow_factory, clock, ids, bcb_channels, tools, bcb_url, merchant)
    created = mandates.debit(
        uow_factory, clock, ids, bcb_channels, tools.cipher, SETTINGS, merchant_id=merchant, mandate_id=active.id,
        out_trade_no=f"D-{ids.new('x')}", amount=Money.cny(15_000), subject="电费",
    )
    assert created.payment.status is PaymentStatus.SUCCEEDED
    # Ends in 51: BCB declines for insufficient funds (BANKS.md magic amounts; BCB code 3008).
    failed = mandates.debit(
        uow_factory, clock, ids, bcb_channels, tools.cipher, SETTINGS, merchant_id=merchant, mandate_id=active.id,
        out_trade_no=f"D-{ids.new('x')}", amount=Money.cny(10_051), subject="电费",
    )
    assert failed.payment.status is PaymentStatus.FAILED
    with uow_factory() as uow:
        assert [a.failure_code for a in uow.payments.attempts_of(failed.payment.id)] == ["3008"]
        rows = uow._connection.execute(  # type: ignore[attr-defined]
            select(events.c.type, events.c.payload).where(events.c.merchant_id == merchant)
        ).all()
    assert any(row.type == "payment.failed" and failed.payment.id in row.payload for row in rows)
    assert_ledger_sound(uow_factory)


def test_a_94_debit_stays_pending_until_the_third_query_of_its_req_sn(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, bcb_channels: ChannelRegistry,
    tools: MemberTools, bcb_url: str, merchant: str,
) -> None:
    active = mandate_for(WANG_FANG, uow_factory, clock, ids, bcb_channels, tools, bcb_url, merchant)
    created = mandates.debit(
        uow_factory, clock, ids, bcb_channels, tools.cipher, SETTINGS, merchant_id=merchant, mandate_id=active.id,
        out_trade_no=f"D-{ids.new('x')}", amount=Money.cny(1_094), subject="电费",
    )
    assert created.payment.status is PaymentStatus.PROCESSING
    with uow_factory() as uow:
        attempt = next(iter(uow.payments.attempts_of(created.payment.id)))
    channel = bcb_channels.direct_debit("BCB")
    answers = [channel.query_payment(attempt.id, attempt.created_at).outcome.value for _ in range(3)]
    assert answers == ["pending", "pending", "succeeded"]
    assert channel.query_payment("att_NEVER_SENT", attempt.created_at).bank_code == "1002"


def test_the_re_query_job_resolves_a_bcb_debit_left_processing(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, bcb_channels: ChannelRegistry,
    tools: MemberTools, bcb_url: str, merchant: str,
) -> None:
    # BCB sends no notifications: a debit it answers "processing" (2000) is settled only by the
    # worker's re-query job, which must find BCB's direct-debit channel like any other.
    active = mandate_for(WANG_FANG, uow_factory, clock, ids, bcb_channels, tools, bcb_url, merchant)
    created = mandates.debit(
        uow_factory, clock, ids, bcb_channels, tools.cipher, SETTINGS, merchant_id=merchant, mandate_id=active.id,
        out_trade_no=f"D-{ids.new('x')}", amount=Money.cny(2_094), subject="水费",
    )
    assert created.payment.status is PaymentStatus.PROCESSING
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        assert requery_attempts(uow_factory, clock, ids, bcb_channels, SETTINGS, clock.now()) == 1
    with uow_factory() as uow:
        payment = uow.payments.get(created.payment.id)
    assert payment is not None
    assert payment.status is PaymentStatus.SUCCEEDED
    assert_ledger_sound(uow_factory)


def test_a_bcb_debit_left_created_by_a_crash_is_debited_once_by_its_retry(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, bcb_channels: ChannelRegistry,
    tools: MemberTools, bcb_url: str, merchant: str,
) -> None:
    active = mandate_for(WANG_FANG, uow_factory, clock, ids, bcb_channels, tools, bcb_url, merchant)
    # The first call died after creating the payment and before asking BCB (docs/direct-debit.md).
    stranded = mandates.payment_service.create_payment(uow_factory, clock, ids, PaymentRequest(
        merchant_id=merchant, out_trade_no="bcb-stranded", amount=Money.cny(3_000),
        method=PaymentMethod.DIRECT_DEBIT, subject="电费", metadata={"mandate_id": active.id},
    )).payment
    card_before, seen = balance(bcb_url, WANG_FANG.cards["BCB"]), transfers(bcb_url)

    for _ in range(2):
        retried = mandates.debit(
            uow_factory, clock, ids, bcb_channels, tools.cipher, SETTINGS, merchant_id=merchant,
            mandate_id=active.id, out_trade_no="bcb-stranded", amount=Money.cny(3_000), subject="电费",
        )
        assert (retried.replayed, retried.payment.id, retried.payment.status) == (
            True, stranded.id, PaymentStatus.SUCCEEDED)
    assert transfers(bcb_url) == seen + 1
    assert balance(bcb_url, WANG_FANG.cards["BCB"]) == card_before - 3_000
    assert_ledger_sound(uow_factory)
