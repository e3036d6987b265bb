"""The operator console in a real browser (Chromium) against a real platform server on loopback.

A support user signs in and asks for the finance pages: the server answers 403 (checked on the HTTP
response, not only by the missing link). A finance user resolves a reconciliation exception — opened by
the real reconciliation service from a statement line the platform cannot attribute — from the
exceptions queue, and the audit log shows who did it, why, and the state before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import screenshot
from tests.conftest import _DatabaseFactory
from tests.console.conftest import ConsoleServer, Staff, make_staff, start_console_server, unattributable_exception
from tests.merchant_portal.conftest import Portal, paid_wallet_payment
from tianpay.domain.operator import Role
from tianpay.domain.reconciliation import ExceptionStatus
from tianpay.domain.statistics import business_date_of
from tianpay.services import reconciliation, statistics
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser]

DESKTOP = {"width": 1280, "height": 860}


@pytest.fixture(scope="module")
def console_server(
    database_factory: _DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleServer]:
    console, server = start_console_server(database_factory.sqlite(), tmp_path_factory.mktemp("console"))
    try:
        yield console
    finally:
        server.stop()
        console.container.close()


@pytest.fixture
def desk(chromium: Browser) -> Iterator[Page]:
    """A desktop-sized window: the console is used at a desk, and its screenshots show the wide layout."""
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def sign_in(page: Page, server: ConsoleServer, staff: Staff) -> None:
    page.goto(server.base_url + "/console/login")
    page.fill("#login input[name=username]", staff.username)
    page.fill("#login input[name=password]", staff.password)
    page.click("#login button[type=submit]")
    page.wait_for_url(server.base_url + "/console")


def test_a_support_user_is_refused_the_finance_pages_by_the_server(desk: Page, console_server: ConsoleServer) -> None:
    support = make_staff(console_server.container, Role.SUPPORT)
    sign_in(desk, console_server, support)
    assert desk.locator("nav.side a[href='/console/reconciliation']").count() == 0
    assert desk.locator("nav.side a[href='/console/members']").count() == 1

    for path in ("/console/reconciliation", "/console/settlements", "/console/statistics", "/console/channels"):
        response = desk.goto(console_server.base_url + path)
        assert response is not None
        assert response.status == 403, path
        assert "support" in desk.locator("#message").inner_text()

    response = desk.goto(console_server.base_url + "/console/webhooks")
    assert response is not None
    assert response.status == 200


def test_a_finance_user_resolves_an_exception_and_the_audit_log_shows_it(
    desk: Page, console_server: ConsoleServer, tmp_path: Path
) -> None:
    opened = unattributable_exception(console_server.container, tmp_path, amount_minor=9_300)
    finance = make_staff(console_server.container, Role.FINANCE)
    sign_in(desk, console_server, finance)
    desk.click("nav.side a[href='/console/reconciliation']")
    row = desk.locator(f"tr[data-exception='{opened.id}']")
    assert "¥-93.00" in row.inner_text() or "¥93.00" in row.inner_text()
    screenshot(desk, "console-reconciliation")

    row.locator("select[name=action]").select_option("write_off")
    row.locator("input[name=reason]").fill("unclaimed deposit, written off after 30 days")
    row.locator("button[type=submit]").click()
    desk.wait_for_url(f"**/console/reconciliation?done={opened.id}")
    assert desk.locator(f"tr[data-exception='{opened.id}']").count() == 0
    assert opened.id in desk.locator("#resolved").inner_text()
    [resolved] = reconciliation.exceptions_of(console_server.container.uow, run_id=opened.run_id)
    assert resolved.status is ExceptionStatus.RESOLVED
    assert resolved.resolution_entry_id is not None

    desk.click("nav.side a[href='/console/audit']")
    audit_row = desk.locator(f"#audit tr[data-subject='{opened.id}']")
    text = audit_row.inner_text()
    assert "reconciliation.resolve" in text
    assert finance.username in text
    assert "unclaimed deposit, written off after 30 days" in text
    assert '"status": "open"' in text
    assert '"resolution": "write_off"' in text
    assert resolved.resolution_entry_id in text
    screenshot(desk, "console-audit")



def test_the_statistics_charts_draw_the_platform_figures(desk: Page, console_server: ConsoleServer) -> None:
    container = console_server.container
    shop = Portal(console_server.base_url, container)
    created = create_merchant(
        container.uow, KeyTools(container.ids, container.clock, container.key_issuer, container.vault),
        NewMerchant("统计商户", KeyRequest()),
    )
    for amount_minor in (12_300, 4_560):
        paid_wallet_payment(shop, created.merchant_id, amount_minor)
    now = container.clock.now()
    statistics.refresh_statistics(container.uow, now + timedelta(minutes=5))
    today = business_date_of(now)
    figures = statistics.platform_statistics(container.uow, today - timedelta(days=29), today)
    by_method: dict[str, int] = {}
    for row in figures.volume:
        by_method[row.method] = by_method.get(row.method, 0) + row.succeeded_minor
    assert by_method.get("wallet") == 16_860

    sign_in(desk, console_server, make_staff(container, Role.FINANCE))
    desk.click("nav.side a[href='/console/statistics']")
    bars = desk.locator("svg[data-chart='volume-by-method'] rect.bar")
    drawn = {bars.nth(i).get_attribute("data-label"): int(bars.nth(i).get_attribute("data-value") or 0)
             for i in range(bars.count())}
    assert drawn == by_method
    assert desk.locator("#fee-income").inner_text() == _yuan(figures.fee_income_minor)
    assert desk.locator("svg[data-chart='fee-income-vs-bank-cost']").count() == 1
    screenshot(desk, "console-statistics")


def _yuan(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    major, rest = divmod(abs(minor), 100)
    return f"{sign}¥{major:,}.{rest:02d}"
