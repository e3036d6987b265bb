"""Gateway mode end to end over HTTP: a real platform server, the real banks, a payer's browser.

The platform (``create_app`` under uvicorn on a loopback port) is the one banks notify: HBB and JHB
post to ``/channels/{bank}/notify`` on it. The payer's browser is httpx: the cashier page, the pay
form, the bank's login and confirmation pages, the way back and the result page.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.conftest import BACKENDS, _DatabaseFactory
from tests.gateway.conftest import (
    BANK_TIMEOUT_S,
    HBB_CARD,
    HBB_RESERVE,
    JHB_CARD,
    JHB_RESERVE,
    MERCHANT_NAME,
    BankWorld,
    Form,
    add_merchant,
    form_ending,
    forms_on,
    new_payment,
    now_clock,
    pay_on_hbb_pages,
    pay_on_jhb_pages,
    wait_until,
)
from tests.payments.conftest import assert_ledger_sound, events_of
from tianpay.adapters.clock import SettableClock
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.errors import NotFound
from tianpay.domain.payment import AttemptStatus, Payment, PaymentMethod, PaymentStatus
from tianpay.entrypoints.api.app import create_app
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.ledger import verify_ledger

pytestmark = pytest.mark.e2e


@dataclass
class Platform:
    base_url: str
    container: Container
    clock: SettableClock

    @property
    def uow(self) -> UnitOfWorkFactory:
        return self.container.uow


class _Server:
    def __init__(self, sock: socket.socket, app: FastAPI) -> None:
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the platform did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@pytest.fixture(scope="module", params=BACKENDS)
def platform(
    request: pytest.FixtureRequest, database_factory: _DatabaseFactory, onboarded_dir: Path
) -> Iterator[Platform]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock = now_clock()
    settings = Settings(
        data_dir=onboarded_dir, database_url=database_url, public_base_url=base_url, bank_timeout_s=BANK_TIMEOUT_S
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


@pytest.fixture
def merchant_id(platform: Platform) -> str:
    platform.clock.set(datetime.now(UTC))
    return add_merchant(platform.uow, platform.clock, "mch_HTTP")


@pytest.fixture
def browser(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.base_url, timeout=10.0, follow_redirects=True) as client:
        yield client


def payment_for(platform: Platform, merchant_id: str, amount_minor: int, **kwargs: object) -> Payment:
    return new_payment(platform.uow, platform.clock, platform.container.ids, merchant_id, amount_minor, **kwargs)  # type: ignore[arg-type]


def status_of(platform: Platform, payment_id: str) -> PaymentStatus:
    with platform.uow() as uow:
        payment = uow.payments.get(payment_id)
    assert payment is not None
    return payment.status


def ledger_balances(platform: Platform, merchant_id: str) -> dict[str, int]:
    codes = ["bank:HBB:reserve", f"merchant:{merchant_id}:pending", "platform:fee_income"]
    with platform.uow() as uow:
        uow.ledger.ensure_accounts([])
        found = {}
        for code in codes:
            try:
                found[code] = uow.ledger.balance(code).minor
            except NotFound:
                found[code] = 0
    return found


def choose_bank(browser: httpx.Client, payment_id: str, bank: str) -> Form:
    """Opens the cashier, picks ``bank`` and returns the auto-submitting form to the bank."""
    page = browser.get(f"/cashier/{payment_id}")
    assert page.status_code == 200, page.text
    choice = form_ending(page, f"/cashier/{payment_id}/pay")
    assert bank in choice.choices["bank"]
    redirect_page = browser.post(choice.action, data={**choice.fields, "bank": bank})
    assert redirect_page.status_code == 200, redirect_page.text
    (bank_form,) = [f for f in forms_on(redirect_page) if f.form_id == "bank-form"]
    return bank_form


def follow_hbb_back(browser: httpx.Client, result_page: httpx.Response) -> httpx.Response:
    """Plays HBB's auto-post of the signed result to our frontUrl, then follows our 303."""
    (back,) = [f for f in forms_on(result_page) if f.form_id == "back"]
    return browser.post(back.action, data=back.fields)


# ---- HBB and JHB, the whole way ------------------------------------------------------------------------


def test_a_payer_pays_at_hbb_and_every_book_agrees(
    platform: Platform, merchant_id: str, browser: httpx.Client, bank_world: BankWorld
) -> None:
    card_before = bank_world.balance("HBB", HBB_CARD)
    reserve_before = bank_world.balance("HBB", HBB_RESERVE)
    before = ledger_balances(platform, merchant_id)
    payment = payment_for(platform, merchant_id, 12_345)
    bank_form = choose_bank(browser, payment.id, "HBB")
    assert bank_form.method == "post"
    assert bank_form.action.startswith(bank_world.urls["HBB"])
    hbb_result = pay_on_hbb_pages(browser, (bank_form.action, bank_form.fields))
    result = follow_hbb_back(browser, hbb_result)
    assert result.url.path == f"/cashier/{payment.id}/result"
    wait_until(lambda: status_of(platform, payment.id) is PaymentStatus.SUCCEEDED, what="payment succeeded")
    assert 'data-state="succeeded"' in browser.get(f"/cashier/{payment.id}/result").text
    after = ledger_balances(platform, merchant_id)
    with platform.uow() as uow:
        paid = uow.payments.get(payment.id)
    assert paid is not None
    assert paid.fee_amount.minor == 74
    assert {code: after[code] - before[code] for code in after} == {
        "bank:HBB:reserve": 12_345,
        f"merchant:{merchant_id}:pending": 12_345 - 74,
        "platform:fee_income": 74,
    }
    succeeded = [e for e in events_of(platform.uow, merchant_id) if e.data["id"] == payment.id]
    assert [e.type for e in succeeded] == ["payment.succeeded"]
    assert verify_ledger(platform.uow).is_sound
    assert bank_world.balance("HBB", HBB_CARD) == card_before - 12_345
    assert bank_world.balance("HBB", HBB_RESERVE) == reserve_before + 12_345


def test_a_payer_pays_at_jhb_and_every_book_agrees(
    platform: Platform, merchant_id: str, browser: httpx.Client, bank_world: BankWorld
) -> None:
    card_before = bank_world.balance("JHB", JHB_CARD)
    reserve_before = bank_world.balance("JHB", JHB_RESERVE)
    payment = payment_for(platform, merchant_id, 23_456)
    bank_form = choose_bank(browser, payment.id, "JHB")
    assert bank_form.method == "get"
    assert bank_form.action.startswith(bank_world.urls["JHB"])
    with httpx.Client(timeout=10.0) as bank_browser:
        confirmed = pay_on_jhb_pages(bank_browser, bank_form.action, bank_form.fields)
    assert confirmed.status_code == 303
    # JHB sends the payer back by GET with unsigned display parameters, which prove nothing.
    back = browser.get(confirmed.headers["location"])
    assert back.url.path == f"/cashier/{payment.id}/result"
    wait_until(lambda: status_of(platform, payment.id) is PaymentStatus.SUCCEEDED, what="payment succeeded")
    assert_ledger_sound(platform.uow)
    assert bank_world.balance("JHB", JHB_CARD) == card_before - 23_456
    assert bank_world.balance("JHB", JHB_RESERVE) == reserve_before + 23_456


def test_a_payer_who_abandons_hbb_and_pays_at_jhb_is_charged_for_the_merchant_once(
    platform: Platform, merchant_id: str, browser: httpx.Client
) -> None:
    payment = payment_for(platform, merchant_id, 34_567)
    hbb_form = choose_bank(browser, payment.id, "HBB")
    # The payer comes back without paying at HBB and picks JHB instead.
    jhb_form = choose_bank(browser, payment.id, "JHB")
    with httpx.Client(timeout=10.0) as bank_browser:
        assert pay_on_jhb_pages(bank_browser, jhb_form.action, jhb_form.fields).status_code == 303
    wait_until(lambda: status_of(platform, payment.id) is PaymentStatus.SUCCEEDED, what="payment succeeded")
    # Then pays the forgotten HBB tab as well: that success is put aside for a refund, not credited.
    with httpx.Client(timeout=10.0, follow_redirects=True) as bank_browser:
        pay_on_hbb_pages(bank_browser, (hbb_form.action, hbb_form.fields))

    def both_final() -> bool:
        with platform.uow() as uow:
            return all(not a.status.is_in_flight for a in uow.payments.attempts_of(payment.id))

    wait_until(both_final, what="both attempts final")
    with platform.uow() as uow:
        attempts = list(uow.payments.attempts_of(payment.id))
        paid = uow.payments.get(payment.id)
        late = list(uow.payments.late_success_refunds_of(payment.id))
    assert [a.bank for a in attempts] == ["HBB", "JHB"]
    assert [a.status for a in attempts] == [AttemptStatus.SUCCEEDED, AttemptStatus.SUCCEEDED]
    assert paid is not None
    assert paid.succeeded_attempt_id == attempts[1].id
    assert [r.attempt_id for r in late] == [attempts[0].id]
    events = [e.type for e in events_of(platform.uow, merchant_id) if e.data["id"] == payment.id]
    assert events == ["payment.succeeded"]
    assert_ledger_sound(platform.uow)


def test_magic_99_is_notified_twice_and_the_merchant_hears_once(
    platform: Platform, merchant_id: str, browser: httpx.Client, bank_world: BankWorld
) -> None:
    payment = payment_for(platform, merchant_id, 10_099)
    bank_form = choose_bank(browser, payment.id, "HBB")
    follow_hbb_back(browser, pay_on_hbb_pages(browser, (bank_form.action, bank_form.fields)))
    wait_until(lambda: status_of(platform, payment.id) is PaymentStatus.SUCCEEDED, what="payment succeeded")
    with platform.uow() as uow:
        (attempt,) = uow.payments.attempts_of(payment.id)
    query_id = attempt.bank_reference
    assert query_id

    def delivered_twice() -> bool:
        notes = [n for n in bank_world.state("HBB")["notifications"] if n["event_ref"].startswith(query_id)]
        return sum(1 for n in notes if n["status"] == "delivered") >= 2

    wait_until(delivered_twice, what="two delivered notifications")
    assert status_of(platform, payment.id) is PaymentStatus.SUCCEEDED
    events = [e.type for e in events_of(platform.uow, merchant_id) if e.data["id"] == payment.id]
    assert events == ["payment.succeeded"]


# ---- the cashier pages -----------------------------------------------------------------------------------


def test_the_cashier_shows_the_payment_and_the_banks_in_chinese(
    platform: Platform, merchant_id: str, browser: httpx.Client
) -> None:
    payment = payment_for(platform, merchant_id, 1_234)
    page = browser.get(f"/cashier/{payment.id}")
    assert page.status_code == 200
    assert 'lang="zh-CN"' in page.text
    for text in (MERCHANT_NAME, "津门好物 茶叶礼盒", "¥12.34", "华北银行", "津海银行", "剩余支付时间"):
        assert text in page.text
    assert 'data-seconds-left="' in page.text


def test_the_english_toggle_is_remembered_in_a_cookie(
    platform: Platform, merchant_id: str, browser: httpx.Client
) -> None:
    payment = payment_for(platform, merchant_id, 1_234)
    english = browser.get(f"/cashier/{payment.id}?lang=en")
    assert "Huabei Bank" in english.text
    assert "Time left to pay" in english.text
    cookie = english.headers["set-cookie"]
    assert "tp_lang=en" in english.headers.get_list("set-cookie")[0] or "tp_lang=en" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie.replace("Lax", "lax")
    again = browser.get(f"/cashier/{payment.id}")
    assert "Huabei Bank" in again.text
    assert "华北银行" in browser.get(f"/cashier/{payment.id}?lang=zh").text


def test_an_online_banking_payment_offers_only_its_bank(
    platform: Platform, merchant_id: str, browser: httpx.Client
) -> None:
    payment = payment_for(platform, merchant_id, 1_234, method=PaymentMethod.ONLINE_BANKING, bank="JHB")
    choice = form_ending(browser.get(f"/cashier/{payment.id}"), "/pay")
    assert choice.choices["bank"] == ["JHB"]
    refused = browser.post(choice.action, data={**choice.fields, "bank": "HBB"})
    assert refused.status_code == 400


def test_a_pay_request_without_the_pages_token_is_refused_and_starts_nothing(
    platform: Platform, merchant_id: str, browser: httpx.Client
) -> None:
    payment = payment_for(platform, merchant_id, 1_234)
    choice = form_ending(browser.get(f"/cashier/{payment.id}"), "/pay")
    other = payment_for(platform, merchant_id, 1_234)
    with httpx.Client(base_url=platform.base_url) as stranger:
        assert stranger.post(choice.action, data={**choice.fields, "bank": "HBB"}).status_code == 403
    # A token of one payment does not pay another.
    assert browser.post(f"/cashier/{other.id}/pay", data={**choice.fields, "bank": "HBB"}).status_code == 403
    assert browser.post(choice.action, data={"csrf_token": "0" * 64, "bank": "HBB"}).status_code == 403
    with platform.uow() as uow:
        assert list(uow.payments.attempts_of(payment.id)) == []
        assert list(uow.payments.attempts_of(other.id)) == []


def test_every_cashier_page_carries_the_security_headers(
    platform: Platform, merchant_id: str, browser: httpx.Client
) -> None:
    payment = payment_for(platform, merchant_id, 1_234)
    pages = [
        browser.get(f"/cashier/{payment.id}"),
        browser.get(f"/cashier/{payment.id}/result"),
        browser.get("/cashier/pay_doesnotexist"),
        browser.get("/cashier/static/cashier.js"),
    ]
    for page in pages:
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
    assert pages[2].status_code == 404
    assert "<script>" not in pages[0].text
    nonce_cookie = pages[0].headers["set-cookie"]
    assert "tp_cashier_nonce=" in nonce_cookie
    assert "HttpOnly" in nonce_cookie
    assert "Path=/cashier" in nonce_cookie


def test_the_redirect_page_lets_forms_go_only_to_the_chosen_bank(
    platform: Platform, merchant_id: str, browser: httpx.Client, bank_world: BankWorld
) -> None:
    payment = payment_for(platform, merchant_id, 1_234)
    choice = form_ending(browser.get(f"/cashier/{payment.id}"), "/pay")
    page = browser.post(choice.action, data={**choice.fields, "bank": "HBB"})
    hbb_origin = bank_world.urls["HBB"]
    assert f"form-action 'self' {hbb_origin}" in page.headers["content-security-policy"]
    assert "data-autosubmit" in page.text
    assert "前往银行付款" in page.text


def test_a_paid_payment_shows_success_offers_no_bank_and_returns_to_the_merchant(
    platform: Platform, merchant_id: str, browser: httpx.Client
) -> None:
    payment = payment_for(platform, merchant_id, 12_000)
    bank_form = choose_bank(browser, payment.id, "HBB")
    follow_hbb_back(browser, pay_on_hbb_pages(browser, (bank_form.action, bank_form.fields)))
    wait_until(lambda: status_of(platform, payment.id) is PaymentStatus.SUCCEEDED, what="payment succeeded")
    page = browser.get(f"/cashier/{payment.id}")
    assert page.url.path == f"/cashier/{payment.id}/result"
    assert 'data-state="succeeded"' in page.text
    assert 'name="bank"' not in page.text
    (link,) = [line for line in page.text.splitlines() if "data-return" in line]
    href = link.split('href="')[1].split('"')[0].replace("&amp;", "&")
    query = parse_qs(urlsplit(href).query)
    assert query == {"from": ["tianpay"], "payment_id": [payment.id], "out_trade_no": [payment.out_trade_no]}


def test_an_expired_payment_shows_closed(platform: Platform, merchant_id: str, browser: httpx.Client) -> None:
    payment = payment_for(platform, merchant_id, 1_234)
    platform.clock.advance(timedelta(hours=1))
    try:
        page = browser.get(f"/cashier/{payment.id}")
    finally:
        platform.clock.advance(-timedelta(hours=1))
    assert page.url.path.endswith("/result")
    assert 'data-state="closed"' in page.text


def test_a_notification_for_an_unknown_bank_is_not_found(platform: Platform) -> None:
    response = httpx.post(f"{platform.base_url}/channels/XYZ/notify", content=b"a=b")
    assert response.status_code == 404
