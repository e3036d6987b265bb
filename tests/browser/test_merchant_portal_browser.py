"""The merchant portal in a real browser against ``tianpay up`` (real processes, HBB's simulator).

A payer pays at HBB; the merchant signs in with the login ``tianpay up`` printed, finds the payment
by its order number, refunds part of it from the detail page and sees the refund and its webhook
delivery; the dashboard's charts show the figures ``GET /v1/statistics`` answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import Platform, screenshot
from tests.browser.test_gateway_browser import HBB_CARD, PASSWORD, choose_bank, new_payment, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

DESKTOP = {"width": 1280, "height": 860}


@pytest.fixture
def desk(chromium: Browser) -> Iterator[Page]:
    """A desktop-sized window: the portal is used at a desk, and its screenshots show the wide layout."""
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def paid_at_hbb(page: Page, platform: Platform, amount_minor: int) -> dict[str, Any]:
    payment = new_payment(platform, amount_minor)
    page.goto(payment["cashier_url"])
    choose_bank(page, "HBB")
    page.wait_for_url(platform.bank_url("HBB") + "/**")
    page.fill("#card_no", HBB_CARD)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"/cashier/{payment['id']}/result$"))
    assert platform.client.payments.retrieve(payment["id"])["status"] == "succeeded"
    return payment


def sign_in(page: Page, platform: Platform) -> None:
    login = platform.up["merchant_portal"]
    page.goto(platform.up["api"] + "/merchant/login")
    page.fill("#login input[name=username]", login["username"])
    page.fill("#login input[name=password]", login["password"])
    page.click("#login button[type=submit]")
    page.wait_for_url(platform.up["api"] + "/merchant")


def test_a_merchant_finds_a_payment_by_order_number_refunds_part_and_sees_the_refund_and_its_webhook(
    page: Page, desk: Page, platform: Platform
) -> None:
    from playwright.sync_api import expect

    payment = paid_at_hbb(page, platform, 15_800)
    sign_in(desk, platform)

    desk.click("nav a[href='/merchant/payments']")
    desk.fill("#search input[name=out_trade_no]", payment["out_trade_no"])
    desk.click("#search button[type=submit]")
    rows = desk.locator("#results tbody tr")
    expect(rows).to_have_count(1)
    desk.click(f"#results a:text('{payment['out_trade_no']}')")
    expect(desk.locator("#payment-status")).to_have_text("succeeded")

    desk.fill("#refund-form input[name=amount]", "50.00")
    desk.fill("#refund-form input[name=reason]", "少发一盒")
    desk.click("#refund-form button[type=submit]")
    expect(desk.locator("#refund-list tr")).to_have_count(1)

    def refund_notified() -> bool:
        desk.reload()
        delivered = desk.locator("#events tr[data-event-type='refund.succeeded'] .attempt")
        return desk.locator("#refund-list .s-succeeded").count() == 1 and delivered.count() >= 1

    wait_until(refund_notified, what="the refund's success and its webhook delivery", timeout_s=60)
    expect(desk.locator("#refunded")).to_have_attribute("data-value", "5000")
    refunds = platform.client.request("GET", f"/v1/payments/{payment['id']}/refunds")["data"]
    assert [(r["amount"], r["status"]) for r in refunds] == [(5_000, "succeeded")]
    assert any(e["type"] == "refund.succeeded" for e in platform.site.events_about(refunds[0]["id"]))
    screenshot(desk, "merchant-payment")


def test_the_dashboard_charts_render_with_the_numbers_of_the_statistics_api(
    page: Page, desk: Page, platform: Platform
) -> None:
    from playwright.sync_api import expect

    before = platform.client.request("GET", "/v1/statistics")["totals"]["volume"]
    payment = paid_at_hbb(page, platform, 9_900)

    def counted() -> bool:
        return bool(platform.client.request("GET", "/v1/statistics")["totals"]["volume"] >= before + payment["amount"])

    wait_until(counted, what="the statistics job counting the payment", timeout_s=60)
    stats = platform.client.request("GET", "/v1/statistics")
    sign_in(desk, platform)

    expect(desk.locator("svg[data-chart=daily-volume] rect.bar")).to_have_count(len(stats["days"]))
    for period, figures in (("today", stats["days"][-1]), ("last_30_days", stats["totals"])):
        tiles = desk.locator(f"[data-period={period}]")
        for name in ("volume", "succeeded_count", "refunded_amount", "fee_amount", "net_amount"):
            assert tiles.locator(f"[data-figure={name}]").get_attribute("data-value") == str(figures[name])
    for row in stats["by_method"]:
        bar = desk.locator(f"svg[data-chart=by-method] rect[data-label='{row['method']}']")
        expect(bar).to_have_attribute("data-value", str(row["volume"]))
    for row in stats["by_bank"]:
        bar = desk.locator(f"svg[data-chart=by-bank] rect[data-label='{row['bank'] or '—'}']")
        expect(bar).to_have_attribute("data-value", str(row["volume"]))
    day_bars = desk.locator("svg[data-chart=daily-volume] rect.bar")
    assert day_bars.last.get_attribute("data-value") == str(stats["days"][-1]["volume"])
    screenshot(desk, "merchant-dashboard")
