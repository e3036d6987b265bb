"""Gateway mode in a real browser: a payer pays at HBB and at JHB in headless Chromium.

The platform and the banks run as ``tianpay up`` started them; the merchant is a real HTTP server on
loopback. Each test follows one payment from the merchant's SDK call through the cashier and the
bank's own pages back to the merchant, then checks the webhook, the bank's books and the ledger.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from standardwebhooks.webhooks import Webhook

from tests.browser.conftest import Platform, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PASSWORD = "Passw0rd!"
HBB_CARD = "6217990000000000014"
HBB_RESERVE = "6217990000000000998"
JHB_CARD = "6227990000000000013"
JHB_RESERVE = "6227990000000000997"
_orders = itertools.count(1)


def new_payment(platform: Platform, amount_minor: int) -> dict[str, Any]:
    # Shaped like a shop's order number, since it appears in the documentation's screenshots.
    order = f"JM{datetime.now(UTC):%Y%m%d%H%M%S}{next(_orders):03d}"
    payment: dict[str, Any] = platform.client.payments.create(
        out_trade_no=order,
        amount=amount_minor,
        currency="CNY",
        method="cashier",
        subject="津门好物 · 白茶礼盒",
        return_url=platform.site.return_url(order),
    )
    return payment


def wait_until(predicate: Callable[[], bool], *, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout_s}s")
        time.sleep(0.1)


def assert_notified_once(platform: Platform, payment_id: str) -> None:
    """``payment.succeeded`` arrived, once, and verifies with the standardwebhooks library itself."""
    wait_until(lambda: bool(platform.site.events_about(payment_id)), what="payment.succeeded webhook")
    events = platform.site.events_about(payment_id)
    assert [event["type"] for event in events] == ["payment.succeeded"]
    delivery = next(d for d in platform.site.deliveries() if d.event is events[0])
    verified = Webhook(platform.webhook_secret).verify(delivery.body, delivery.headers)
    assert verified["data"]["id"] == payment_id
    assert verified["data"]["status"] == "succeeded"


def assert_books_moved(platform: Platform, bank: str, before: dict[str, int], amount_minor: int, card: str) -> None:
    """The bank debited the card and credited our reserve by the amount; our ledger says the same."""
    after = books(platform, bank, card)
    assert after["card"] == before["card"] - amount_minor
    assert after["reserve"] == before["reserve"] + amount_minor
    assert after["ledger"] == before["ledger"] + amount_minor
    verify = platform.cli("ledger", "verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert '"ok": true' in verify.stdout


def books(platform: Platform, bank: str, card: str) -> dict[str, int]:
    reserve = HBB_RESERVE if bank == "HBB" else JHB_RESERVE
    return {
        "card": platform.bank_balance(bank, card),
        "reserve": platform.bank_balance(bank, reserve),
        "ledger": platform.ledger_balance(f"bank:{bank}:reserve"),
    }


def choose_bank(page: Page, bank: str) -> None:
    page.check(f"#bank-choice input[name=bank][value={bank}]")
    page.click("#bank-choice button[type=submit]")


def test_a_payer_pays_at_hbb_in_the_browser_and_lands_back_at_the_merchant(page: Page, platform: Platform) -> None:
    from playwright.sync_api import expect

    amount_minor = 15_800
    before = books(platform, "HBB", HBB_CARD)
    payment = new_payment(platform, amount_minor)

    page.goto(payment["cashier_url"])
    expect(page.locator("[data-field=amount]")).to_have_text("¥158.00")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    screenshot(page, "cashier-zh")
    choose_bank(page, "HBB")

    # The cashier's script submits the signed form to HBB, whose login page asks for card and password.
    page.wait_for_url(platform.bank_url("HBB") + "/**")
    page.fill("#card_no", HBB_CARD)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("确认支付")
    page.click("button[type=submit]")

    # HBB's result page posts the signed result back to the cashier, which shows our own records.
    page.wait_for_url(re.compile(rf"/cashier/{payment['id']}/result$"))
    expect(page.locator("[data-state=succeeded]")).to_be_visible()
    expect(page.locator("h1")).to_have_text("支付成功")
    screenshot(page, "result-zh")
    assert platform.client.payments.retrieve(payment["id"])["status"] == "succeeded"

    page.click("[data-return]")
    page.wait_for_url(platform.site.base_url + "/return?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["payment_id"] == [payment["id"]]
    assert query["out_trade_no"] == [payment["out_trade_no"]]
    expect(page.locator("#thanks")).to_be_visible()

    assert_notified_once(platform, payment["id"])
    assert_books_moved(platform, "HBB", before, amount_minor, HBB_CARD)


def test_a_payer_switches_to_english_and_pays_at_jhb(page: Page, platform: Platform) -> None:
    from playwright.sync_api import expect

    amount_minor = 26_600
    before = books(platform, "JHB", JHB_CARD)
    payment = new_payment(platform, amount_minor)

    page.goto(payment["cashier_url"])
    page.click("a.lang")
    page.wait_for_url("**?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", re.compile("^en"))
    expect(page.locator("#countdown")).to_contain_text("Time left to pay")
    expect(page.locator("#bank-choice")).to_contain_text("Jinhai Bank")
    screenshot(page, "cashier-en")
    choose_bank(page, "JHB")

    page.wait_for_url(platform.bank_url("JHB") + "/**")
    page.fill("input[name=card_no]", JHB_CARD)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")
    page.click("#confirm")

    # JHB sends the payer straight back; the result page reloads itself until the notification lands.
    page.wait_for_url(re.compile(rf"/cashier/{payment['id']}/result"))
    expect(page.locator("[data-state=succeeded]")).to_be_visible(timeout=30_000)
    expect(page.locator("h1")).to_have_text("Payment succeeded")
    screenshot(page, "result-en")

    assert_notified_once(platform, payment["id"])
    assert_books_moved(platform, "JHB", before, amount_minor, JHB_CARD)
