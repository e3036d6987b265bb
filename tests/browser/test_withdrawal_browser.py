"""A wallet withdrawal in a real browser: a member tops up by quick pay, then withdraws to the card.

``tianpay up`` runs the platform, its worker and the banks as real processes; the worker's payout
jobs batch the withdrawal and send it to HBB, and the card's balance at the bank shows it arrived.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Platform, screenshot
from tests.browser.test_wallet_browser import (
    PAYMENT_PASSWORD,
    WANG_FANG,
    assert_nothing_in_clear,
    bind_hbb_card,
    sign_up,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

WITHDRAWAL_TIMEOUT_S = 30.0


def test_a_member_withdraws_part_of_the_wallet_to_the_bound_card(page: Page, platform: Platform) -> None:
    from playwright.sync_api import expect

    person = WANG_FANG
    card_before = platform.bank_balance("HBB", person.hbb_card)
    sign_up(page, platform, person)
    bind_hbb_card(page, platform, person)
    page.goto(platform.up["api"] + "/wallet/top-up")
    page.fill("#top-up-quick-pay input[name=amount]", "100")
    page.fill("#top-up-quick-pay input[name=payment_password]", PAYMENT_PASSWORD)
    page.click("#top-up-quick-pay button[type=submit]")
    page.wait_for_url(re.compile(r"/wallet$"))
    expect(page.locator("[data-field=balance]")).to_have_text("¥100.00")

    page.click("a[href='/wallet/withdraw']")
    page.wait_for_url(re.compile(r"/wallet/withdraw$"))
    expect(page.locator("#withdraw")).to_contain_text("621799*********0022")
    page.fill("#withdraw input[name=amount]", "30")
    page.fill("#withdraw input[name=payment_password]", PAYMENT_PASSWORD)
    page.click("#withdraw button[type=submit]")
    page.wait_for_url(re.compile(r"/wallet/withdraw$"))
    expect(page.locator("[data-field=balance]")).to_have_text("¥70.00")
    assert_nothing_in_clear(page, person)

    deadline = time.monotonic() + WITHDRAWAL_TIMEOUT_S
    while platform.bank_balance("HBB", person.hbb_card) != card_before - 10_000 + 3_000:
        assert time.monotonic() < deadline, "the withdrawal did not reach the card"
        time.sleep(0.3)
    # The bank moved the money while answering; the platform records the answer right after.
    status = page.locator("table.withdrawals [data-field=status]")

    def status_shown() -> str:
        page.reload()
        return status.inner_text()

    while status_shown() != "已到账":
        assert time.monotonic() < deadline, "the withdrawal was not recorded as arrived"
        time.sleep(0.3)
    screenshot(page, "wallet-withdraw-zh")
    verify = platform.cli("ledger", "verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
