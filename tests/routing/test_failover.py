"""The quick-pay router against the real banks: failover only when no money can have moved, the
circuit breaker opening on a failing bank and closing on a successful probe (settable clock).

Each test runs on SQLite and PostgreSQL. Magic amounts are world-wide (BANKS.md), so a magic 91 is
refused by every bank; a refusal at HBB alone is HBB's `refuse_new_orders` fault (`POST /_sim/faults`),
under which the real HBB answers every new payment with its own signed 91 and records nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from tests.bindings.conftest import PAYMENT_PASSWORD, ZHANG_WEI, Binder, quick_pay_settings, register
from tests.gateway.conftest import BankWorld, new_payment
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.card_binding import CardBinding
from tianpay.domain.channel_health import BreakerState
from tianpay.domain.console import BankSwitchedOff, ChannelSetting
from tianpay.domain.payment import AttemptStatus, Payment, PaymentMethod, PaymentStatus
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import members, quick_pay, routing
from tianpay.services.gateway import requery_attempts
from tianpay.services.member_tools import MemberTools
from tianpay.services.quick_pay import QuickPaySettings, QuickPayUnavailable

pytestmark = pytest.mark.e2e

_cents = itertools.count(1)


def amount_ending(suffix: int) -> int:
    return 10_000 + next(_cents) * 100 + suffix


@dataclass
class Payer:
    member_id: str
    cards: dict[str, CardBinding]


@pytest.fixture
def payer(binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools) -> Payer:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    cards = {bank: binder.bind(member_id, ZHANG_WEI, bank) for bank in ("HBB", "JHB")}
    members.set_payment_password(uow_factory, tools, member_id, PAYMENT_PASSWORD)
    return Payer(member_id, cards)


@dataclass
class Checkout:
    uow: UnitOfWorkFactory
    clock: SettableClock
    ids: UlidGenerator
    channels: object
    tools: MemberTools
    merchant_id: str
    settings: QuickPaySettings

    def pay(self, card: CardBinding, amount_minor: int) -> Payment:
        payment = new_payment(self.uow, self.clock, self.ids, self.merchant_id, amount_minor,
                              method=PaymentMethod.QUICK_PAY)
        return quick_pay.confirm_quick_pay(
            self.uow, self.clock, self.ids, self.channels, self.tools, self.settings,  # type: ignore[arg-type]
            merchant_id=self.merchant_id, payment_id=payment.id, card_id=card.id, payment_password=PAYMENT_PASSWORD,
        )

    def attempts(self, payment: Payment) -> list[tuple[str, AttemptStatus, str | None]]:
        with self.uow() as uow:
            return [(a.bank, a.status, a.failure_code) for a in uow.payments.attempts_of(payment.id)]


@pytest.fixture
def checkout(binder: Binder) -> Checkout:
    return Checkout(binder.uow, binder.clock, binder.ids, binder.channels, binder.tools, binder.merchant_id,
                    quick_pay_settings(threshold=2))


@pytest.fixture
def refusing_hbb(binder: Binder) -> Iterator[str]:
    """HBB refusing every new payment (its 91, nothing recorded) until the test ends; returns its URL."""
    hbb = binder.world.urls["HBB"]
    httpx.post(f"{hbb}/_sim/faults", json={"refuse_new_orders": True}, timeout=10).raise_for_status()
    yield hbb
    httpx.post(f"{hbb}/_sim/faults", json={"reset": True}, timeout=10).raise_for_status()


def moved_into_reserve(world: BankWorld, bank: str, attempt_ids: list[str]) -> int:
    """What the bank's books moved into our reserve for these attempts (banks name them in the memo)."""
    state = world.state(bank)
    reserve = next(a["acc_no"] for a in state["accounts"] if a["kind"] == "reserve")
    flat = [attempt_id.replace("_", "") for attempt_id in attempt_ids]
    return sum(
        int(t["amount_minor"])
        for t in state["transfers"]
        if t["credit_acc"] == reserve and any(ref in t["memo"].replace("_", "") for ref in flat)
    )


def test_a_card_is_charged_at_its_own_bank(checkout: Checkout, payer: Payer) -> None:
    paid = checkout.pay(payer.cards["HBB"], 1234)
    assert paid.status is PaymentStatus.SUCCEEDED
    assert checkout.attempts(paid) == [("HBB", AttemptStatus.SUCCEEDED, None)]


def test_hbb_refusing_new_orders_fails_over_and_jhb_takes_the_payment(
    checkout: Checkout, payer: Payer, binder: Binder, refusing_hbb: str
) -> None:
    paid = checkout.pay(payer.cards["HBB"], 2345)
    assert paid.status is PaymentStatus.SUCCEEDED
    assert checkout.attempts(paid) == [("HBB", AttemptStatus.FAILED, "91"), ("JHB", AttemptStatus.SUCCEEDED, None)]
    with checkout.uow() as uow:
        attempt_ids = [a.id for a in uow.payments.attempts_of(paid.id)]
    # The banks' own books agree: HBB recorded nothing, JHB moved the whole amount into our reserve.
    assert moved_into_reserve(binder.world, "HBB", attempt_ids) == 0
    assert moved_into_reserve(binder.world, "JHB", attempt_ids) == 2345


def test_a_card_at_a_bank_switched_off_in_the_console_is_refused_and_no_other_card_is_charged(
    checkout: Checkout, payer: Payer, binder: Binder
) -> None:
    with checkout.uow() as uow:
        uow.channel_settings.save(ChannelSetting("HBB", False, None, "ops.admin", checkout.clock.now()))
        uow.commit()
    cards_before = {bank: binder.world.balance(bank, ZHANG_WEI.cards[bank]) for bank in ("HBB", "JHB")}
    payment = new_payment(checkout.uow, checkout.clock, checkout.ids, checkout.merchant_id, 4567,
                          method=PaymentMethod.QUICK_PAY)
    # Before the switch check, the plan left HBB out and charged the member's JHB card, which nobody chose.
    with pytest.raises(BankSwitchedOff) as refused:
        quick_pay.confirm_quick_pay(
            checkout.uow, checkout.clock, checkout.ids, checkout.channels, checkout.tools,  # type: ignore[arg-type]
            checkout.settings, merchant_id=checkout.merchant_id, payment_id=payment.id,
            card_id=payer.cards["HBB"].id, payment_password=PAYMENT_PASSWORD,
        )
    assert (refused.value.code, refused.value.param) == ("bank_switched_off", "card_id")
    with checkout.uow() as uow:
        unpaid = uow.payments.get(payment.id)
        assert unpaid is not None
        assert unpaid.status is PaymentStatus.CREATED
    assert checkout.attempts(payment) == []
    assert {bank: binder.world.balance(bank, ZHANG_WEI.cards[bank]) for bank in ("HBB", "JHB")} == cards_before
    # The member's JHB card, at a bank that is on, still pays.
    assert checkout.pay(payer.cards["JHB"], 5678).status is PaymentStatus.SUCCEEDED


def test_a_magic_91_is_refused_by_both_banks_and_fails_the_payment(checkout: Checkout, payer: Payer) -> None:
    failed = checkout.pay(payer.cards["HBB"], amount_ending(91))
    assert failed.status is PaymentStatus.FAILED
    assert checkout.attempts(failed) == [("HBB", AttemptStatus.FAILED, "91"), ("JHB", AttemptStatus.FAILED, "1091")]


def test_an_hbb_decline_fails_over_to_the_members_jhb_card(
    checkout: Checkout, payer: Payer, channels: ChannelRegistry, tools: MemberTools
) -> None:
    # HBB's token is revoked behind the platform's back: HBB answers 66 (FAILED, nothing recorded).
    from tianpay.services.card_bindings import open_card_token

    channels.quick_pay("HBB").unbind(open_card_token(tools.cipher, payer.cards["HBB"]), payer.member_id)
    paid = checkout.pay(payer.cards["HBB"], 3456)
    assert paid.status is PaymentStatus.SUCCEEDED
    assert checkout.attempts(paid) == [("HBB", AttemptStatus.FAILED, "66"), ("JHB", AttemptStatus.SUCCEEDED, None)]


def test_without_a_card_at_another_bank_the_payment_fails_with_the_first_banks_error(
    binder: Binder, checkout: Checkout, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    card = binder.bind(member_id, ZHANG_WEI, "HBB")
    members.set_payment_password(uow_factory, tools, member_id, PAYMENT_PASSWORD)
    failed = checkout.pay(card, amount_ending(91))
    assert failed.status is PaymentStatus.FAILED
    assert checkout.attempts(failed) == [("HBB", AttemptStatus.FAILED, "91")]


def test_an_unknown_outcome_never_fails_over_and_the_requery_resolves_it(checkout: Checkout, payer: Payer) -> None:
    # 96: HBB moves the money and never answers; the adapter's timeout makes it UNKNOWN.
    processing = checkout.pay(payer.cards["HBB"], amount_ending(96))
    assert processing.status is PaymentStatus.PROCESSING
    assert checkout.attempts(processing) == [("HBB", AttemptStatus.UNKNOWN, None)]
    checkout.clock.advance(timedelta(seconds=61))
    assert requery_attempts(checkout.uow, checkout.clock, checkout.ids, checkout.channels,  # type: ignore[arg-type]
                            checkout.settings.gateway, checkout.clock.now()) == 1
    with checkout.uow() as uow:
        paid = uow.payments.get(processing.id)
    assert paid is not None
    assert paid.status is PaymentStatus.SUCCEEDED
    assert checkout.attempts(paid) == [("HBB", AttemptStatus.SUCCEEDED, None)]


def test_the_breaker_opens_on_a_failing_bank_and_a_successful_probe_closes_it(
    checkout: Checkout, payer: Payer, refusing_hbb: str
) -> None:
    hbb = routing.quick_pay_channel("HBB")
    # HBB alone refuses (a magic 91 would be refused by JHB as well and open both breakers).
    for _ in range(2):
        assert checkout.pay(payer.cards["HBB"], 2000).status is PaymentStatus.SUCCEEDED
    httpx.post(f"{refusing_hbb}/_sim/faults", json={"reset": True}, timeout=10).raise_for_status()
    states = {h.channel: h.state for h in routing.channel_health(checkout.uow)}
    assert states[hbb] is BreakerState.OPEN
    # While open, HBB is not even asked: the payment goes straight to the member's JHB card.
    rerouted = checkout.pay(payer.cards["HBB"], 4567)
    assert rerouted.status is PaymentStatus.SUCCEEDED
    assert [bank for bank, _, _ in checkout.attempts(rerouted)] == ["JHB"]
    checkout.clock.advance(timedelta(seconds=31))
    probed = checkout.pay(payer.cards["HBB"], 5678)
    assert checkout.attempts(probed) == [("HBB", AttemptStatus.SUCCEEDED, None)]
    closed = {h.channel: h for h in routing.channel_health(checkout.uow)}[hbb]
    assert (closed.state, closed.consecutive_failures) == (BreakerState.CLOSED, 0)


def test_with_every_bank_out_of_rotation_quick_pay_is_unavailable(
    binder: Binder, checkout: Checkout, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    card = binder.bind(member_id, ZHANG_WEI, "HBB")
    members.set_payment_password(uow_factory, tools, member_id, PAYMENT_PASSWORD)
    for _ in range(2):
        checkout.pay(card, amount_ending(91))
    with pytest.raises(QuickPayUnavailable):
        checkout.pay(card, 999)


