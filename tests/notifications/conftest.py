"""Fixtures for notification tests: a live merchant endpoint and merchants that point at it."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert

from tianpay.adapters.db.tables import merchants

from .merchant_endpoint import MerchantEndpoint


@pytest.fixture
def merchant_endpoint() -> Iterator[MerchantEndpoint]:
    endpoint = MerchantEndpoint()
    yield endpoint
    endpoint.close()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


MakeMerchant = Callable[..., tuple[str, str]]


@pytest.fixture
def make_merchant(engine: Engine) -> MakeMerchant:
    """Inserts a merchant row; returns (merchant_id, webhook_secret)."""

    def make(webhook_url: str | None, merchant_id: str | None = None) -> tuple[str, str]:
        merchant_id = merchant_id or f"mch_{secrets.token_hex(6)}"
        secret = new_webhook_secret()
        with engine.begin() as connection:
            connection.execute(
                insert(merchants).values(
                    id=merchant_id,
                    name="Test shop",
                    status="active",
                    webhook_url=webhook_url,
                    webhook_secret=secret,
                    created_at=datetime(2026, 1, 1, tzinfo=UTC),
                )
            )
        return merchant_id, secret

    return make
