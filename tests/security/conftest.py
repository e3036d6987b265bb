"""Fixtures for the security suite: one platform server on SQLite, and merchants that sign.

The suite attacks the platform from outside, over loopback HTTP, exactly as a merchant, a payer's
browser or a bank would reach it. Tests that need both databases take the ``api_server`` fixtures
of ``tests/api`` (imported below); the fuzzing suite uses ``fuzz_server``, SQLite only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine, select

from tests.api.conftest import (
    ApiServer,
    _ThreadedServer,
    api_client,
    api_db_url,
    api_extra_routers,
    api_server,
    merchant_credentials,
    merchant_factory,
)
from tests.api.rfc9421_client import MerchantCredentials
from tests.conftest import _DatabaseFactory
from tianpay.adapters.db.tables import metadata
from tianpay.bootstrap import build_container
from tianpay.config import Settings
from tianpay.entrypoints.api.app import create_app
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

__all__ = [
    "api_client",
    "api_db_url",
    "api_extra_routers",
    "api_server",
    "merchant_credentials",
    "merchant_factory",
]


@pytest.fixture(scope="module")
def fuzz_server(database_factory: _DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The whole application on a loopback port, against a fresh migrated SQLite database."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz-platform")
    container = build_container(
        Settings(data_dir=data_dir, database_url=database_factory.sqlite(), public_base_url=None)
    )
    app = create_app(container)
    server = _ThreadedServer(app)
    server.start()
    try:
        yield ApiServer(f"http://127.0.0.1:{server.port}", container, app)
    finally:
        server.stop()
        container.close()


def new_ed25519_merchant(server: ApiServer, name: str = "Fuzzed shop") -> MerchantCredentials:
    """A merchant with an ed25519 key of our own (fast to make, one per generated case)."""
    container = server.container
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    private = ed25519.Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    created = create_merchant(container.uow, tools, NewMerchant(name, KeyRequest(public_key_pem=public_pem), None, 60))
    return MerchantCredentials(
        merchant_id=created.merchant_id,
        key_id=created.key.key_id,
        private_key_pem=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        webhook_secret=created.webhook_secret,
        algorithm="ed25519",
    )


def database_snapshot(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, as text, in a stable order: equal snapshots mean nothing changed."""
    snapshot: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            snapshot[table.name] = sorted(repr(tuple(row)) for row in connection.execute(select(table)))
    return snapshot


def changed_tables(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    return [name for name in before if before[name] != after.get(name)]
