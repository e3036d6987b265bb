"""Direct debit end to end through the merchant API only: a real platform server, the real bank world,
requests signed by hand (RFC 9421), and a merchant webhook endpoint on loopback.

A merchant registers a mandate for 张伟's JHB card, the payer's code is read from JHB's SMS outbox
(as the payer would read their phone), two debits pass with no payer step, the mandate is revoked,
and a further debit is refused with the error envelope before JHB sees it. Runs on SQLite and
PostgreSQL (the ``platform`` fixture is parametrised by backend).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import requests
import uvicorn
from standardwebhooks import Webhook

from tests.api.rfc9421_client import MerchantCredentials, PlatformKey, SignedClient
from tests.conftest import BACKENDS, _DatabaseFactory
from tests.gateway import conftest as world
from tests.gateway.conftest import BANK_TIMEOUT_S, JHB_RESERVE, BankWorld, wait_until
from tests.notifications.merchant_endpoint import MerchantEndpoint
from tianpay.adapters.webhooks import HttpxWebhookSender
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.entrypoints.api.app import create_app
from tianpay.entrypoints.worker import outbox_dispatch_job
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

pytestmark = pytest.mark.e2e

bank_world, onboarded_dir = world.bank_world, world.onboarded_dir

ZHANG_WEI = {"name": "张伟", "id_number": "110105198503120012", "phone": "13800138001"}
JHB_CARD = "6227990000000000013"


@dataclass
class Platform:
    base_url: str
    container: Container


@pytest.fixture(scope="module", params=BACKENDS)
def platform(request: pytest.FixtureRequest, database_factory: _DatabaseFactory, onboarded_dir: Path
             ) -> Iterator[Platform]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(data_dir=onboarded_dir, database_url=database_url, public_base_url=base_url,
                        bank_timeout_s=BANK_TIMEOUT_S, argon2_time_cost=1, argon2_memory_cost_kib=64)
    container = build_container(settings)
    server = uvicorn.Server(uvicorn.Config(create_app(container), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield Platform(base_url, container)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        container.close()


@pytest.fixture
def endpoint() -> Iterator[MerchantEndpoint]:
    receiver = MerchantEndpoint()
    yield receiver
    receiver.close()


@pytest.fixture
def shop(platform: Platform, endpoint: MerchantEndpoint) -> Iterator[SignedClient]:
    container = platform.container
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    created = create_merchant(container.uow, tools, NewMerchant("津门好物商城", KeyRequest(), endpoint.url, 60))
    assert created.key.private_key_path is not None
    credentials = MerchantCredentials(
        merchant_id=created.merchant_id, key_id=created.key.key_id,
        private_key_pem=created.key.private_key_path.read_bytes(), webhook_secret=created.webhook_secret,
        algorithm=created.key.algorithm.value, hmac_secret=created.key.hmac_secret,
    )
    key = container.platform_key
    client = SignedClient(platform.base_url, credentials, PlatformKey(key.key_id, key.public_key_pem.encode()),
                          requests.Session())
    yield client
    client.session.close()


def jhb_sms_code(bank_world: BankWorld, phone: str) -> str:
    return str(httpx.get(bank_world.urls["JHB"] + "/_sim/sms", params={"phone": phone}, timeout=10).json()[0]["code"])


def jhb_transfers(bank_world: BankWorld) -> int:
    return len(bank_world.state("JHB")["transfers"])


def deliver_webhooks(platform: Platform) -> None:
    sender = HttpxWebhookSender(timeout_s=5.0)
    try:
        outbox_dispatch_job(platform.container, sender, worker_id="test").run_once(platform.container.clock.now())
    finally:
        sender.close()


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
