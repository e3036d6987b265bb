"""Fixtures for the wallet: a merchant signed up for wallet payments, a member with a payment
password, and funding by a top-up recorded as a bank would (start attempt, bank confirms)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from tests.members.conftest import ID_ZHANG, PHONE_ZHANG, build_tools
from tianpay.adapters.clock import SettableClock
from tianpay.domain.merchant import FeePlan, FeeRate, Merchant, MerchantStatus
from tianpay.domain.money import Money
from tianpay.domain.payment import Payment, PaymentMethod, PaymentRequest
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import members, payments, wallet
from tianpay.services.member_tools import MemberTools

PAYMENT_PASSWORD = "135790"
# 0.30 % for wallet payments and 0.60 % at the cashier.
FEE_RATES = (FeeRate("wallet", 30), FeeRate("cashier", 60), FeeRate("online_banking", 50))
_orders = itertools.count(1)


@dataclass(frozen=True, slots=True)
class WalletWorld:
    uow: UnitOfWorkFactory
    tools: MemberTools
    merchant_id: str
    member_id: str


def add_shop(uow_factory: UnitOfWorkFactory, clock: SettableClock, merchant_id: str = "mch_W") -> str:
    with uow_factory() as uow:
        uow.merchants.add(Merchant(merchant_id, "津门好物商城", MerchantStatus.ACTIVE, None, "whsec", clock.now()))
        uow.merchants.set_fee_plan(FeePlan.of(merchant_id, FEE_RATES))
        uow.commit()
    return merchant_id


def add_payer(uow_factory: UnitOfWorkFactory, tools: MemberTools, merchant_id: str) -> str:
    registration = members.ImplicitRegistration(merchant_id, "payer-1", "张伟", ID_ZHANG, PHONE_ZHANG)
    member_id = members.register_for_merchant(uow_factory, tools, registration).member.id
    members.set_payment_password(uow_factory, tools, member_id, PAYMENT_PASSWORD)
    return member_id


def fund(world: WalletWorld, amount_minor: int, *, bank: str = "HBB") -> Payment:
    """Tops the wallet up by ``amount_minor`` as if the payer paid at ``bank`` (the bank confirms)."""
    started = wallet.start_top_up(
        world.uow, world.tools, world.member_id, Money.cny(amount_minor),
        return_url="https://pay.example/wallet", bank=bank,
    )
    attempt = payments.start_attempt(
        world.uow, world.tools.clock, world.tools.ids, started.payment.id, channel="hbb.online_banking", bank=bank
    )
    recorded = payments.record_attempt_succeeded(
        world.uow, world.tools.clock, started.payment.id, attempt.id,
        bank_reference=f"ref-{attempt.id}", amount=Money.cny(amount_minor),
    )
    return recorded.payment


def wallet_payment(world: WalletWorld, amount_minor: int, *, method: PaymentMethod = PaymentMethod.WALLET) -> Payment:
    request = PaymentRequest(
        merchant_id=world.merchant_id,
        out_trade_no=f"w-{next(_orders)}",
        amount=Money.cny(amount_minor),
        method=method,
        subject="一杯咖啡",
    )
    return payments.create_payment(world.uow, world.tools.clock, world.tools.ids, request).payment


@pytest.fixture
def world(uow_factory: UnitOfWorkFactory, engine: Engine, clock: SettableClock) -> WalletWorld:
    tools = build_tools(engine, clock)
    merchant_id = add_shop(uow_factory, clock)
    return WalletWorld(uow_factory, tools, merchant_id, add_payer(uow_factory, tools, merchant_id))
