"""Rate limits and lockouts proved at the entrances people and merchants use, over HTTP.

The services' own tests prove the rules (``tests/members``: one SMS code a minute and ten a day per
phone, five tries per code, the payment password locked for three hours after five misses and
unlocked by time or an SMS-verified change; ``tests/merchant_portal`` and ``tests/console``: five
wrong passwords lock a login). Here the same limits hold where they are reached from outside: the
signed merchant API that confirms wallet payments with the payer's password, and the wallet's sign-up
page that sends SMS codes. Every refusal is the error envelope and moves no money.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from stdnum.cn import ric

from tests.api.conftest import ApiServer, _ThreadedServer
from tests.api.rfc9421_client import SignedClient
from tests.conftest import BACKENDS, _DatabaseFactory
from tianpay.bootstrap import build_container
from tianpay.config import Settings
from tianpay.domain.money import Money
from tianpay.entrypoints.api.app import create_app
from tianpay.services import members, payments, wallet

from .conftest import new_ed25519_merchant

pytestmark = pytest.mark.e2e

PAYMENT_PASSWORD = "135790"
WRONG_PASSWORD = "246801"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, database_factory: _DatabaseFactory,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    data_dir: Path = tmp_path_factory.mktemp("limits-platform")
    container = build_container(Settings(
        data_dir=data_dir, database_url=database_url, public_base_url=None, dev_sms_outbox=True,
        argon2_time_cost=1, argon2_memory_cost_kib=64, argon2_parallelism=1,
    ))
    app = create_app(container)
    running = _ThreadedServer(app)
    running.start()
    try:
        yield ApiServer(f"http://127.0.0.1:{running.port}", container, app)
    finally:
        running.stop()
        container.close()


def _member_with_wallet(server: ApiServer, client: SignedClient, balance_minor: int) -> str:
    container = server.container
    body = "11010519900307" + "321"
    registered = client.post("/v1/members", json={
        "external_id": "limits-1", "name": "王芳", "id_number": body + ric.calc_check_digit(body + "0"),
        "phone": "13900130321",
    })
    assert registered.status_code in (200, 201), registered.text
    member_id: str = registered.json()["id"]
    members.set_payment_password(container.uow, container.member_tools, member_id, PAYMENT_PASSWORD)
    started = wallet.start_top_up(container.uow, container.member_tools, member_id, Money.cny(balance_minor),
                                  return_url="https://pay.example/w", bank="HBB")
    attempt = payments.start_attempt(container.uow, container.clock, container.ids, started.payment.id,
                                     channel="hbb.online_banking", bank="HBB")
    payments.record_attempt_succeeded(container.uow, container.clock, started.payment.id, attempt.id,
                                      bank_reference=f"r-{attempt.id}", amount=Money.cny(balance_minor))
    return member_id


def _assert_refused(response: requests.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert {"type", "code", "message", "param"} <= set(error)


def test_five_wrong_payment_passwords_through_the_api_lock_the_wallet_even_against_the_right_one(
    server: ApiServer,
) -> None:
    credentials = new_ed25519_merchant(server, "Lockout shop")
    client = SignedClient(server.base_url, credentials, server.platform_key, requests.Session())
    member_id = _member_with_wallet(server, client, 20_000)
    created = client.post("/v1/payments", json={
        "out_trade_no": "lockout-1", "amount": 1_500, "currency": "CNY", "method": "wallet", "subject": "咖啡",
    })
    assert created.status_code == 201, created.text
    confirm = f"/v1/payments/{created.json()['id']}/confirm"

    for _ in range(4):
        wrong = client.post(confirm, json={"member_id": member_id, "payment_password": WRONG_PASSWORD})
        _assert_refused(wrong, "payment_password_incorrect")
        assert WRONG_PASSWORD not in wrong.text
    # The fifth miss locks (423 Locked), and while locked the right password is refused the same way.
    _assert_refused(client.post(confirm, json={"member_id": member_id, "payment_password": WRONG_PASSWORD}),
                    "payment_password_locked", 423)
    _assert_refused(client.post(confirm, json={"member_id": member_id, "payment_password": PAYMENT_PASSWORD}),
                    "payment_password_locked", 423)
    assert client.get(f"/v1/payments/{created.json()['id']}").json()["status"] == "created"
    assert wallet.wallet_balance(server.container.uow, member_id) == Money.cny(20_000)


def test_the_wallet_sign_up_page_sends_one_sms_code_a_minute_per_phone(server: ApiServer) -> None:
    phone = "13700137411"
    with requests.Session() as browser:
        page = browser.get(f"{server.base_url}/wallet/register", timeout=10)
        token = _CSRF.search(page.text)
        assert token is not None
        first = browser.post(f"{server.base_url}/wallet/register/code",
                             data={"csrf_token": token.group(1), "phone": phone}, timeout=10)
        assert first.status_code == 200, first.text
        second = browser.post(f"{server.base_url}/wallet/register/code",
                              data={"csrf_token": token.group(1), "phone": phone}, timeout=10)
        assert second.status_code == 400
        assert 'data-error="sms_rate_limited"' in second.text
        outbox = browser.get(f"{server.base_url}/wallet/_dev/sms", params={"phone": phone}, timeout=10).json()
    assert len(outbox["messages"]) == 1
