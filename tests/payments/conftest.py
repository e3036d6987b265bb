"""Fixtures for the payment services: a merchant with a known fee plan, ids, and small helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.domain.merchant import FeePlan, FeeRate, Merchant, MerchantStatus
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentMethod, PaymentRequest
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.ledger import verify_ledger

# The merchant pays 0.60 % at the cashier, 0.50 % (at least ¥1.00) by online banking and 0.38 % by
# quick pay; it has not signed up for wallet payments.
FEE_RATES = (
    FeeRate("cashier", 60),
    FeeRate("online_banking", 50, 100),
    FeeRate("quick_pay", 38),
    FeeRate("direct_debit", 30),
    FeeRate("pos", 55),
)


@pytest.fixture
def ids() -> UlidGenerator:
    return UlidGenerator()


def add_merchant(uow_factory: UnitOfWorkFactory, clock: SettableClock, merchant_id: str) -> str:
    with uow_factory() as uow:
        uow.merchants.add(
            Merchant(merchant_id, "津门好物商城", MerchantStatus.ACTIVE, None, "whsec_test", clock.now())
        )
        uow.merchants.set_fee_plan(FeePlan.of(merchant_id, FEE_RATES))
        uow.commit()
    return merchant_id


@pytest.fixture
def merchant_id(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> str:
    return add_merchant(uow_factory, clock, "mch_A")


def pay_request(merchant_id: str, out_trade_no: str = "order-1", **overrides: object) -> PaymentRequest:
    fields: dict[str, object] = {
        "merchant_id": merchant_id,
        "out_trade_no": out_trade_no,
        "amount": Money.cny(10_000),
        "method": PaymentMethod.CASHIER,
        "subject": "一杯咖啡",
        "notify_url": "https://shop.example/notify",
        "metadata": {"order": "42"},
    }
    fields.update(overrides)
    return PaymentRequest(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SentEvent:
    type: str
    data: dict[str, object]


def events_of(uow_factory: UnitOfWorkFactory, merchant_id: str) -> list[SentEvent]:
    """The merchant's events, oldest first, as (type, data)."""
    with uow_factory() as uow:
        page = uow.outbox.list_events(merchant_id, limit=100)
    return [
        SentEvent(event.type.value, json.loads(event.body)["data"]) for event in reversed(page.events)
    ]


def assert_ledger_sound(uow_factory: UnitOfWorkFactory) -> None:
    report = verify_ledger(uow_factory)
    assert report.is_sound, report.problem
