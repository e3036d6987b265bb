"""Fixtures for the statistics: a shop, a paying member with a wallet, and a day of real payments.

Payments are made through the payment services as the banks would answer them (start an attempt,
the bank confirms or declines), wallet payments through the wallet service, and refunds of wallet
payments through the refund service (the money goes back to the wallet with no bank to call), so
every figure the aggregates show comes from the same code paths production runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.members.conftest import build_tools
from tests.wallet.conftest import WalletWorld as _WalletWorld
from tests.wallet.conftest import add_payer, fund
from tianpay.adapters.clock import SettableClock
from tianpay.channels.registry import ChannelRegistry, load_channels
from tianpay.domain.merchant import FeePlan, FeeRate, Merchant, MerchantStatus
from tianpay.domain.money import Money
from tianpay.domain.payment import Payment, PaymentMethod, PaymentRequest
from tianpay.domain.refund import RefundRequest
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import payments, refunds, statistics
from tianpay.services.member_tools import MemberTools

_numbers = itertools.count(1)
# The job re-reads changes younger than this; tests move the clock past it before they read.
MARGIN = timedelta(seconds=60)
FEE_RATES = (FeeRate("wallet", 30), FeeRate("cashier", 60), FeeRate("online_banking", 50, 100),
             FeeRate("quick_pay", 38))


def add_shop(uow_factory: UnitOfWorkFactory, clock: SettableClock, merchant_id: str) -> str:
    with uow_factory() as uow:
        uow.merchants.add(Merchant(merchant_id, "津门好物商城", MerchantStatus.ACTIVE, None, "whsec", clock.now()))
        uow.merchants.set_fee_plan(FeePlan.of(merchant_id, FEE_RATES))
        uow.commit()
    return merchant_id


@dataclass
class Shop:
    """Two merchants (W with a paying member, X without) and the tools to pay them."""

    uow: UnitOfWorkFactory
    clock: SettableClock
    tools: MemberTools
    channels: ChannelRegistry
    merchant_id: str
    other_merchant_id: str
    member_id: str

    @property
    def world(self) -> _WalletWorld:
        return _WalletWorld(self.uow, self.tools, self.merchant_id, self.member_id)

    def create(self, amount_minor: int, method: PaymentMethod, *, merchant_id: str | None = None,
               bank: str | None = None) -> Payment:
        request = PaymentRequest(
            merchant_id=merchant_id or self.merchant_id,
            out_trade_no=f"s-{next(_numbers)}",
            amount=Money.cny(amount_minor),
            method=method,
            subject="一杯咖啡",
            bank=bank,
        )
        return payments.create_payment(self.uow, self.clock, self.tools.ids, request).payment

    def paid_at_bank(self, payment: Payment, bank: str) -> Payment:
        attempt = payments.start_attempt(self.uow, self.clock, self.tools.ids, payment.id,
                                         channel=f"{bank.lower()}.online_banking", bank=bank)
        return payments.record_attempt_succeeded(
            self.uow, self.clock, payment.id, attempt.id, bank_reference=f"ref-{attempt.id}", amount=payment.amount
        ).payment

    def declined_at_bank(self, payment: Payment, bank: str) -> Payment:
        attempt = payments.start_attempt(self.uow, self.clock, self.tools.ids, payment.id,
                                         channel=f"{bank.lower()}.online_banking", bank=bank)
        return payments.record_attempt_failed(
            self.uow, self.clock, payment.id, attempt.id, failure_code="51", failure_message="insufficient funds"
        ).payment

    def paid_from_wallet(self, payment: Payment) -> Payment:
        return payments.pay_from_wallet(self.uow, self.clock, self.tools.ids, payment.id,
                                        member_id=self.member_id).payment

    def refund(self, payment: Payment, amount_minor: int) -> None:
        refunds.create_refund(
            self.uow, self.clock, self.tools.ids, self.channels, payment.merchant_id, payment.id,
            RefundRequest(f"r-{next(_numbers)}", Money.cny(amount_minor)), notify_base_url="http://127.0.0.1:9",
        )

    def refresh(self) -> int:
        """The aggregation job, run once the changes so far are older than the settle margin."""
        return statistics.refresh_statistics(self.uow, self.clock.now() + MARGIN, settle_margin=MARGIN)


@pytest.fixture
def shop(uow_factory: UnitOfWorkFactory, engine: Engine, clock: SettableClock, tmp_path: Path) -> Shop:
    tools = build_tools(engine, clock)
    merchant_id = add_shop(uow_factory, clock, "mch_W")
    other = add_shop(uow_factory, clock, "mch_X")
    member_id = add_payer(uow_factory, tools, merchant_id)
    # No bank was onboarded here: wallet refunds never call one.
    return Shop(uow_factory, clock, tools, load_channels(tmp_path), merchant_id, other, member_id)


def play_two_days(shop: Shop) -> dict[str, Payment]:
    """Payments of every fate across two Shanghai business dates, refunds on the second."""
    fund(shop.world, 100_000)
    made: dict[str, Payment] = {}
    made["wallet_1"] = shop.paid_from_wallet(shop.create(3_000, PaymentMethod.WALLET))
    made["wallet_2"] = shop.paid_from_wallet(shop.create(5_000, PaymentMethod.WALLET))
    made["cashier_jhb"] = shop.paid_at_bank(shop.create(8_000, PaymentMethod.CASHIER), "JHB")
    # The payer at the cashier may try again after a decline, so that payment reopens; it is then closed.
    declined = shop.declined_at_bank(shop.create(2_000, PaymentMethod.ONLINE_BANKING, bank="HBB"), "HBB")
    made["closed_hbb"] = payments.close_payment(shop.uow, shop.clock, shop.merchant_id, declined.id)
    # Nobody is there to choose again after a quick-pay decline: that payment fails.
    made["failed_jhb"] = shop.declined_at_bank(shop.create(6_600, PaymentMethod.QUICK_PAY), "JHB")
    made["open"] = shop.create(1_500, PaymentMethod.CASHIER)
    made["other_merchant"] = shop.paid_at_bank(
        shop.create(9_900, PaymentMethod.CASHIER, merchant_id=shop.other_merchant_id), "HBB"
    )
    # 02:00 UTC + 16 h is 02:00 the next day in Shanghai.
    shop.clock.advance(timedelta(hours=16))
    shop.refund(made["wallet_1"], 1_000)
    shop.refund(made["wallet_2"], 5_000)
    made["next_day"] = shop.paid_from_wallet(shop.create(4_200, PaymentMethod.WALLET))
    return made
