"""The console's clearing actions over real HTTP on both databases: booking a refused 补单 to suspense,
and paying a settlement whose payout failed again, each audited and each refused to the wrong role.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, _DatabaseFactory
from tests.payouts.conftest import WANG_FANG_HBB, PayoutWorld, payout_data_dir, payout_world
from tests.reconciliation.conftest import Banks, LedgerBank, Row
from tianpay.domain.ledger import PLATFORM_SUSPENSE, bank_reserve
from tianpay.domain.merchant import FeePlan, FeeRate, Merchant, MerchantStatus
from tianpay.domain.money import Money
from tianpay.domain.operator import Role
from tianpay.domain.payment import PaymentMethod, PaymentRequest
from tianpay.domain.posting_rules import bank_payment_succeeded
from tianpay.domain.reconciliation import ExceptionStatus
from tianpay.domain.statistics import business_date_of
from tianpay.ports.reconciliation import ReconciliationException
from tianpay.ports.statements import StatementItemKind
from tianpay.services import audit, payments, payouts, reconciliation, settlement

from .conftest import ConsoleServer, signed_in, start_console_server

__all__ = ["payout_data_dir", "payout_world"]

_numbers = itertools.count(1)
# Past business dates of their own, far from the ones conftest's helpers use.
_days_back = itertools.count(40)


@pytest.fixture(scope="module", params=BACKENDS)
def console_server(
    request: pytest.FixtureRequest, database_factory: _DatabaseFactory, payout_data_dir: Path
) -> Iterator[ConsoleServer]:
    """The console's server with the simulated banks onboarded, so a settlement's payout really goes
    to HBB (and is really refused there)."""
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    console, server = start_console_server(database_url, payout_data_dir)
    try:
        yield console
    finally:
        server.stop()
        console.container.close()


def audit_rows(server: ConsoleServer, action: str) -> list[audit.AuditRecord]:
    return [r for r in audit.audit_trail(server.container.uow, limit=200) if r.action == action]


def _merchant(server: ConsoleServer, rates: tuple[FeeRate, ...]) -> str:
    container = server.container
    merchant_id = f"mch_clearing{next(_numbers)}"
    with container.uow() as uow:
        uow.merchants.add(
            Merchant(merchant_id, "清算测试商户", MerchantStatus.ACTIVE, None, "whsec_t", container.clock.now())
        )
        uow.merchants.set_fee_plan(FeePlan.of(merchant_id, rates))
        uow.commit()
    return merchant_id


def refused_make_good(server: ConsoleServer, tmp_path: Path, amount_minor: int) -> ReconciliationException:
    """A cashier payment in flight at HBB for a merchant whose plan prices only POS, and a past HBB
    statement that names it: the real reconciliation service's 补单 is refused (FeePlanMissing)."""
    container = server.container
    merchant_id = _merchant(server, (FeeRate("pos", 50),))
    request = PaymentRequest(merchant_id=merchant_id, out_trade_no=f"refused-{next(_numbers)}",
                             amount=Money.cny(amount_minor), method=PaymentMethod.CASHIER, subject="补单")
    with container.uow() as uow:
        uow.merchants.set_fee_plan(FeePlan.of(merchant_id, (FeeRate("cashier", 60),)))
        uow.commit()
    payment = payments.create_payment(container.uow, container.clock, container.ids, request).payment
    attempt = payments.start_attempt(container.uow, container.clock, container.ids, payment.id,
                                     channel="online_banking", bank="HBB")
    with container.uow() as uow:
        uow.merchants.set_fee_plan(FeePlan.of(merchant_id, (FeeRate("pos", 50),)))
        uow.commit()
    day = business_date_of(container.clock.now()) - timedelta(days=next(_days_back))
    bank = LedgerBank("HBB")
    bank.add(day, Row(StatementItemKind.COLLECTION, f"Q-R{day:%Y%m%d}", amount_minor, 0, attempt.id))
    report = reconciliation.reconcile(
        container.uow, container.clock, container.ids, Banks({"HBB": bank}), "HBB", day,
        policy=reconciliation.ReconciliationPolicy(statements_dir=tmp_path / "statements"), worker_id="console",
    )
    assert report.summary["make_good_refused"] == 1
    [refused] = reconciliation.exceptions_of(container.uow, run_id=report.run_id)
    return refused


def test_finance_books_a_refused_make_good_to_suspense_and_the_audit_names_the_follow_up(
    console_server: ConsoleServer, tmp_path: Path
) -> None:
    container = console_server.container
    refused = refused_make_good(console_server, tmp_path, 7_700)
    with container.uow() as uow:
        uow.ledger.ensure_accounts([bank_reserve("HBB"), PLATFORM_SUSPENSE])
        before = uow.ledger.balances(["bank:HBB:reserve", PLATFORM_SUSPENSE.code])
    client, staff = signed_in(console_server, Role.FINANCE)
    page = client.get("/console/reconciliation")
    assert refused.id in page.text
    assert "book_to_suspense" in page.text

    dismissed = client.post(f"/console/reconciliation/exceptions/{refused.id}/resolve",
                            {"action": "dismiss", "reason": "nothing to see"})
    assert dismissed.status_code == 400
    answer = client.post(f"/console/reconciliation/exceptions/{refused.id}/resolve",
                         {"action": "book_to_suspense", "reason": "fee plan withdrawn mid-payment"})

    assert answer.status_code == 303
    follow_up = reconciliation.follow_up_id(refused.id)
    found = {e.id: e for e in reconciliation.exceptions_of(container.uow, run_id=refused.run_id)}
    assert found[refused.id].resolution == "book_to_suspense"
    assert (found[follow_up].status, found[follow_up].suspense_minor) == (ExceptionStatus.OPEN, -7_700)
    with container.uow() as uow:
        after = uow.ledger.balances(["bank:HBB:reserve", PLATFORM_SUSPENSE.code])
        assert uow.ledger.verify() is None
    assert after["bank:HBB:reserve"].minor - before["bank:HBB:reserve"].minor == 7_700
    assert after[PLATFORM_SUSPENSE.code].minor - before[PLATFORM_SUSPENSE.code].minor == -7_700
    [row] = [r for r in audit_rows(console_server, "reconciliation.resolve") if r.subject_id == refused.id]
    assert row.operator == staff.username
    assert row.before["kind"] == "make_good_refused"
    assert row.after["resolution"] == "book_to_suspense"
    assert row.after["follow_up_id"] == follow_up
    # The follow-up is resolved from suspense like any other exception.
    recovered = client.post(f"/console/reconciliation/exceptions/{follow_up}/resolve",
                            {"action": "recovered", "reason": "refunded to the payer by transfer"})
    assert recovered.status_code == 303
    with container.uow() as uow:
        assert uow.ledger.balance(PLATFORM_SUSPENSE.code).minor == before[PLATFORM_SUSPENSE.code].minor
    client.close()


def _failed_settlement_payout(server: ConsoleServer) -> tuple[str, str, str]:
    """A merchant's settlement whose automatic payout HBB refused (code 56: the name is not the
    holder's): (merchant, settlement, failed payout)."""
    container = server.container
    clock = container.clock
    merchant_id = _merchant(server, (FeeRate("cashier", 60),))
    now = clock.now()
    yesterday = now - timedelta(days=1)
    clock.set(yesterday)  # type: ignore[attr-defined]
    with container.uow() as uow:
        uow.ledger.post(bank_payment_succeeded(payment_id=f"pay_{merchant_id}", merchant_id=merchant_id, bank="HBB",
                                               amount=Money.cny(20_500), fee=Money.cny(500)))
        uow.commit()
    clock.set(now)  # type: ignore[attr-defined]
    cipher = container.member_tools.cipher
    settlement.change_settlement_settings(container.uow, clock, cipher, merchant_id, settlement.SettingsChange(
        auto_payout=True, account=settlement.AccountInput(WANG_FANG_HBB[0], WANG_FANG_HBB[1], "王五"),
    ))
    settled = settlement.settle_merchant(container.uow, clock, merchant_id=merchant_id,
                                         business_date=business_date_of(yesterday), required_banks=())
    assert settled.settlement is not None
    assert payouts.settlement_payouts(container.uow, clock, container.ids, container.channels, cipher, now) >= 1
    payout_id = settlement.get_settlement(container.uow, merchant_id, settled.settlement.id).payout_id
    assert payout_id is not None
    payouts.dispatch_payouts(container.uow, clock, container.ids, container.channels, cipher, now)
    assert payouts.get_payout(container.uow, merchant_id, payout_id).failure_code == "56"
    return merchant_id, settled.settlement.id, payout_id


def test_finance_pays_a_failed_settlement_again_once_and_support_may_not(
    console_server: ConsoleServer, payout_world: PayoutWorld
) -> None:
    container = console_server.container
    merchant_id, settlement_id, failed_id = _failed_settlement_payout(console_server)
    assert settlement.get_settlement(container.uow, merchant_id, settlement_id).status.value == "payout_failed"
    support, _ = signed_in(console_server, Role.SUPPORT)
    support.get("/console")
    assert support.post(f"/console/settlements/{settlement_id}/retry-payout",
                        {"reason": "try"}).status_code == 403
    support.close()
    client, staff = signed_in(console_server, Role.FINANCE)
    page = client.get("/console/settlements")
    assert f'data-settlement="{settlement_id}"' in page.text

    answer = client.post(f"/console/settlements/{settlement_id}/retry-payout", {"reason": "bank fixed the name"})
    again = client.post(f"/console/settlements/{settlement_id}/retry-payout", {"reason": "double click"})

    assert answer.status_code == 303
    assert again.status_code == 400
    retried = settlement.get_settlement(container.uow, merchant_id, settlement_id)
    assert retried.status.value == "settled"
    assert retried.payout_id not in (None, failed_id)
    [row] = [r for r in audit_rows(console_server, "settlement.retry_payout") if r.subject_id == settlement_id]
    assert row.operator == staff.username
    assert row.before == {"status": "payout_failed", "payout_id": failed_id, "net_minor": 20_000}
    assert row.after["payout_id"] == retried.payout_id
    assert WANG_FANG_HBB[1] not in str(row.after)
    with container.uow() as uow:
        assert uow.ledger.balance(f"merchant:{merchant_id}:available").minor == 0
        assert uow.ledger.verify() is None
    # Sent to the same account, it is refused the same way and waits again, its money back.
    payouts.dispatch_payouts(container.uow, container.clock, container.ids, container.channels,
                             container.member_tools.cipher, container.clock.now())
    assert settlement.get_settlement(container.uow, merchant_id, settlement_id).status.value == "payout_failed"
    with container.uow() as uow:
        assert uow.ledger.balance(f"merchant:{merchant_id}:available").minor == 20_000
    client.close()
