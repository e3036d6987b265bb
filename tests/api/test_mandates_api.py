"""Direct debit end to end through the merchant API only: a real platform server, the real bank world,
requests signed by hand (RFC 9421), and a merchant webhook endpoint on loopback.

A merchant registers a mandate for 张伟's JHB card, the payer's code is read from JHB's SMS outbox
(as the payer would read their phone), two debits pass with no payer step, the mandate is revoked,
and a further debit is refused with the error envelope before JHB sees it. Runs on SQLite and
PostgreSQL (the ``platform`` fixture is parametrised by backend).
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from tests.api import bank_backed
from tests.api.bank_backed import JHB_CARD, ZHANG_WEI, Platform, deliver_webhooks, jhb_sms_code
from tests.api.rfc9421_client import SignedClient
from tests.gateway.conftest import JHB_RESERVE, BankWorld, wait_until
from tests.notifications.merchant_endpoint import MerchantEndpoint

pytestmark = pytest.mark.e2e

# The shared fixtures, bound here by name so pytest finds them for this module's tests.
bank_world, onboarded_dir = bank_backed.bank_world, bank_backed.onboarded_dir
platform, endpoint, shop = bank_backed.platform, bank_backed.endpoint, bank_backed.shop


def jhb_sms(bank_world: BankWorld, phone: str) -> list[dict[str, object]]:
    """The SMS messages JHB sent to ``phone``: a mandate application sends the payer a code."""
    messages: list[dict[str, object]] = httpx.get(
        bank_world.urls["JHB"] + "/_sim/sms", params={"phone": phone}, timeout=10
    ).json()
    return messages


def jhb_transfers(bank_world: BankWorld) -> int:
    return len(bank_world.state("JHB")["transfers"])


def test_a_merchant_registers_confirms_debits_twice_revokes_and_is_then_refused_before_the_bank(
    platform: Platform, shop: SignedClient, endpoint: MerchantEndpoint, bank_world: BankWorld
) -> None:
    member = shop.post("/v1/members", {"external_id": "subscriber-1", **ZHANG_WEI})
    assert member.status_code == 201, member.text
    valid_until = (date.today() + timedelta(days=365)).isoformat()
    applied = shop.post("/v1/mandates", {
        "member_id": member.json()["id"], "mandate_no": "ELEC-0001", "card_number": JHB_CARD, **ZHANG_WEI,
        "max_amount_per_debit": 20_000, "max_amount_per_month": 50_000, "valid_until": valid_until,
        "purpose": "utility:electricity",
    })
    assert applied.status_code == 201, applied.text
    mandate = applied.json()
    assert (mandate["bank"], mandate["status"], mandate["card_number_masked"]) == (
        "JHB", "applied", "622799*********0013")
    for secret in (JHB_CARD, ZHANG_WEI["id_number"]):
        assert secret not in applied.text

    code = jhb_sms_code(bank_world, ZHANG_WEI["phone"])
    confirmed = shop.post(f"/v1/mandates/{mandate['id']}/confirm", {"sms_code": code})
    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "active"), confirmed.text
    assert code not in confirmed.text

    card_before = bank_world.balance("JHB", JHB_CARD)
    reserve_before = bank_world.balance("JHB", JHB_RESERVE)
    first = shop.post(f"/v1/mandates/{mandate['id']}/debits",
                      {"out_trade_no": "elec-2025-01", "amount": 12_000, "subject": "电费 1月"})
    assert (first.status_code, first.json()["status"]) == (201, "succeeded"), first.text
    replay = shop.post(f"/v1/mandates/{mandate['id']}/debits",
                       {"out_trade_no": "elec-2025-01", "amount": 12_000, "subject": "电费 1月"})
    assert (replay.status_code, replay.json()["id"]) == (200, first.json()["id"])
    second = shop.post(f"/v1/mandates/{mandate['id']}/debits",
                       {"out_trade_no": "elec-2025-02", "amount": 8_800, "subject": "电费 2月"})
    assert (second.status_code, second.json()["status"]) == (201, "succeeded"), second.text
    assert bank_world.balance("JHB", JHB_CARD) == card_before - 20_800
    assert bank_world.balance("JHB", JHB_RESERVE) == reserve_before + 20_800

    revoked = shop.post(f"/v1/mandates/{mandate['id']}/revoke")
    assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked"), revoked.text
    transfers_before = jhb_transfers(bank_world)
    refused = shop.post(f"/v1/mandates/{mandate['id']}/debits",
                        {"out_trade_no": "elec-2025-03", "amount": 100, "subject": "电费 3月"})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "mandate_not_active", "id")
    assert error["request_id"]
    assert jhb_transfers(bank_world) == transfers_before
    assert shop.get(f"/v1/mandates/{mandate['id']}").json()["status"] == "revoked"

    deliver_webhooks(platform)
    wait_until(lambda: len(endpoint.received) >= 4, what="the mandate and payment webhooks")
    events = [Webhook(shop.credentials.webhook_secret).verify(hook.body, hook.headers) for hook in endpoint.received]
    kinds = sorted(event["type"] for event in events)
    assert kinds.count("payment.succeeded") == 2
    assert {"mandate.active", "mandate.revoked"} <= set(kinds)
    for event in events:
        for secret in (JHB_CARD, ZHANG_WEI["id_number"], code):
            assert secret not in json.dumps(event)


def test_a_debit_over_the_mandates_limit_is_refused_with_the_envelope_and_never_reaches_the_bank(
    platform: Platform, shop: SignedClient, bank_world: BankWorld
) -> None:
    member_id = shop.post("/v1/members", {"external_id": "subscriber-2", **ZHANG_WEI}).json()["id"]
    mandate = shop.post("/v1/mandates", {
        "member_id": member_id, "mandate_no": "WATER-0001", "card_number": JHB_CARD, **ZHANG_WEI,
        "max_amount_per_debit": 5_000, "max_amount_per_month": 5_000,
        "valid_until": (date.today() + timedelta(days=30)).isoformat(), "purpose": "utility:water",
    }).json()
    shop.post(f"/v1/mandates/{mandate['id']}/confirm", {"sms_code": jhb_sms_code(bank_world, ZHANG_WEI["phone"])})
    transfers_before = jhb_transfers(bank_world)
    refused = shop.post(f"/v1/mandates/{mandate['id']}/debits", {"out_trade_no": "water-1", "amount": 5_001})
    assert refused.status_code == 400, refused.text
    assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == ("mandate_limit_exceeded", "amount")
    assert jhb_transfers(bank_world) == transfers_before


@pytest.mark.parametrize("valid_until", [0, "0", 20271231, "20271231", "2027-W52-1", "2027-12-31T00:00:00Z"])
def test_a_valid_until_that_is_not_a_plain_date_is_refused_before_the_bank(
    shop: SignedClient, bank_world: BankWorld, valid_until: object
) -> None:
    member = shop.post("/v1/members", {"external_id": "subscriber-dates", **ZHANG_WEI})
    assert member.status_code in (200, 201), member.text
    sms_before = len(jhb_sms(bank_world, ZHANG_WEI["phone"]))
    refused = shop.post("/v1/mandates", {
        "member_id": member.json()["id"], "mandate_no": "DATE-0001", "card_number": JHB_CARD, **ZHANG_WEI,
        "max_amount_per_debit": 20_000, "max_amount_per_month": 50_000, "valid_until": valid_until,
        "purpose": "utility:water",
    })
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("parameter_invalid", "valid_until")
    assert len(jhb_sms(bank_world, ZHANG_WEI["phone"])) == sms_before
