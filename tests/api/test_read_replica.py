"""Queries read from the read replica when one is configured (TIANPAY_READ_DATABASE_URL).

The replica is played by the same database under a second URL setting, so the test can tell, by
the statements each engine ran, that lists, exports and statistics read through the read engine
and never through the primary; and that the read engine refuses to write.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError

from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.entrypoints.api.app import create_app
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

from .conftest import _ThreadedServer
from .rfc9421_client import MerchantCredentials, PlatformKey, SignedClient


class Statements:
    """Every SQL statement an engine runs, as text."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    def reading(self, table: str) -> list[str]:
        return [s for s in self.seen if f"FROM {table}" in s and s.lstrip().upper().startswith("SELECT")]


@pytest.fixture
def replica_platform(db_url: str, tmp_path: Path) -> Iterator[tuple[Container, SignedClient]]:
    settings = Settings(data_dir=tmp_path, database_url=db_url, read_database_url=db_url)
    container = build_container(settings)
    server = _ThreadedServer(create_app(container))
    server.start()
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    created = create_merchant(container.uow, tools, NewMerchant("Replica shop", KeyRequest(), None, 60))
    assert created.key.private_key_path is not None
    credentials = MerchantCredentials(created.merchant_id, created.key.key_id,
                                      created.key.private_key_path.read_bytes(), created.webhook_secret)
    key = container.platform_key
    client = SignedClient(f"http://127.0.0.1:{server.port}", credentials,
                          PlatformKey(key.key_id, key.public_key_pem.encode()), requests.Session())
    try:
        yield container, client
    finally:
        client.session.close()
        server.stop()
        container.close()


def test_lists_exports_and_statistics_read_through_the_read_engine(
    replica_platform: tuple[Container, SignedClient],
) -> None:
    container, client = replica_platform
    assert container.read_engine is not container.engine
    created = client.post("/v1/payments", json={"out_trade_no": "r-1", "amount": 100, "currency": "CNY",
                                                "method": "cashier", "subject": "茶"})
    assert created.status_code == 201, created.text
    primary, replica = Statements(container.engine), Statements(container.read_engine)

    listed = client.get("/v1/payments")
    assert [p["id"] for p in listed.json()["data"]] == [created.json()["id"]]
    exported = client.get("/v1/payments/export.csv", verify=False)
    assert created.json()["id"] in exported.text
    assert client.get("/v1/statistics").status_code == 200

    assert len(replica.reading("payments")) >= 2
    assert replica.reading("daily_payment_stats")
    assert primary.reading("payments") == []
    assert primary.reading("daily_payment_stats") == []


def test_the_read_engine_refuses_to_write(replica_platform: tuple[Container, SignedClient]) -> None:
    container, _client = replica_platform
    with container.read_engine.connect() as connection, pytest.raises(DBAPIError):
        connection.execute(text("UPDATE statistics_watermarks SET seen_id = seen_id"))


def test_without_a_read_url_queries_read_the_primary_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://db.example/tianpay")
    assert settings.resolved_read_database_url == settings.resolved_database_url
    replica = Settings(data_dir=tmp_path, read_database_url="postgres://replica.example/tianpay")
    assert replica.resolved_read_database_url == "postgresql+psycopg://replica.example/tianpay"
