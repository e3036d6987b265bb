"""JHB quick pay against the real simulator: bind.apply texts a code, bind.confirm gives no_agree, pay charges.

The bank world runs in a subprocess (tests/gateway/conftest.py) and the adapter meets it over HTTP
only. One exchange is also checked with gmalg, an SM2 implementation independent of tongsuopy: our
request's signature and JHB's answer's signature both verify under it.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import gmalg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.gateway import conftest as world
from tests.gateway.conftest import BankWorld
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.jhb import signing
from tianpay.channels.jhb.onboarding import config_from_onboarding
from tianpay.channels.jhb.quickpay import JhbQuickPayChannel, build_jhb_quick_pay_channel
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

ZHANG_WEI = CardHolder("6227990000000000013", "张伟", "110105198503120012", "13800138001")
LI_NA = CardHolder("6227990000000000021", "李娜", "120110197801010039", "13800138003")
_ids = UlidGenerator()
_amounts = itertools.count(2000, 100)


def sms_code(world: BankWorld, phone: str) -> str:
    messages = httpx.get(world.urls["JHB"] + "/_sim/sms", params={"phone": phone}, timeout=10).json()
    return str(messages[0]["code"])


def request_for(holder: CardHolder) -> BindingRequest:
    return BindingRequest(_ids.new("cbd"), _ids.new("mbr"), holder, datetime.now(UTC))


def confirmation(request: BindingRequest, token: str | None, code: str) -> BindingConfirmation:
    return BindingConfirmation(
        request.binding_id, request.member_ref, request.holder, request.created_at, code, bank_token=token
    )


def agreement(jhb: JhbQuickPayChannel, world: BankWorld, holder: CardHolder = ZHANG_WEI) -> str:
    request = request_for(holder)
    applied = jhb.apply_binding(request)
    assert applied.outcome is Outcome.SUCCEEDED, applied
    confirmed = jhb.confirm_binding(confirmation(request, applied.bank_token, sms_code(world, holder.phone)))
    assert confirmed.outcome is Outcome.SUCCEEDED, confirmed
    assert confirmed.card_token
    return confirmed.card_token


def order(token: str, amount_minor: int) -> QuickPayOrder:
    return QuickPayOrder(
        _ids.new("att"), "mbr_x", Money.cny(amount_minor), "茶叶", datetime.now(UTC), "http://127.0.0.1:9/n", token
    )


@pytest.fixture
def jhb(channels: ChannelRegistry) -> JhbQuickPayChannel:
    # The raw adapter, not the accessor's metrics wrapper: these tests call JHB-only methods on it.
    channel = channels.quick["JHB"]
    assert isinstance(channel, JhbQuickPayChannel)
    return channel


def test_zhang_weis_card_is_bound_and_pays_by_agreement(jhb: JhbQuickPayChannel, bank_world: BankWorld) -> None:
    no_agree = agreement(jhb, bank_world)
    assert no_agree.startswith("JHA")
    paying = order(no_agree, next(_amounts))
    result = jhb.pay(paying)
    assert (result.outcome, result.amount) == (Outcome.SUCCEEDED, paying.amount)
    queried = jhb.query_payment(paying.attempt_id, paying.created_at)
    assert (queried.outcome, queried.bank_reference) == (Outcome.SUCCEEDED, result.bank_reference)


def test_each_binding_refusal_has_its_own_code(jhb: JhbQuickPayChannel, bank_world: BankWorld) -> None:
    wrong_name = CardHolder(ZHANG_WEI.card_number, "王芳", ZHANG_WEI.id_number, ZHANG_WEI.phone)
    not_jhb = CardHolder("6217990000000000014", ZHANG_WEI.name, ZHANG_WEI.id_number, ZHANG_WEI.phone)
    assert jhb.apply_binding(request_for(wrong_name)).failure is BindingFailure.CARD_ELEMENTS_MISMATCH
    assert jhb.apply_binding(request_for(not_jhb)).failure is BindingFailure.CARD_INVALID
    request = request_for(LI_NA)
    applied = jhb.apply_binding(request)
    right = sms_code(bank_world, LI_NA.phone)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    failures = [jhb.confirm_binding(confirmation(request, applied.bank_token, wrong)).failure for _ in range(5)]
    assert failures == [BindingFailure.SMS_CODE_INVALID] * 4 + [BindingFailure.SMS_CODE_ATTEMPTS_EXCEEDED]


def test_magic_91_is_not_submitted_and_an_unbound_agreement_pays_nothing(
    jhb: JhbQuickPayChannel, bank_world: BankWorld
) -> None:
    no_agree = agreement(jhb, bank_world)
    assert jhb.pay(order(no_agree, 30091)).outcome is Outcome.NOT_SUBMITTED
    assert jhb.unbind(no_agree, "mbr_x").outcome is Outcome.SUCCEEDED
    refused = jhb.pay(order(no_agree, next(_amounts)))
    assert (refused.outcome, refused.bank_code) == (Outcome.FAILED, "1068")


@pytest.fixture
def recorded(onboarded_dir: Path) -> Iterator[tuple[JhbQuickPayChannel, list[httpx.Response]]]:
    responses: list[httpx.Response] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        responses.append(response)

    with httpx.Client(timeout=5.0, event_hooks={"response": [keep]}) as http:
        yield build_jhb_quick_pay_channel(config_from_onboarding(onboarded_dir), http_client=http), responses


def _verifies_with_gmalg(envelope: dict[str, object], public_point: bytes) -> bool:
    head = envelope["head"]
    assert isinstance(head, dict)
    message = signing.canonical_string(head, str(envelope["iv"]), str(envelope["body"]))
    r, s = decode_dss_signature(base64.b64decode(str(envelope["sign"])))
    verifier = gmalg.SM2(pk=public_point, uid=signing.SM2_USER_ID)
    return bool(verifier.verify(message, r.to_bytes(32, "big"), s.to_bytes(32, "big")))


def test_a_bind_apply_exchange_verifies_under_gmalg_both_ways(
    recorded: tuple[JhbQuickPayChannel, list[httpx.Response]], onboarded_dir: Path
) -> None:
    channel, responses = recorded
    assert channel.apply_binding(request_for(ZHANG_WEI)).outcome is Outcome.SUCCEEDED
    (response,) = responses
    config = config_from_onboarding(onboarded_dir)
    ours = json.loads(response.request.content)
    theirs = json.loads(response.content)
    assert _verifies_with_gmalg(ours, config.platform_private_key.public_key.to_point())
    assert _verifies_with_gmalg(theirs, config.jhb_public_key.to_point())
    # The four elements travel only inside the SM4-sealed body.
    assert ZHANG_WEI.card_number not in response.request.content.decode()
