"""Members and wallet payments over the signed merchant API, on both databases.

``POST /v1/members`` registers a payer (one person, one member across merchants, masked answers);
``POST /v1/payments/{id}/confirm`` pays a wallet payment with the payment password, and concurrent
confirmations never overdraw the wallet.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
import requests
from stdnum.cn import ric

from tests.api.conftest import ApiServer, MerchantCredentials, SignedClient
from tests.members.conftest import ID_LI, ID_ZHANG, PHONE_LI, PHONE_ZHANG, cheap_hasher
from tests.payments.conftest import assert_ledger_sound
from tianpay.domain.money import Money
from tianpay.services import members, payments, wallet

PASSWORD = "135790"


def id_number(serial: int) -> str:
    """A valid resident ID number (Beijing Chaoyang, born 1990-03-07) with its own sequence number."""
    body = f"11010519900307{serial:03d}"
    return body + ric.calc_check_digit(body + "0")


@pytest.fixture(scope="module", autouse=True)
def cheap_password_hashing(api_server: ApiServer) -> None:
    # Many concurrent argon2id checks at the production cost (64 MiB each) would only test the
    # machine's memory; the cost profile is configuration (Settings.argon2_*), not behaviour.
    container = api_server.container
    container.__dict__["member_tools"] = replace(container.member_tools, hasher=cheap_hasher())


def registration(external_id: str = "user-1", **overrides: str) -> dict[str, str]:
    body = {"external_id": external_id, "name": "张伟", "id_number": ID_ZHANG, "phone": PHONE_ZHANG}
    return body | overrides


def test_a_merchant_registers_a_payer_and_sees_masked_data_only(api_client: SignedClient) -> None:
    created = api_client.post("/v1/members", json=registration())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("mbr_")
    assert body["external_ids"] == ["user-1"]
    assert body["id_number"] == "1****************X"
    assert body["phone"] == "138****8001"
    assert ID_ZHANG not in created.text
    assert PHONE_ZHANG not in created.text
    again = api_client.post("/v1/members", json=registration())
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == body["id"]
    fetched = api_client.get(f"/v1/members/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body


def test_two_merchants_registering_one_person_get_one_member_each_through_its_own_id(
    api_server: ApiServer, api_client: SignedClient, merchant_factory: Any
) -> None:
    first = api_client.post("/v1/members", json=registration(name="李娜", id_number=ID_LI, phone=PHONE_LI)).json()
    other = SignedClient(api_server.base_url, merchant_factory("ed25519"), api_server.platform_key, requests.Session())
    assert other.get(f"/v1/members/{first['id']}").status_code == 404
    second = other.post("/v1/members", json=registration("li-na", name="李娜", id_number=ID_LI, phone=PHONE_LI))
    assert second.status_code == 201
    assert second.json()["id"] == first["id"]
    assert second.json()["external_ids"] == ["li-na"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("id_number", "110105194912310021", "id_number_invalid"), ("phone", "12345678901", "phone_invalid"),
     ("name", "张", "name_invalid"), ("external_id", "bad id!", "external_id_invalid")],
)
def test_invalid_registrations_are_400_without_the_value(
    api_client: SignedClient, field: str, value: str, code: str
) -> None:
    refused = api_client.post("/v1/members", json=registration("v-1") | {field: value})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == code
    assert refused.json()["error"]["param"] == field
    assert value not in refused.text


def _payer_with_wallet(api_server: ApiServer, client: SignedClient, balance_minor: int, external_id: str) -> str:
    container = api_server.container
    serial = sum(map(ord, external_id)) % 1000
    body = registration(external_id, name="王芳", id_number=id_number(serial), phone=f"1390013{serial:04d}")
    member_id: str = client.post("/v1/members", json=body).json()["id"]
    if members.member_needs_payment_password(container.uow, member_id):
        members.set_payment_password(container.uow, container.member_tools, member_id, PASSWORD)
    if balance_minor:
        started = wallet.start_top_up(container.uow, container.member_tools, member_id, Money.cny(balance_minor),
                                      return_url="https://pay.example/w", bank="HBB")
        attempt = payments.start_attempt(container.uow, container.clock, container.ids, started.payment.id,
                                         channel="hbb.online_banking", bank="HBB")
        payments.record_attempt_succeeded(container.uow, container.clock, started.payment.id, attempt.id,
                                          bank_reference=f"r-{attempt.id}", amount=Money.cny(balance_minor))
    return member_id


def _wallet_order(client: SignedClient, amount_minor: int, out_trade_no: str) -> str:
    created = client.post("/v1/payments", json={
        "out_trade_no": out_trade_no, "amount": amount_minor, "currency": "CNY", "method": "wallet", "subject": "咖啡",
    })
    assert created.status_code == 201, created.text
    payment_id: str = created.json()["id"]
    return payment_id


def test_a_wallet_payment_confirmed_by_the_merchant_backend(
    api_server: ApiServer, api_client: SignedClient, merchant_credentials: MerchantCredentials
) -> None:
    member_id = _payer_with_wallet(api_server, api_client, 20_000, "wallet-1")
    payment_id = _wallet_order(api_client, 15_000, "w-ok")
    wrong = api_client.post(f"/v1/payments/{payment_id}/confirm",
                            json={"member_id": member_id, "payment_password": "246801"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "payment_password_incorrect"
    assert "246801" not in wrong.text
    paid = api_client.post(f"/v1/payments/{payment_id}/confirm",
                           json={"member_id": member_id, "payment_password": PASSWORD})
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "succeeded"
    short = _wallet_order(api_client, 15_000, "w-short")
    refused = api_client.post(
        f"/v1/payments/{short}/confirm", json={"member_id": member_id, "payment_password": PASSWORD}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "insufficient_balance"
    assert api_client.get(f"/v1/payments/{short}").json()["status"] == "created"
    assert wallet.wallet_balance(api_server.container.uow, member_id) == Money.cny(5_000)


def test_concurrent_confirmations_over_http_never_overdraw(
    api_server: ApiServer, api_client: SignedClient
) -> None:
    member_id = _payer_with_wallet(api_server, api_client, 10 * 500, "wallet-concurrent")
    orders = [_wallet_order(api_client, 500, f"wc-{i}") for i in range(40)]

    def confirm(payment_id: str) -> str:
        client = SignedClient(api_server.base_url, api_client.credentials, api_server.platform_key, requests.Session())
        response = client.post(f"/v1/payments/{payment_id}/confirm",
                               json={"member_id": member_id, "payment_password": PASSWORD})
        client.session.close()
        return "succeeded" if response.status_code == 200 else response.json()["error"]["code"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(confirm, orders))
    assert outcomes.count("succeeded") == 10
    assert outcomes.count("insufficient_balance") == 30
    assert wallet.wallet_balance(api_server.container.uow, member_id) == Money.zero()
    assert_ledger_sound(api_server.container.uow)
