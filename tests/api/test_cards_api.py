"""Quick pay end to end through the merchant API only: a real platform server the banks notify, the
real bank world, requests signed by hand (RFC 9421), and a merchant webhook endpoint on loopback.

Each test runs on SQLite and PostgreSQL. Bank SMS codes are read from JHB's outbox, as the payer
would read their phone and type the code into the merchant's app.
"""

from __future__ import annotations

import json

import pytest
from standardwebhooks import Webhook

from tests.api import bank_backed
from tests.api.bank_backed import JHB_CARD, ZHANG_WEI, Platform, deliver_webhooks, jhb_sms_code
from tests.api.rfc9421_client import SignedClient
from tests.gateway.conftest import BankWorld, wait_until
from tests.notifications.merchant_endpoint import MerchantEndpoint

pytestmark = pytest.mark.e2e

# The shared fixtures, bound here by name so pytest finds them for this module's tests.
bank_world, onboarded_dir = bank_backed.bank_world, bank_backed.onboarded_dir
platform, endpoint, shop = bank_backed.platform, bank_backed.endpoint, bank_backed.shop

PAYMENT_PASSWORD = "258036"


def test_a_merchant_backend_registers_binds_a_jhb_card_and_collects_a_quick_payment_with_the_password(
    platform: Platform, shop: SignedClient, endpoint: MerchantEndpoint, bank_world: BankWorld
) -> None:
    member = shop.post("/v1/members", {"external_id": "buyer-1", **ZHANG_WEI})
    assert member.status_code == 201, member.text
    member_id = member.json()["id"]

    applied = shop.post(f"/v1/members/{member_id}/cards", {"card_number": JHB_CARD, **ZHANG_WEI})
    assert applied.status_code == 201, applied.text
    card = applied.json()
    assert (card["bank"], card["status"], card["card_number_masked"]) == ("JHB", "applied", "622799*********0013")
    assert JHB_CARD not in applied.text

    bound = shop.post(f"/v1/card-bindings/{card['id']}/confirm",
                      {"sms_code": jhb_sms_code(bank_world, ZHANG_WEI["phone"])})
    assert bound.status_code == 200, bound.text
    assert (bound.json()["status"], bound.json()["needs_payment_password"]) == ("bound", True)
    assert shop.post(f"/v1/members/{member_id}/payment-password",
                     {"payment_password": PAYMENT_PASSWORD}).status_code == 200

    created = shop.post("/v1/payments", {"out_trade_no": "qp-0001", "amount": 8800, "currency": "CNY",
                                         "method": "quick_pay", "subject": "津门好物 茶叶礼盒"})
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    paid = shop.post(f"/v1/payments/{payment_id}/confirm",
                     {"card_id": card["id"], "payment_password": PAYMENT_PASSWORD})
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["amount"]) == ("succeeded", 8800)
    attempts = shop.get(f"/v1/payments/{payment_id}").json()["attempts"]
    assert [(a["bank"], a["status"]) for a in attempts] == [("JHB", "succeeded")]

    deliver_webhooks(platform)
    wait_until(lambda: len(endpoint.received) >= 1, what="the payment.succeeded webhook")
    webhook = endpoint.received[0]
    event = Webhook(shop.credentials.webhook_secret).verify(webhook.body, webhook.headers)
    assert (event["type"], event["data"]["id"], event["data"]["status"]) == ("payment.succeeded", payment_id,
                                                                             "succeeded")
    # JHB's own pay.notify reached the platform's notify endpoint and was acknowledged with 0000.
    wait_until(lambda: any(n["status"] == "delivered" and platform.base_url in n["url"]
                           for n in bank_world.state("JHB")["notifications"]), what="JHB's notification")
    for secret in (JHB_CARD, ZHANG_WEI["id_number"], PAYMENT_PASSWORD):
        assert secret not in json.dumps(event)


def test_a_wrong_password_is_refused_and_charges_nothing(
    platform: Platform, shop: SignedClient, bank_world: BankWorld
) -> None:
    member_id = shop.post("/v1/members", {"external_id": "buyer-2", **ZHANG_WEI}).json()["id"]
    card = shop.post(f"/v1/members/{member_id}/cards", {"card_number": JHB_CARD, **ZHANG_WEI}).json()
    if card.get("error", {}).get("code") == "card_already_bound":
        card = shop.get(f"/v1/members/{member_id}/cards").json()["data"][0]
    else:
        shop.post(f"/v1/card-bindings/{card['id']}/confirm", {"sms_code": jhb_sms_code(bank_world, ZHANG_WEI["phone"])})
    shop.post(f"/v1/members/{member_id}/payment-password", {"payment_password": PAYMENT_PASSWORD})
    payment_id = shop.post("/v1/payments", {"out_trade_no": "qp-0002", "amount": 500, "currency": "CNY",
                                            "method": "quick_pay", "subject": "茶"}).json()["id"]
    refused = shop.post(f"/v1/payments/{payment_id}/confirm", {"card_id": card["id"], "payment_password": "000000"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "payment_password_incorrect"
    assert "000000" not in refused.text
    assert shop.get(f"/v1/payments/{payment_id}").json()["attempts"] == []


def test_another_merchant_cannot_bind_or_unbind_for_a_member_it_did_not_register(
    platform: Platform, shop: SignedClient
) -> None:
    member_id = shop.post("/v1/members", {"external_id": "buyer-3", **ZHANG_WEI}).json()["id"]
    cards = shop.get(f"/v1/members/{member_id}/cards")
    assert cards.status_code == 200
    stranger = shop.post("/v1/members/mbr_NOTMINE/cards", {"card_number": JHB_CARD, **ZHANG_WEI})
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "resource_missing")
    for card in cards.json()["data"]:
        gone = shop.request("DELETE", f"/v1/members/{member_id}/cards/{card['id']}")
        assert (gone.status_code, gone.json()["status"]) == (200, "unbound")
