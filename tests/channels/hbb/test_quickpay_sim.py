"""HBB quick pay against the real simulator: 77 texts a code, 79 binds with it, a token pays and unbinds.

The bank world runs in a subprocess (tests/gateway/conftest.py); the adapter meets it only over HTTP,
and the SMS code is read from HBB's own outbox (``/_sim/sms``), as a payer would read their phone.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import httpx
import pytest

from tests.gateway import conftest as world
from tests.gateway.conftest import BankWorld
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.money import Money
from tianpay.ports.channels import (
    BindingConfirmation,
    BindingFailure,
    BindingRequest,
    CardHolder,
    Outcome,
    QuickPayOrder,
)

pytestmark = pytest.mark.e2e

# The bank world and the onboarded channels of the gateway suite, shared as fixtures.
bank_world, onboarded_dir, channels = world.bank_world, world.onboarded_dir, world.channels

ZHANG_WEI = CardHolder("6217990000000000014", "张伟", "110105198503120012", "13800138001")
LIU_YANG_FROZEN = CardHolder("6217990000000000030", "刘洋", "310104199511110047", "13800138004")
_ids = UlidGenerator()
_amounts = itertools.count(1000, 100)


def sms_code(world: BankWorld, phone: str) -> str:
    messages = httpx.get(world.urls["HBB"] + "/_sim/sms", params={"phone": phone}, timeout=10).json()
    return str(messages[0]["code"])


def apply(registry: ChannelRegistry, holder: CardHolder) -> BindingRequest:
    request = BindingRequest(_ids.new("cbd"), _ids.new("mbr"), holder, datetime.now(UTC))
    return request


def confirmation(request: BindingRequest, code: str) -> BindingConfirmation:
    return BindingConfirmation(request.binding_id, request.member_ref, request.holder, request.created_at, code)


def bound_token(registry: ChannelRegistry, world: BankWorld) -> str:
    hbb = registry.quick_pay("HBB")
    request = apply(registry, ZHANG_WEI)
    assert hbb.apply_binding(request).outcome is Outcome.SUCCEEDED
    confirmed = hbb.confirm_binding(confirmation(request, sms_code(world, ZHANG_WEI.phone)))
    assert confirmed.outcome is Outcome.SUCCEEDED
    assert confirmed.card_token
    return confirmed.card_token


def test_zhang_weis_card_is_bound_with_the_code_hbb_texted(channels: ChannelRegistry, bank_world: BankWorld) -> None:
    hbb = channels.quick_pay("HBB")
    request = apply(channels, ZHANG_WEI)
    applied = hbb.apply_binding(request)
    assert applied.outcome is Outcome.SUCCEEDED, applied
    confirmed = hbb.confirm_binding(confirmation(request, sms_code(bank_world, ZHANG_WEI.phone)))
    assert confirmed.outcome is Outcome.SUCCEEDED, confirmed
    assert confirmed.card_token is not None
    assert confirmed.card_token.startswith("HT")
    assert confirmed.card_token not in repr(confirmed)


def test_a_wrong_phone_is_an_elements_mismatch(channels: ChannelRegistry) -> None:
    holder = CardHolder(ZHANG_WEI.card_number, ZHANG_WEI.name, ZHANG_WEI.id_number, "13900139000")
    applied = channels.quick_pay("HBB").apply_binding(apply(channels, holder))
    assert (applied.outcome, applied.failure, applied.bank_code) == (
        Outcome.FAILED, BindingFailure.CARD_ELEMENTS_MISMATCH, "64"
    )


def test_a_frozen_card_cannot_be_bound(channels: ChannelRegistry) -> None:
    applied = channels.quick_pay("HBB").apply_binding(apply(channels, LIU_YANG_FROZEN))
    assert (applied.outcome, applied.failure) == (Outcome.FAILED, BindingFailure.CARD_FROZEN)


def test_a_card_of_another_bank_is_invalid_at_hbb(channels: ChannelRegistry) -> None:
    holder = CardHolder("6227990000000000013", ZHANG_WEI.name, ZHANG_WEI.id_number, ZHANG_WEI.phone)
    applied = channels.quick_pay("HBB").apply_binding(apply(channels, holder))
    assert (applied.outcome, applied.failure) == (Outcome.FAILED, BindingFailure.CARD_INVALID)


def test_a_wrong_code_then_the_fifth_wrong_code_exhausts_the_tries(
    channels: ChannelRegistry, bank_world: BankWorld
) -> None:
    hbb = channels.quick_pay("HBB")
    request = apply(channels, ZHANG_WEI)
    assert hbb.apply_binding(request).outcome is Outcome.SUCCEEDED
    right = sms_code(bank_world, ZHANG_WEI.phone)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    failures = [hbb.confirm_binding(confirmation(request, wrong)).failure for _ in range(5)]
    assert failures == [BindingFailure.SMS_CODE_INVALID] * 4 + [BindingFailure.SMS_CODE_ATTEMPTS_EXCEEDED]
    assert hbb.confirm_binding(confirmation(request, right)).failure is BindingFailure.SMS_CODE_ATTEMPTS_EXCEEDED


def test_a_token_pays_synchronously_and_queries_as_paid(channels: ChannelRegistry, bank_world: BankWorld) -> None:
    token = bound_token(channels, bank_world)
    hbb = channels.quick_pay("HBB")
    attempt_id = _ids.new("att")
    created_at = datetime.now(UTC)
    amount = Money.cny(next(_amounts))
    order = QuickPayOrder(attempt_id, "mbr_x", amount, "茶叶", created_at, "http://127.0.0.1:9/notify", token)
    result = hbb.pay(order)
    assert (result.outcome, result.amount, result.bank_code) == (Outcome.SUCCEEDED, amount, "00")
    assert result.bank_reference is not None
    queried = hbb.query_payment(attempt_id, created_at)
    assert (queried.outcome, queried.bank_reference) == (Outcome.SUCCEEDED, result.bank_reference)


def test_magic_91_is_refused_before_processing(channels: ChannelRegistry, bank_world: BankWorld) -> None:
    token = bound_token(channels, bank_world)
    order = QuickPayOrder(
        _ids.new("att"), "mbr_x", Money.cny(12391), "茶叶", datetime.now(UTC), "http://127.0.0.1:9/notify", token
    )
    assert channels.quick_pay("HBB").pay(order).outcome is Outcome.NOT_SUBMITTED


def test_an_unbound_token_pays_nothing(channels: ChannelRegistry, bank_world: BankWorld) -> None:
    token = bound_token(channels, bank_world)
    hbb = channels.quick_pay("HBB")
    assert hbb.unbind(token, "mbr_x").outcome is Outcome.SUCCEEDED
    assert hbb.unbind(token, "mbr_x").outcome is Outcome.SUCCEEDED
    order = QuickPayOrder(
        _ids.new("att"), "mbr_x", Money.cny(500), "茶叶", datetime.now(UTC), "http://127.0.0.1:9/notify", token
    )
    result = hbb.pay(order)
    assert (result.outcome, result.bank_code) == (Outcome.FAILED, "66")
