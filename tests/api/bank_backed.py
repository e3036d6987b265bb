"""A real platform server backed by the real bank world, for API tests that go through the banks.

The API tests of cards, quick pay and mandates share it: a uvicorn server on loopback per backend
(SQLite and PostgreSQL), the demo shop with a webhook endpoint, a signed client, and small helpers
that read a bank's SMS outbox and deliver the outbox's webhooks.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests
import uvicorn

from tests.api.rfc9421_client import MerchantCredentials, PlatformKey, SignedClient
from tests.conftest import BACKENDS, _DatabaseFactory
from tests.gateway import conftest as world
from tests.gateway.conftest import BANK_TIMEOUT_S, BankWorld
from tests.notifications.merchant_endpoint import MerchantEndpoint
from tianpay.adapters.webhooks import HttpxWebhookSender
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.entrypoints.api.app import create_app
from tianpay.entrypoints.worker import outbox_dispatch_job
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

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
