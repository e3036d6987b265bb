"""Fixtures for the merchant portal: a real platform server per module and backend, shops with portal
users, a browser-like HTTP client that carries cookies and CSRF tokens, and paid payments.

Payments are paid from a member's wallet (topped up by a recorded bank success, as the wallet tests
do), so refunds go through the real refund service without a bank in the way.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.api.conftest import _ThreadedServer
from tests.api.rfc9421_client import MerchantCredentials, PlatformKey, SignedClient
from tests.conftest import BACKENDS, _DatabaseFactory
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.money import Money
from tianpay.domain.payment import Payment, PaymentMethod, PaymentRequest
from tianpay.entrypoints.api.app import create_app
from tianpay.entrypoints.merchant_portal.routes import portal_tools
from tianpay.services import members, merchant_users, payments, wallet
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

PASSWORD = "correct horse battery"
_numbers = itertools.count(1)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Portal:
    base_url: str
    container: Container

    @property
    def platform_key(self) -> PlatformKey:
        key = self.container.platform_key
        return PlatformKey(key.key_id, key.public_key_pem.encode())


@dataclass
class Shop:
    credentials: MerchantCredentials
    username: str
    password: str

    @property
    def merchant_id(self) -> str:
        return self.credentials.merchant_id


class PortalBrowser:
    """Cookies, the last page's CSRF token, and no automatic redirects (tests look at each one)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.csrf: str | None = None

    def get(self, path: str, **params: str) -> requests.Response:
        response = self.session.get(self.base_url + path, params=params, allow_redirects=False, timeout=10)
        self._remember(response)
        return response

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> requests.Response:
        fields = dict(data or {})
        if csrf and self.csrf is not None:
            fields.setdefault("csrf_token", self.csrf)
        response = self.session.post(self.base_url + path, data=fields, allow_redirects=False, timeout=10)
        self._remember(response)
        return response

    def log_in(self, username: str, password: str) -> requests.Response:
        self.get("/merchant/login")
        return self.post("/merchant/login", {"username": username, "password": password})

    def _remember(self, response: requests.Response) -> None:
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="module", params=BACKENDS)
def portal(
    request: pytest.FixtureRequest, database_factory: _DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Portal]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    data_dir: Path = tmp_path_factory.mktemp("portal")
    settings = Settings(data_dir=data_dir, database_url=database_url, public_base_url=None,
                        argon2_time_cost=1, argon2_memory_cost_kib=64)
    container = build_container(settings)
    server = _ThreadedServer(create_app(container))
    server.start()
    try:
        yield Portal(f"http://127.0.0.1:{server.port}", container)
    finally:
        server.stop()
        container.close()


def make_shop(portal: Portal, *, name: str = "津门好物商城") -> Shop:
    container = portal.container
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    created = create_merchant(container.uow, tools, NewMerchant(name, KeyRequest(), None, 60))
    assert created.key.private_key_path is not None
    credentials = MerchantCredentials(
        merchant_id=created.merchant_id, key_id=created.key.key_id,
        private_key_pem=created.key.private_key_path.read_bytes(), webhook_secret=created.webhook_secret,
    )
    username = f"ops{next(_numbers)}.{created.merchant_id[-6:].lower()}"
    merchant_users.create_user(container.uow, portal_tools(container), created.merchant_id, username, PASSWORD)
    return Shop(credentials, username, PASSWORD)


@pytest.fixture
def shop(portal: Portal) -> Shop:
    return make_shop(portal)


@pytest.fixture
def browser(portal: Portal) -> Iterator[PortalBrowser]:
    client = PortalBrowser(portal.base_url)
    yield client
    client.close()


@pytest.fixture
def signed_in(browser: PortalBrowser, shop: Shop) -> PortalBrowser:
    assert browser.log_in(shop.username, shop.password).status_code == 303
    return browser


def api_client(portal: Portal, credentials: MerchantCredentials) -> SignedClient:
    return SignedClient(portal.base_url, credentials, portal.platform_key, requests.Session())


def id_number(sequence: int) -> str:
    """A valid resident ID number (GB 11643 check digit), different for every ``sequence``."""
    body = f"110105{19500101 + sequence // 1000:08d}{sequence % 1000:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(digit) * weight for digit, weight in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def paid_wallet_payment(portal: Portal, merchant_id: str, amount_minor: int, *, out_trade_no: str | None = None
                        ) -> Payment:
    """A wallet payment of ``amount_minor`` paid by a member the shop registered (wallet topped up first)."""
    container = portal.container
    tools = container.member_tools
    number = next(_numbers)
    registration = members.ImplicitRegistration(
        merchant_id, f"payer-{number}", "张伟", id_number(number), f"138{number:08d}"
    )
    member_id = members.register_for_merchant(container.uow, tools, registration).member.id
    started = wallet.start_top_up(container.uow, tools, member_id, Money.cny(amount_minor),
                                  return_url="https://pay.example/wallet", bank="HBB")
    attempt = payments.start_attempt(container.uow, container.clock, container.ids, started.payment.id,
                                     channel="hbb.online_banking", bank="HBB")
    payments.record_attempt_succeeded(container.uow, container.clock, started.payment.id, attempt.id,
                                      bank_reference=f"ref-{attempt.id}", amount=Money.cny(amount_minor))
    request = PaymentRequest(merchant_id=merchant_id, out_trade_no=out_trade_no or f"order-{number}",
                             amount=Money.cny(amount_minor), method=PaymentMethod.WALLET, subject="保温杯")
    payment = payments.create_payment(container.uow, container.clock, container.ids, request).payment
    recorded = payments.pay_from_wallet(container.uow, container.clock, container.ids, payment.id,
                                        member_id=member_id, merchant_id=merchant_id)
    return recorded.payment
