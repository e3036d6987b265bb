"""The wallet pages over plain HTTP against a real platform server and HBB's simulator, on both
databases: sign-up with an SMS code from the platform's outbox, real name, payment password, a top-up
paid on HBB's pages, and top-up-and-pay from the cashier."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, _DatabaseFactory
from tests.gateway.conftest import (
    BANK_TIMEOUT_S,
    HBB_CARD,
    BankWorld,
    add_merchant,
    bank_world,
    form_ending,
    forms_on,
    new_payment,
    now_clock,
    onboarded_dir,
    pay_on_hbb_pages,
    wait_until,
)
from tests.gateway.test_gateway_http import _Server
from tests.payments.conftest import assert_ledger_sound
from tianpay.adapters.clock import SettableClock
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentStatus
from tianpay.entrypoints.api.app import create_app
from tianpay.services import wallet

pytestmark = pytest.mark.e2e
# The bank world and the onboarded data directory are the gateway tests' module fixtures.
__all__ = ["bank_world", "onboarded_dir"]

PHONE = "13700137001"
LOGIN_PASSWORD = "abc12345"
PAYMENT_PASSWORD = "135790"


@dataclass
class Platform:
    base_url: str
    container: Container
    clock: SettableClock


@pytest.fixture(scope="module", params=BACKENDS)
def platform(request: pytest.FixtureRequest, database_factory: _DatabaseFactory, onboarded_dir: Path
             ) -> Iterator[Platform]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    with live_wallet_platform(database_url, onboarded_dir) as platform:
        yield platform


@contextmanager
def live_wallet_platform(database_url: str, data_dir: Path) -> Iterator[Platform]:
    """The platform on a real loopback HTTP server with the wallet's test settings (SMS outbox on,
    cheap argon2id), shared by the wallet, mandate and withdrawal page tests."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock = now_clock()
    settings = Settings(
        data_dir=data_dir, database_url=database_url, public_base_url=base_url, bank_timeout_s=BANK_TIMEOUT_S,
        dev_sms_outbox=True, argon2_time_cost=1, argon2_memory_cost_kib=64, argon2_parallelism=1,
    )
    container = build_container(settings, clock=clock)
    server = _Server(sock, create_app(container))
    server.start()
    try:
        yield Platform(base_url, container, clock)
    finally:
        server.stop()
        sock.close()
        container.close()


@pytest.fixture(scope="module")
def browser(platform: Platform) -> Iterator[httpx.Client]:
    """One payer's browser for the whole module: the tests below are the steps of one story."""
    with httpx.Client(base_url=platform.base_url, timeout=15.0, follow_redirects=True) as client:
        yield client


def sms_code(browser: httpx.Client, phone: str) -> str:
    messages = browser.get("/wallet/_dev/sms", params={"phone": phone}).json()["messages"]
    found = re.search(r"\d{6}", messages[0]["text"])
    assert found is not None
    return found.group(0)


def member_id_of(platform: Platform) -> str:
    from tianpay.services.pii import phone_fingerprint

    with platform.container.uow() as uow:
        member = uow.members.by_phone_fingerprint(phone_fingerprint(platform.container.member_tools.cipher, PHONE))
    assert member is not None
    return member.id


def test_a_payer_signs_up_with_an_sms_code_and_sets_up_the_wallet(platform: Platform, browser: httpx.Client) -> None:
    page = browser.get("/wallet")
    assert page.url.path == "/wallet/login"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    form = form_ending(browser.get("/wallet/register"), "/wallet/register/code")
    assert browser.post(form.action, data={"phone": PHONE}).status_code == 403
    step_two = browser.post(form.action, data={**form.fields, "phone": PHONE})
    assert PHONE not in step_two.text
    assert "137****7001" in step_two.text
    register = form_ending(step_two, "/wallet/register")
    signed_up = browser.post(register.action, data={
        **register.fields, "sms_code": sms_code(browser, PHONE), "login_password": LOGIN_PASSWORD,
    })
    assert signed_up.url.path == "/wallet/real-name"
    session = [c for c in signed_up.history[0].headers.get_list("set-cookie") if c.startswith("tp_wallet_session=")]
    assert session
    assert "httponly" in session[0].lower()
    assert "samesite=lax" in session[0].lower()
    real_name = form_ending(signed_up, "/wallet/real-name")
    home = browser.post(real_name.action, data={**real_name.fields, "name": "赵敏", "id_number": "110105199003071239"})
    assert home.url.path == "/wallet"
    assert "1****************9" in home.text
    assert "110105199003071239" not in home.text
    password = form_ending(browser.get("/wallet/payment-password"), "/wallet/payment-password")
    home = browser.post(password.action, data={
        **password.fields, "payment_password": PAYMENT_PASSWORD, "payment_password_again": PAYMENT_PASSWORD,
    })
    assert 'data-field="balance">¥0.00' in home.text


def test_the_payer_tops_up_at_hbb_and_the_wallet_is_credited(
    platform: Platform, browser: httpx.Client, bank_world: BankWorld
) -> None:
    card_before = bank_world.balance("HBB", HBB_CARD)
    top_up = form_ending(browser.get("/wallet/top-up"), "/wallet/top-up")
    redirect = browser.post(top_up.action, data={**top_up.fields, "amount": "100.00", "bank": "HBB"})
    (bank_form,) = [f for f in forms_on(redirect) if f.form_id == "bank-form"]
    hbb_result = pay_on_hbb_pages(browser, (bank_form.action, bank_form.fields))
    (back,) = [f for f in forms_on(hbb_result) if f.form_id == "back"]
    browser.post(back.action, data=back.fields)
    member_id = member_id_of(platform)
    wait_until(lambda: wallet.wallet_balance(platform.container.uow, member_id) == Money.cny(10_000),
               what="the wallet credited")
    assert bank_world.balance("HBB", HBB_CARD) == card_before - 10_000
    history = browser.get("/wallet/history")
    assert "充值" in history.text
    assert "+¥100.00" in history.text
    assert_ledger_sound(platform.container.uow)


def test_top_up_and_pay_from_the_cashier_pays_once_the_top_up_succeeds(
    platform: Platform, browser: httpx.Client, bank_world: BankWorld
) -> None:
    platform.clock.set(datetime.now(UTC))
    merchant_id = add_merchant(platform.container.uow, platform.clock, "mch_WALLET_PAGES")
    payment = new_payment(platform.container.uow, platform.clock, platform.container.ids, merchant_id, 15_000)
    checkout = browser.get(f"/cashier/{payment.id}")
    assert f"/wallet/pay/{payment.id}" in checkout.text
    pay_page = browser.get(f"/wallet/pay/{payment.id}")
    assert 'data-field="shortfall"' in pay_page.text
    assert "¥50.00" in pay_page.text
    assert f"/cashier/{payment.id}/quick-pay" in pay_page.text
    form = form_ending(pay_page, f"/wallet/pay/{payment.id}/top-up")
    redirect = browser.post(form.action, data={
        **form.fields, "amount_choice": "shortfall", "bank": "HBB", "payment_password": PAYMENT_PASSWORD,
    })
    (bank_form,) = [f for f in forms_on(redirect) if f.form_id == "bank-form"]
    hbb_result = pay_on_hbb_pages(browser, (bank_form.action, bank_form.fields))
    (back,) = [f for f in forms_on(hbb_result) if f.form_id == "back"]
    top_up_result = browser.post(back.action, data=back.fields)
    return_link = next(line for line in top_up_result.text.splitlines() if "data-return" in line)
    done_url = return_link.split('href="')[1].split('"')[0].replace("&amp;", "&")
    final = browser.get(done_url)
    assert final.url.path == f"/cashier/{payment.id}/result"
    with platform.container.uow() as uow:
        paid = uow.payments.get(payment.id)
    assert paid is not None
    assert paid.status is PaymentStatus.SUCCEEDED
    assert wallet.wallet_balance(platform.container.uow, member_id_of(platform)) == Money.zero()
    assert_ledger_sound(platform.container.uow)


def test_logging_out_ends_the_session(platform: Platform, browser: httpx.Client) -> None:
    home = browser.get("/wallet")
    logout = form_ending(home, "/wallet/logout")
    assert browser.post(logout.action, data=logout.fields).url.path == "/wallet/login"
    assert browser.get("/wallet").url.path == "/wallet/login"
    login = form_ending(browser.get("/wallet/login"), "/wallet/login")
    wrong = browser.post(login.action, data={**login.fields, "phone": PHONE, "login_password": "nope12345"})
    assert wrong.status_code == 400
    assert 'data-error="login_failed"' in wrong.text
    back = browser.post(login.action, data={**login.fields, "phone": PHONE, "login_password": LOGIN_PASSWORD})
    assert back.url.path == "/wallet"


def test_card_and_quick_pay_pages_refuse_posts_without_a_csrf_token(platform: Platform, browser: httpx.Client) -> None:
    cards = browser.get("/wallet/cards")
    assert cards.status_code == 200
    assert "script-src 'self'" in cards.headers["content-security-policy"]
    assert cards.headers["x-frame-options"] == "DENY"
    assert browser.post("/wallet/cards", data={"card_number": HBB_CARD, "phone": "13800138001"}).status_code == 403
    assert browser.post("/wallet/top-up/quick-pay", data={"amount": "1"}).status_code == 403
    merchant_id = add_merchant(platform.container.uow, platform.clock, "mch_WALLET_CSRF")
    payment = new_payment(platform.container.uow, platform.clock, platform.container.ids, merchant_id, 1_000)
    page = browser.get(f"/cashier/{payment.id}/quick-pay")
    assert page.status_code == 200
    assert "no-store" in page.headers["cache-control"]
    assert 'href="/wallet/cards"' in page.text  # signed in, no card bound yet
    refused = browser.post(f"/cashier/{payment.id}/quick-pay", data={"card_id": "cbd_x", "payment_password": "1"})
    assert refused.status_code == 403
