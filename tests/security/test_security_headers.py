"""Security headers on every page the platform serves to a browser, found from the app's own routes.

Every GET route outside the signed API (the cashier, the wallet, the merchant portal, the operator
console, the API documentation pages) is requested signed out and signed in (a wallet member, a
merchant user, an admin operator), with real ids where a page needs one and an unknown id otherwise,
so redirects, 404 pages and the pages themselves are all checked: a Content-Security-Policy without
inline script, framing refused, ``nosniff``, a Referrer-Policy, and cookies HttpOnly and SameSite (and
Secure when the platform's public base URL is https). SQLite only: headers do not depend on the
database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from tests.api.conftest import _ThreadedServer
from tests.conftest import _DatabaseFactory
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.money import Money
from tianpay.domain.operator import Role
from tianpay.domain.payment import PaymentMethod, PaymentRequest
from tianpay.entrypoints.api.app import create_app
from tianpay.entrypoints.merchant_portal.routes import portal_tools
from tianpay.services import merchant_users, payments
from tianpay.services.operators import create_operator

from .conftest import new_ed25519_merchant

pytestmark = pytest.mark.e2e

NOT_BROWSER_PAGES = ("/v1/", "/channels/", "/metrics", "/openapi.json")
WALLET_PHONE = "13700137311"
STAFF_PASSWORD = "correct horse battery staple"
PORTAL_PASSWORD = "correct horse battery"
WALLET_PASSWORD = "abc12345"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_PARAM = re.compile(r"\{([^}:]+)(:[^}]*)?\}")


@dataclass
class Site:
    base_url: str
    container: Container
    app: FastAPI
    is_https: bool


@pytest.fixture(scope="module", params=["http", "https"])
def site(
    request: pytest.FixtureRequest, database_factory: _DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The platform on loopback; "https" names a public https base URL, as behind a TLS proxy."""
    data_dir: Path = tmp_path_factory.mktemp("headers-platform")
    public_base_url = "https://pay.tianpay.example" if request.param == "https" else None
    settings = Settings(
        data_dir=data_dir, database_url=database_factory.sqlite(), public_base_url=public_base_url,
        dev_sms_outbox=True, argon2_time_cost=1, argon2_memory_cost_kib=64, argon2_parallelism=1,
    )
    container = build_container(settings)
    app = create_app(container)
    server = _ThreadedServer(app)
    server.start()
    try:
        yield Site(f"http://127.0.0.1:{server.port}", container, app, request.param == "https")
    finally:
        server.stop()
        container.close()


class _BehindTlsProxy(requests.Session):
    """A browser whose requests reach loopback http through a TLS proxy: cookies marked Secure (which the
    test has checked on every Set-Cookie) are sent back, as the browser would over https."""

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        for cookie in self.cookies:
            cookie.secure = False
        return super().prepare_request(request)


def browser_get_paths(app: FastAPI) -> list[str]:
    """Every GET route template that serves a browser (the signed API and bank endpoints excluded)."""
    found: list[str] = []
    for context in iter_route_contexts(app.router.routes):
        path = context.path
        if path is None or "GET" not in (context.methods or ()) or path.startswith(NOT_BROWSER_PAGES):
            continue
        if path not in found:
            found.append(path)
    return found


def fill(template: str, ids: dict[str, str]) -> str:
    """The template with real ids where we have them, an id that does not exist otherwise."""
    return _PARAM.sub(lambda m: ids.get(m.group(1), "doesnotexist"), template)


def assert_secure_headers(response: requests.Response, *, is_https: bool) -> None:
    where = f"{response.request.method} {response.request.path_url} → {response.status_code}"
    assert response.status_code < 500, where
    csp = response.headers.get("content-security-policy", "")
    assert csp, f"no Content-Security-Policy on {where}"
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    script_src = directives.get("script-src", directives.get("default-src", ""))
    assert "'unsafe-inline'" not in script_src, f"{where}: {csp}"
    assert "'unsafe-eval'" not in script_src, f"{where}: {csp}"
    framing_refused = directives.get("frame-ancestors") == "frame-ancestors 'none'"
    assert framing_refused or response.headers.get("x-frame-options", "").upper() == "DENY", where
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy"), where
    for cookie in response.raw.headers.getlist("set-cookie"):
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert "httponly" in attributes, f"{where}: {cookie}"
        assert "samesite" in attributes, f"{where}: {cookie}"
        assert ("secure" in attributes) is is_https, f"{where}: {cookie}"


def _csrf_of(response: requests.Response) -> str:
    found = _CSRF.search(response.text)
    assert found is not None, response.text[:500]
    return found.group(1)


def _sign_in_to_the_wallet(site: Site, session: requests.Session) -> list[requests.Response]:
    """Signs up through the wallet's own pages, the SMS code read from the development outbox."""
    url = site.base_url
    page = session.get(f"{url}/wallet/register", timeout=10)
    sent = session.post(f"{url}/wallet/register/code", data={"csrf_token": _csrf_of(page), "phone": WALLET_PHONE},
                        timeout=10)
    assert sent.status_code == 200, sent.text
    phone_token = re.search(r'name="phone_token" value="([^"]+)"', sent.text)
    assert phone_token is not None
    text = session.get(f"{url}/wallet/_dev/sms", params={"phone": WALLET_PHONE}, timeout=10).json()["messages"][0]
    code = re.search(r"\d{6}", text["text"])
    assert code is not None
    registered = session.post(
        f"{url}/wallet/register", allow_redirects=False, timeout=10,
        data={"csrf_token": _csrf_of(sent), "phone_token": phone_token.group(1), "sms_code": code.group(0),
              "login_password": WALLET_PASSWORD},
    )
    assert registered.status_code == 303, registered.text
    return [page, sent, registered]


def _sign_in(site: Site, session: requests.Session, login_path: str, username: str, password: str
             ) -> list[requests.Response]:
    page = session.get(site.base_url + login_path, timeout=10)
    signed = session.post(site.base_url + login_path, allow_redirects=False, timeout=10,
                          data={"csrf_token": _csrf_of(page), "username": username, "password": password})
    assert signed.status_code == 303, signed.text
    return [page, signed]


def test_every_browser_page_signed_in_or_out_carries_the_security_headers(site: Site) -> None:
    container = site.container
    credentials = new_ed25519_merchant(site)  # type: ignore[arg-type]
    merchant_users.create_user(container.uow, portal_tools(container), credentials.merchant_id, "headers.ops",
                               PORTAL_PASSWORD)
    create_operator(container.uow, container.clock, container.member_tools.hasher, "headers.admin", STAFF_PASSWORD,
                    Role.ADMIN)
    payment = payments.create_payment(container.uow, container.clock, container.ids, PaymentRequest(
        merchant_id=credentials.merchant_id, out_trade_no="headers-1", amount=Money.cny(1_234),
        method=PaymentMethod.CASHIER, subject="茶叶礼盒", bank=None, notify_url=None,
        return_url="https://shop.example/paid",
    )).payment
    ids = {"payment_id": payment.id, "merchant_id": credentials.merchant_id}
    paths = browser_get_paths(site.app)
    assert {"/cashier/{payment_id}", "/docs", "/redoc"} <= set(paths)
    assert any(p.startswith("/merchant") for p in paths)
    assert any(p.startswith("/console") for p in paths)

    checked: list[requests.Response] = []
    with _BehindTlsProxy() as wallet, _BehindTlsProxy() as portal, _BehindTlsProxy() as console, \
            _BehindTlsProxy() as stranger:
        checked += _sign_in_to_the_wallet(site, wallet)
        checked += _sign_in(site, portal, "/merchant/login", "headers.ops", PORTAL_PASSWORD)
        checked += _sign_in(site, console, "/console/login", "headers.admin", STAFF_PASSWORD)
        for template in paths:
            signed_in = {"/wallet": wallet, "/merchant": portal, "/console": console}.get(
                "/" + template.split("/")[1], stranger
            )
            for session in {id(signed_in): signed_in, id(stranger): stranger}.values():
                checked.append(session.get(site.base_url + fill(template, ids), allow_redirects=False, timeout=10))
    failures: list[str] = []
    for response in checked:
        try:
            assert_secure_headers(response, is_https=site.is_https)
        except AssertionError as failure:
            failures.append(str(failure).splitlines()[0])
    assert not failures, "\n".join(failures)
    pages = [r for r in checked if r.status_code == 200 and r.headers.get("content-type", "").startswith("text/html")]
    assert len(pages) >= 20, "too few real pages were reached to prove anything"
