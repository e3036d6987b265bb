"""Fixtures for card binding and quick pay at the service level: the real bank world, a fresh database
of each backend, a merchant, members registered by it, and the tools the services take.

The world (tests/gateway/conftest.py) runs in a subprocess per module; SMS codes are read from each
bank's outbox (``/_sim/sms``). The platform's clock starts at real time because the banks run on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine

from tests.gateway import conftest as world
from tests.gateway.conftest import BankWorld, add_merchant, gateway_settings_for
from tests.members.conftest import build_tools
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import PAYER_DECLINE_CODES, ChannelRegistry
from tianpay.domain.card_binding import CardBinding
from tianpay.domain.channel_health import BreakerPolicy
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import card_bindings, members
from tianpay.services.member_tools import MemberTools
from tianpay.services.quick_pay import QuickPaySettings
from tianpay.services.routing import RoutingSettings

# The bank world and the onboarded channels of the gateway suite, shared as fixtures.
bank_world, onboarded_dir, channels = world.bank_world, world.onboarded_dir, world.channels

MERCHANT = "mch_QUICK"
OTHER_MERCHANT = "mch_OTHER"
PAYMENT_PASSWORD = "135792"


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    id_number: str
    phone: str
    cards: dict[str, str]


ZHANG_WEI = Person("张伟", "110105198503120012", "13800138001",
                   {"HBB": "6217990000000000014", "JHB": "6227990000000000013"})
LIU_YANG = Person("刘洋", "310104199511110047", "13800138004", {"HBB": "6217990000000000030"})


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime.now(UTC))


@pytest.fixture
def ids() -> UlidGenerator:
    return UlidGenerator()


@pytest.fixture
def tools(engine: Engine, clock: SettableClock) -> MemberTools:
    return build_tools(engine, clock)


@pytest.fixture
def merchant(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> str:
    from tianpay.domain.merchant import FeePlan, FeeRate

    add_merchant(uow_factory, clock, OTHER_MERCHANT)
    merchant_id = add_merchant(uow_factory, clock, MERCHANT)
    with uow_factory() as uow:
        uow.merchants.set_fee_plan(FeePlan.of(merchant_id, (FeeRate("quick_pay", 40), FeeRate("cashier", 60))))
        uow.commit()
    return merchant_id


def register(uow_factory: UnitOfWorkFactory, tools: MemberTools, merchant_id: str, person: Person) -> str:
    registration = members.ImplicitRegistration(merchant_id, f"user-{person.phone}", person.name,
                                                person.id_number, person.phone)
    return members.register_for_merchant(uow_factory, tools, registration).member.id


def bank_sms_code(world: BankWorld, bank: str, phone: str) -> str:
    messages = httpx.get(world.urls[bank] + "/_sim/sms", params={"phone": phone}, timeout=10).json()
    return str(messages[0]["code"])


def application(member_id: str, person: Person, bank: str, **changes: str) -> card_bindings.BindingApplication:
    fields = {"card_number": person.cards[bank], "name": person.name, "id_number": person.id_number,
              "phone": person.phone, **changes}
    return card_bindings.BindingApplication(member_id=member_id, **fields)


@dataclass
class Binder:
    """Binds cards through the service, reading each bank's SMS code as the payer would."""

    uow: UnitOfWorkFactory
    clock: SettableClock
    ids: UlidGenerator
    channels: ChannelRegistry
    tools: MemberTools
    world: BankWorld
    merchant_id: str

    def apply(self, app: card_bindings.BindingApplication) -> CardBinding:
        return card_bindings.apply_binding(self.uow, self.clock, self.ids, self.channels, self.tools.cipher, app,
                                           merchant_id=self.merchant_id)

    def confirm(self, binding: CardBinding, code: str) -> card_bindings.ConfirmedBinding:
        return card_bindings.confirm_binding(self.uow, self.clock, self.channels, self.tools.cipher, binding.id, code,
                                             merchant_id=self.merchant_id)

    def bind(self, member_id: str, person: Person, bank: str) -> CardBinding:
        applied = self.apply(application(member_id, person, bank))
        return self.confirm(applied, bank_sms_code(self.world, bank, person.phone)).binding


@pytest.fixture
def binder(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
           tools: MemberTools, bank_world: BankWorld, merchant: str) -> Binder:
    return Binder(uow_factory, clock, ids, channels, tools, bank_world, merchant)


def quick_pay_settings(base_url: str = "http://127.0.0.1:9", *, threshold: int = 5) -> QuickPaySettings:
    return QuickPaySettings(
        gateway=gateway_settings_for(base_url),
        routing=RoutingSettings(BreakerPolicy(failure_threshold=threshold), PAYER_DECLINE_CODES),
    )
