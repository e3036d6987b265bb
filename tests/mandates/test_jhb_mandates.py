"""JHB direct debit end to end against the simulated bank: a mandate for 张伟's JHB card confirmed with
the bank's SMS code, debits with no payer step, limits enforced before the bank (the bank sees no
request), the bank's own 1071, revocation, and the ledger and the bank's books agreeing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.bindings.conftest import ZHANG_WEI, bank_sms_code, register
from tests.gateway.conftest import JHB_RESERVE, BankWorld, add_merchant, gateway_settings_for
from tests.payments.conftest import assert_ledger_sound
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.mandate import MandateLimitExceeded, MandateNotActive, MandateStatus, business_date
from tianpay.domain.merchant import FeePlan, FeeRate
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentStatus
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import mandates
from tianpay.services.member_tools import MemberTools

pytestmark = pytest.mark.e2e
SETTINGS = gateway_settings_for("http://127.0.0.1:9")
MERCHANT = "mch_DEBIT"
JHB_CARD = "6227990000000000013"


def jhb_transfers(world: BankWorld) -> int:
    return len(world.state("JHB")["transfers"])


@pytest.fixture
def merchant(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> str:
    add_merchant(uow_factory, clock, MERCHANT)
    with uow_factory() as uow:
        uow.merchants.set_fee_plan(FeePlan.of(MERCHANT, (FeeRate("direct_debit", 30), FeeRate("cashier", 60))))
        uow.commit()
    return MERCHANT


def test_a_jhb_mandate_debits_within_its_limits_and_refuses_outside_them_before_the_bank(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str,
) -> None:
    member_id = register(uow_factory, tools, merchant, ZHANG_WEI)
    request = mandates.MandateRequest(
        member_id=member_id, merchant_mandate_no=f"M-{ids.new('x')}", max_per_debit=Money.cny(20_000),
        max_per_month=Money.cny(30_000), valid_until=business_date(clock.now()) + timedelta(days=365),
        purpose="utility:electricity", card_number=JHB_CARD, name=ZHANG_WEI.name, id_number=ZHANG_WEI.id_number,
        phone=ZHANG_WEI.phone,
    )
    applied = mandates.create_mandate(uow_factory, clock, ids, channels, tools.cipher, request, merchant_id=merchant)
    assert applied.status is MandateStatus.APPLIED
    code = bank_sms_code(bank_world, "JHB", ZHANG_WEI.phone)
    active = mandates.confirm_mandate(
        uow_factory, clock, channels, tools.cipher, applied.id, code, merchant_id=merchant
    )
    assert active.status is MandateStatus.ACTIVE

    card_before = bank_world.balance("JHB", JHB_CARD)
    reserve_before = bank_world.balance("JHB", JHB_RESERVE)

    def debit(amount_minor: int, out_trade_no: str | None = None) -> mandates.payment_service.CreatedPayment:
        return mandates.debit(
            uow_factory, clock, ids, channels, tools.cipher, SETTINGS, merchant_id=merchant, mandate_id=active.id,
            out_trade_no=out_trade_no or f"D-{ids.new('x')}", amount=Money.cny(amount_minor), subject="电费",
        )

    first = debit(10_000, "bill-1")
    assert first.payment.status is PaymentStatus.SUCCEEDED
    assert debit(10_000, "bill-1").replayed
    second = debit(15_000)
    assert second.payment.status is PaymentStatus.SUCCEEDED

    transfers_before = jhb_transfers(bank_world)
    with pytest.raises(MandateLimitExceeded):
        debit(20_001)  # over the per-debit limit
    with pytest.raises(MandateLimitExceeded):
        debit(5_001)  # over what is left of the month's 300.00
    assert jhb_transfers(bank_world) == transfers_before

    mandates.revoke_mandate(uow_factory, clock, channels, tools.cipher, active.id, merchant_id=merchant)
    with pytest.raises(MandateNotActive):
        debit(100)
    assert jhb_transfers(bank_world) == transfers_before

    assert bank_world.balance("JHB", JHB_CARD) == card_before - 25_000
    assert bank_world.balance("JHB", JHB_RESERVE) == reserve_before + 25_000
    assert_ledger_sound(uow_factory)


def test_the_banks_own_limit_fails_the_debit_with_1071(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str,
) -> None:
    member_id = register(uow_factory, tools, merchant, ZHANG_WEI)
    request = mandates.MandateRequest(
        member_id=member_id, merchant_mandate_no=f"M-{ids.new('x')}", max_per_debit=Money.cny(20_000),
        max_per_month=Money.cny(30_000), valid_until=business_date(clock.now()) + timedelta(days=365),
        purpose="utility:water", card_number=JHB_CARD, name=ZHANG_WEI.name, id_number=ZHANG_WEI.id_number,
        phone=ZHANG_WEI.phone,
    )
    applied = mandates.create_mandate(uow_factory, clock, ids, channels, tools.cipher, request, merchant_id=merchant)
    code = bank_sms_code(bank_world, "JHB", ZHANG_WEI.phone)
    active = mandates.confirm_mandate(
        uow_factory, clock, channels, tools.cipher, applied.id, code, merchant_id=merchant
    )
    # The bank was told of a revocation the platform missed: only the bank's check stands.
    assert channels.direct_debit("JHB").revoke_mandate(
        tools.cipher.decrypt(mandates.PII_MANDATE_BANK_REF, active.bank_ref_sealed or "", active.id)
    ).outcome.value == "succeeded"
    created = mandates.debit(
        uow_factory, clock, ids, channels, tools.cipher, SETTINGS, merchant_id=merchant, mandate_id=active.id,
        out_trade_no=f"D-{ids.new('x')}", amount=Money.cny(1_000), subject="水费",
    )
    assert created.payment.status is PaymentStatus.FAILED
    with uow_factory() as uow:
        attempts = list(uow.payments.attempts_of(created.payment.id))
    assert attempts[0].failure_code == "1071"
    assert_ledger_sound(uow_factory)
