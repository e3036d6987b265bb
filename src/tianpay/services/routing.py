"""The quick-pay router and the channels' circuit breakers.

``plan`` orders the channels a payment may use: the chosen card's bank first, then the member's other
bound cards by cost, each within its channel's amount limits. ``admit`` asks a channel's breaker
(stored in ``channel_health``, shared by every process) whether a call may go now, and ``observe``
feeds it each result. Failover itself is the caller's: only after FAILED or NOT_SUBMITTED.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import structlog

from tianpay.domain.card_binding import CardBinding
from tianpay.domain.channel_health import BreakerPolicy, BreakerState, ChannelHealth, Signal
from tianpay.domain.console import BankSwitchedOff
from tianpay.domain.money import Money
from tianpay.ports.channels import ChannelResult, Outcome, QuickPayRoute
from tianpay.ports.clock import Clock
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = structlog.stdlib.get_logger(__name__)

# A compare-and-set lost to another process is retried on the fresh row this many times.
_CAS_TRIES = 5


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    # Bank codes about the payer or the card, not the bank (registry.PAYER_DECLINE_CODES).
    payer_decline_codes: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One channel the router may try, with the member's card at that bank."""

    route: QuickPayRoute
    binding: CardBinding

    @property
    def bank(self) -> str:
        return self.route.bank

    @property
    def channel(self) -> str:
        return quick_pay_channel(self.route.bank)


def quick_pay_channel(bank: str) -> str:
    """The channel's name in attempts and in ``channel_health`` (``hbb.quick_pay``)."""
    return f"{bank.lower()}.quick_pay"


def plan(
    routes: Sequence[QuickPayRoute], chosen: CardBinding, cards: Sequence[CardBinding], amount: Money
) -> list[Candidate]:
    """The channels to try in order: the chosen card's bank, then the cheapest other bank the member
    holds a bound card at. A channel whose limits exclude the amount is left out."""
    by_bank = {route.bank: route for route in routes if route.accepts(amount)}
    ordered: list[Candidate] = []
    if chosen.bank in by_bank:
        ordered.append(Candidate(by_bank[chosen.bank], chosen))
    others: dict[str, Candidate] = {}
    for card in cards:
        if card.bank != chosen.bank and card.bank in by_bank and card.bank not in others:
            others[card.bank] = Candidate(by_bank[card.bank], card)
    ordered.extend(sorted(others.values(), key=lambda candidate: candidate.route.cost_minor(amount)))
    return ordered


def signal_of(result: ChannelResult, bank: str, settings: RoutingSettings) -> Signal:
    """What a result says about the bank's health (docs/routing.md "What counts")."""
    outcome = result.outcome
    if outcome in (Outcome.SUCCEEDED, Outcome.PENDING):
        return Signal.HEALTHY
    if outcome is Outcome.FAILED and result.bank_code in settings.payer_decline_codes.get(bank, frozenset()):
        return Signal.NEUTRAL
    # FAILED for the bank's own reasons, NOT_SUBMITTED, and UNKNOWN (a timeout, no trustworthy answer).
    return Signal.UNHEALTHY


def admit(uow_factory: UnitOfWorkFactory, clock: Clock, channel: str, policy: BreakerPolicy) -> bool:
    """Whether a call may go to ``channel`` now; an open breaker past its cool-down lets one probe out."""
    for _ in range(_CAS_TRIES):
        with uow_factory() as uow:
            now = clock.now()
            stored = uow.channel_health.get(channel)
            health = stored or ChannelHealth.fresh(channel, now)
            if not health.admits(policy, now):
                return False
            if health.state is BreakerState.CLOSED:
                return True
            probing = health.admitted(policy, now)
            if uow.channel_health.save(probing, expected_version=None if stored is None else stored.version):
                uow.commit()
                log.info("routing.probe", channel=channel)
                return True
    return False


def observe(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    channel: str,
    signal: Signal,
    policy: BreakerPolicy,
    *,
    failure: str = "",
) -> ChannelHealth | None:
    """Feeds one result to the channel's breaker; returns the breaker as stored (None if it did not change)."""
    if signal is Signal.NEUTRAL:
        return None
    for _ in range(_CAS_TRIES):
        with uow_factory() as uow:
            now = clock.now()
            stored = uow.channel_health.get(channel)
            health = stored or ChannelHealth.fresh(channel, now)
            updated = health.recorded(signal, policy, now, failure=failure)
            if updated == health and stored is not None:
                return None
            if uow.channel_health.save(updated, expected_version=None if stored is None else stored.version):
                uow.commit()
                if updated.state is not health.state:
                    log.warning("routing.breaker", channel=channel, state=updated.state.value, failure=failure)
                return updated
    log.error("routing.breaker_write_lost", channel=channel)
    return None


def channel_health(uow_factory: UnitOfWorkFactory) -> list[ChannelHealth]:
    """Every channel's breaker, for the console."""
    with uow_factory() as uow:
        return list(uow.channel_health.all())


# ---- bank switches and costs set in the operator console (docs/console.md "Channels") -----------------


def disabled_banks(uow_factory: UnitOfWorkFactory) -> frozenset[str]:
    """Banks an operator switched off: no new payment is routed to them, by any method, and no new
    payout goes to or through them (``domain.payout.sending_bank``)."""
    with uow_factory() as uow:
        return switched_off_in(uow)


def switched_off_in(uow: UnitOfWork) -> frozenset[str]:
    """``disabled_banks`` read inside the caller's unit of work (a settlement's payout is created in one)."""
    return frozenset(setting.bank for setting in uow.channel_settings.all() if not setting.is_enabled)


@dataclass(frozen=True, slots=True)
class CardOffer:
    """A bound card as a payer's page lists it; ``unavailable`` is the error code of the reason it cannot
    be used now (``bank_switched_off``), or None when it can."""

    card: CardBinding
    unavailable: str | None = None

    @property
    def is_available(self) -> bool:
        return self.unavailable is None


def card_offers(uow_factory: UnitOfWorkFactory, cards: Sequence[CardBinding]) -> list[CardOffer]:
    """The member's bound ``cards`` for a payment by quick pay (the cashier's quick pay, the wallet's quick
    top-up). A card at a bank an operator switched off stays in the list, marked unavailable, so the payer
    sees why it cannot be chosen rather than missing it; ``refuse_switched_off_card`` refuses it if chosen."""
    switched_off = disabled_banks(uow_factory)
    return [CardOffer(card, BankSwitchedOff.code if card.bank in switched_off else None) for card in cards]


def refuse_switched_off_card(
    uow_factory: UnitOfWorkFactory, card: CardBinding, refusal: type[BankSwitchedOff] = BankSwitchedOff
) -> None:
    """Raises ``refusal`` (param ``card_id``) when the payer chose a card whose bank an operator switched off.

    Checked before anything is stored or sent: ``plan`` would leave the card's bank out and charge
    another of the member's cards in its place, one the payer did not choose (a page older than the
    switch, or a forged one, may still name the card).
    """
    if card.bank in disabled_banks(uow_factory):
        raise refusal(f"bank {card.bank} is not taking payments now; choose another card", param="card_id")


def configured_routes(uow_factory: UnitOfWorkFactory, routes: Sequence[QuickPayRoute]) -> list[QuickPayRoute]:
    """The quick-pay routes as operators set them: switched-off banks left out, costs overridden."""
    with uow_factory() as uow:
        settings = {setting.bank: setting for setting in uow.channel_settings.all()}
    configured: list[QuickPayRoute] = []
    for route in routes:
        setting = settings.get(route.bank)
        if setting is not None and not setting.is_enabled:
            continue
        if setting is not None and setting.cost_bps is not None:
            route = replace(route, cost_bps=setting.cost_bps)
        configured.append(route)
    return configured
