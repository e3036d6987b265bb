"""Shared fixtures: one merchant key per algorithm, a running fake platform, and client factories."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sdk_fake_platform import PLATFORM_KEY_ID, FakePlatform, running
from sdk_support import MERCHANT_ID, ClientFactory, MerchantKey, Sleeps, make_keys

from tianpay_sdk import TianpayClient


@pytest.fixture(scope="session")
def merchant_keys() -> dict[str, MerchantKey]:
    return make_keys()


@pytest.fixture
def platform(merchant_keys: dict[str, MerchantKey]) -> Iterator[FakePlatform]:
    registered = {key.key_id: (key.algorithm, key.public_key) for key in merchant_keys.values()}
    yield from running(FakePlatform(registered))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(
    platform: FakePlatform, merchant_keys: dict[str, MerchantKey], sleeps: Sleeps
) -> Iterator[ClientFactory]:
    clients: list[TianpayClient] = []

    def make(algorithm_id: str = "ed25519", **overrides: Any) -> TianpayClient:
        key = merchant_keys[algorithm_id]
        key_id = overrides.pop("key_id", key.key_id)
        options: dict[str, Any] = {
            "algorithm": key.client_algorithm,
            "platform_public_key": platform.public_key,
            "platform_key_id": PLATFORM_KEY_ID,
            "sleep": sleeps,
            "timeout_s": 5,
            **overrides,
        }
        client = TianpayClient(platform.base_url, MERCHANT_ID, key_id, key.private_key, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
