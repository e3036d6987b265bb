"""Fixtures for settlement: a shop taking wallet payments, a funded payer, and helpers to make a day.

Money reaches the merchant through the real services: the payer's wallet is topped up as a bank
would confirm it, wallet payments succeed through ``payments.pay_from_wallet`` and refunds through
``refunds.create_refund`` (a wallet payment's refund needs no bank). The API fixtures of
``tests/api`` are shared, so the signed client and the server are the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine

from tests.members.conftest import build_tools
from tests.wallet.conftest import WalletWorld, add_payer, add_shop, fund, wallet_payment
from tianpay.adapters.clock import SettableClock
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.ledger import merchant_accounts
from tianpay.domain.money import Money
from tianpay.domain.payment import Payment
from tianpay.domain.refund import Refund, RefundRequest
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import payments, refunds
from tianpay.services.settlement import SettleOutcome, settle_merchant

# 2026-11-26 in Shanghai runs from 2026-11-25T16:00Z to 2026-11-26T16:00Z.
DAY = date(2026, 11, 26)
DAY_START = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
NOTIFY_BASE = "https://tianpay.example"


@dataclass
class Shop:
    """The wallet world plus the settable clock, so a test can place each payment in its day."""

    world: WalletWorld
    clock: SettableClock

    @property
    def merchant_id(self) -> str:
        return self.world.merchant_id

    @property
    def uow(self) -> UnitOfWorkFactory:
        return self.world.uow

    def at(self, moment: datetime) -> Shop:
        self.clock.set(moment)
        return self

    def pay(self, amount_minor: int) -> Payment:
        payment = wallet_payment(self.world, amount_minor)
        tools = self.world.tools
        paid = payments.pay_from_wallet(
            self.uow, tools.clock, tools.ids, payment.id, member_id=self.world.member_id
        )
        return paid.payment

    def refund(self, payment: Payment, amount_minor: int, out_refund_no: str) -> Refund:
        tools = self.world.tools
        created = refunds.create_refund(
            self.uow, tools.clock, tools.ids, ChannelRegistry(), self.merchant_id, payment.id,
            RefundRequest(out_refund_no, Money.cny(amount_minor), None), notify_base_url=NOTIFY_BASE,
        )  # fmt: skip
        return created.refund

    def settle(self, business_date: date = DAY, *, banks: tuple[str, ...] = ()) -> SettleOutcome:
        return settle_merchant(
            self.uow, self.clock, merchant_id=self.merchant_id, business_date=business_date, required_banks=banks
        )


@pytest.fixture
def shop(uow_factory: UnitOfWorkFactory, engine: Engine, clock: SettableClock) -> Shop:
    clock.set(DAY_START - timedelta(hours=1))
    tools = build_tools(engine, clock)
    merchant_id = add_shop(uow_factory, clock, "mch_settle")
    with uow_factory() as uow:
        # What merchant sign-up does: the merchant's pending and available accounts exist from the start.
        uow.ledger.ensure_accounts(merchant_accounts(merchant_id))
        uow.commit()
    world = WalletWorld(uow_factory, tools, merchant_id, add_payer(uow_factory, tools, merchant_id))
    fund(world, 10_000_000)
    return Shop(world, clock)
