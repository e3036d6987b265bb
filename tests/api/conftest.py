"""Fixtures for the merchant API tests: a real uvicorn server per module and backend, and merchants.

``api_server`` serves ``create_app`` on a loopback ephemeral port in a thread, against a migrated
database of each backend (SQLite and PostgreSQL), so every test using it runs twice. A test module
can mount routes of its own by defining an ``api_extra_routers`` fixture (module scope).
``merchant_credentials`` is a fresh RSA merchant per test; ``merchant_factory`` makes others
(``"ed25519"``, ``"p256"``, ``"hmac"``); ``api_client`` signs as ``merchant_credentials`` with the
independent ``requests-http-signature`` client and verifies every response's platform signature.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fastapi import APIRouter, FastAPI

from tests.conftest import BACKENDS, _DatabaseFactory
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.entrypoints.api.app import create_app
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

from .rfc9421_client import MerchantCredentials, PlatformKey, SignedClient

__all__ = ["ApiServer", "MerchantCredentials", "PlatformKey", "SignedClient"]

MerchantFactory = Callable[..., MerchantCredentials]


@dataclass
class ApiServer:
    """A running platform: its base URL, and the container (settings, database, keys) behind it."""

    base_url: str
    container: Container
    app: FastAPI

    @property
    def settings(self) -> Settings:
        return self.container.settings

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def platform_key(self) -> PlatformKey:
        key = self.container.platform_key
        return PlatformKey(key.key_id, key.public_key_pem.encode())


class _ThreadedServer:
    def __init__(self, app: FastAPI) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@pytest.fixture(scope="module", params=BACKENDS)
def api_db_url(request: pytest.FixtureRequest, database_factory: _DatabaseFactory) -> str:
    """One fresh, migrated database per test module and backend."""
    backend: str = request.param
    return database_factory.sqlite() if backend == "sqlite" else database_factory.postgresql()


@pytest.fixture(scope="module")
def api_extra_routers() -> Sequence[APIRouter]:
    """Routes a test module mounts next to the real ones (override in the module)."""
    return ()


@pytest.fixture(scope="module")
def api_server(
    api_db_url: str, tmp_path_factory: pytest.TempPathFactory, api_extra_routers: Sequence[APIRouter]
) -> Iterator[ApiServer]:
    data_dir: Path = tmp_path_factory.mktemp("platform")
    container = build_container(Settings(data_dir=data_dir, database_url=api_db_url, public_base_url=None))
    app = create_app(container, extra_routers=api_extra_routers)
    server = _ThreadedServer(app)
    server.start()
    try:
        yield ApiServer(f"http://127.0.0.1:{server.port}", container, app)
    finally:
        server.stop()
        container.close()


def _public_pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def merchant_factory(api_server: ApiServer) -> MerchantFactory:
    """Creates a merchant through the service; ``kind`` is "rsa" (generated), "ed25519", "p256" or "hmac"."""
    container = api_server.container
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)

    def make(kind: str = "rsa", *, name: str = "Test shop", webhook_url: str | None = None,
             fee_bps: int = 60) -> MerchantCredentials:
        private_pem: bytes | None = None
        key_request = KeyRequest()
        if kind in ("ed25519", "p256"):
            private = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else ec.generate_private_key(
                ec.SECP256R1()
            )
            private_pem = _private_pem(private)
            key_request = KeyRequest(public_key_pem=_public_pem(private))
        elif kind == "hmac":
            key_request = KeyRequest(use_hmac=True)
        created = create_merchant(container.uow, tools, NewMerchant(name, key_request, webhook_url, fee_bps))
        if kind == "rsa":
            assert created.key.private_key_path is not None
            private_pem = created.key.private_key_path.read_bytes()
        return MerchantCredentials(
            merchant_id=created.merchant_id,
            key_id=created.key.key_id,
            private_key_pem=private_pem,
            webhook_secret=created.webhook_secret,
            algorithm=created.key.algorithm.value,
            hmac_secret=created.key.hmac_secret,
        )

    return make


@pytest.fixture
def merchant_credentials(merchant_factory: MerchantFactory) -> MerchantCredentials:
    """A new merchant (platform-generated RSA-2048 key) for each test."""
    return merchant_factory("rsa")


@pytest.fixture
def api_client(api_server: ApiServer, merchant_credentials: MerchantCredentials) -> Iterator[SignedClient]:
    client = SignedClient(api_server.base_url, merchant_credentials, api_server.platform_key, requests.Session())
    yield client
    client.session.close()
