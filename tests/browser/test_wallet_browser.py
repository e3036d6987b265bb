"""Account mode in a real browser: a member signs up at the wallet, binds a card, tops up and pays.

The platform and the banks run as ``tianpay up`` started them (real processes); the SMS codes are
read where a person would find them: the platform's own outbox (``/wallet/_dev/sms``, on under
``tianpay up``) and the bank's (``/_sim/sms``). Each test uses its own person from BANKS.md, since a
phone signs in to one wallet only.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import Platform, screenshot
from tests.browser.test_gateway_browser import PASSWORD, assert_notified_once

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

LOGIN_PASSWORD = "abc12345"
PAYMENT_PASSWORD = "258013"
_orders = itertools.count(1)


@dataclass(frozen=True)
class Person:
    """A test customer of BANKS.md: the reserved phone is also the wallet's sign-in phone here."""

    name: str
    id_number: str
    phone: str
    hbb_card: str


ZHANG_WEI = Person("张伟", "110105198503120012", "13800138001", "6217990000000000014")
WANG_FANG = Person("王芳", "12010119900725002X", "13800138002", "6217990000000000022")

LIU_YANG = Person("刘洋", "310104199511110047", "13800138004", "6217990000000000030")


def apply_for_card(page: Page, platform: Platform, card_number: str, phone: str) -> None:
    page.goto(platform.up["api"] + "/wallet/cards")
    page.fill("#bind-card input[name=card_number]", card_number)
    page.fill("#bind-card input[name=phone]", phone)
    page.click("#bind-card button[type=submit]")


def enter_code(page: Page, code: str) -> None:
    page.fill("#confirm-card input[name=sms_code]", code)
    page.click("#confirm-card button[type=submit]")


def new_payment(platform: Platform, amount_minor: int, method: str = "cashier") -> dict[str, Any]:
    order = f"WL{datetime.now(UTC):%Y%m%d%H%M%S}{next(_orders):03d}"
    payment: dict[str, Any] = platform.client.payments.create(
        out_trade_no=order, amount=amount_minor, currency="CNY", method=method,
        subject="津门好物 · 白茶礼盒", return_url=platform.site.return_url(order),
    )
    return payment


def platform_sms_code(platform: Platform, phone: str) -> str:
    answer = httpx.get(platform.up["api"] + "/wallet/_dev/sms", params={"phone": phone}, timeout=10.0)
    found = re.search(r"\d{6}", answer.json()["messages"][0]["text"])
    assert found is not None
    return found.group(0)


def bank_sms_code(platform: Platform, bank: str, phone: str) -> str:
    messages = httpx.get(platform.bank_url(bank) + "/_sim/sms", params={"phone": phone}, timeout=10.0).json()
    return str(messages[0]["code"])


def assert_nothing_in_clear(page: Page, person: Person) -> None:
    """Pages show masked numbers only: never the whole card, ID or phone number."""
    html = page.content()
    for secret in (person.hbb_card, person.id_number, person.phone):
        assert secret not in html


def sign_up(page: Page, platform: Platform, person: Person) -> None:
    """Phone + the platform's SMS code + a login password, then the real name."""
    from playwright.sync_api import expect

    page.goto(platform.up["api"] + "/wallet")
    page.wait_for_url(re.compile(r"/wallet/login"))
    page.click("a[href='/wallet/register']")
    page.fill("#send-code input[name=phone]", person.phone)
    page.click("#send-code button[type=submit]")
    page.fill("#register input[name=sms_code]", platform_sms_code(platform, person.phone))
    page.fill("#register input[name=login_password]", LOGIN_PASSWORD)
    page.click("#register button[type=submit]")
    page.wait_for_url(re.compile(r"/wallet/real-name$"))
    page.fill("#real-name input[name=name]", person.name)
    page.fill("#real-name input[name=id_number]", person.id_number)
    page.click("#real-name button[type=submit]")
    page.wait_for_url(re.compile(r"/wallet$"))
    expect(page.locator("[data-field=real-name]")).to_contain_text(person.name)
    assert_nothing_in_clear(page, person)


def set_payment_password(page: Page) -> None:
    page.fill("#set-password input[name=payment_password]", PAYMENT_PASSWORD)
    page.fill("#set-password input[name=payment_password_again]", PAYMENT_PASSWORD)
    page.click("#set-password button[type=submit]")
    page.wait_for_url(re.compile(r"/wallet$"))


def bind_hbb_card(page: Page, platform: Platform, person: Person) -> None:
    """Card number and reserved phone; the code comes from HBB's SMS outbox; then the payment password."""
    from playwright.sync_api import expect

    page.goto(platform.up["api"] + "/wallet/cards")
    expect(page.locator("[data-no-cards]")).to_be_visible()
    page.fill("#bind-card input[name=card_number]", person.hbb_card)
    page.fill("#bind-card input[name=phone]", person.phone)
    page.click("#bind-card button[type=submit]")
    expect(page.locator("#confirm-card")).to_be_visible()
    assert_nothing_in_clear(page, person)
    page.fill("#confirm-card input[name=sms_code]", bank_sms_code(platform, "HBB", person.phone))
    page.click("#confirm-card button[type=submit]")
    # The first card bound: the wallet asks for the payment password, entered twice.
    page.wait_for_url(re.compile(r"/wallet/payment-password\?first_card=1$"))
    set_payment_password(page)
    page.goto(platform.up["api"] + "/wallet/cards")
    masked = person.hbb_card[:6] + "*********" + person.hbb_card[-4:]
    expect(page.locator("#cards [data-field=card]")).to_have_text(masked)
    assert_nothing_in_clear(page, person)


def balance_shown(page: Page, platform: Platform) -> str:
    page.goto(platform.up["api"] + "/wallet")
    return page.locator("[data-field=balance]").inner_text()


def test_a_new_member_binds_a_card_tops_up_by_quick_pay_and_pays_from_the_wallet(
    page: Page, platform: Platform
) -> None:
    from playwright.sync_api import expect

    person = ZHANG_WEI
    card_before = platform.bank_balance("HBB", person.hbb_card)
    sign_up(page, platform, person)
    bind_hbb_card(page, platform, person)

    page.goto(platform.up["api"] + "/wallet/top-up")
    page.fill("#top-up-quick-pay input[name=amount]", "100")
    page.fill("#top-up-quick-pay input[name=payment_password]", PAYMENT_PASSWORD)
    page.click("#top-up-quick-pay button[type=submit]")
    page.wait_for_url(re.compile(r"/wallet$"))
    expect(page.locator("[data-field=balance]")).to_have_text("¥100.00")
    assert platform.bank_balance("HBB", person.hbb_card) == card_before - 10_000

    payment = new_payment(platform, 3_000)
    page.goto(payment["cashier_url"])
    page.click("[data-wallet]")
    page.wait_for_url(re.compile(rf"/wallet/pay/{payment['id']}$"))
    page.fill("#pay-from-wallet input[name=payment_password]", PAYMENT_PASSWORD)
    page.click("#pay-from-wallet button[type=submit]")
    page.wait_for_url(re.compile(rf"/cashier/{payment['id']}/result$"))
    expect(page.locator("[data-state=succeeded]")).to_be_visible()
    assert_notified_once(platform, payment["id"])
    assert balance_shown(page, platform) == "¥70.00"
    screenshot(page, "wallet-zh")

    # The same card pays an order straight from the cashier: no bank pages, the payment password only.
    second = new_payment(platform, 2_000)
    page.goto(second["cashier_url"])
    page.click("[data-quick-pay]")
    expect(page.locator("#quick-pay [data-card]")).to_have_text("621799*********0014")
    page.fill("#quick-pay input[name=payment_password]", PAYMENT_PASSWORD)
    page.click("#quick-pay button[type=submit]")
    page.wait_for_url(re.compile(rf"/cashier/{second['id']}/result$"))
    expect(page.locator("[data-state=succeeded]")).to_be_visible()
    assert_notified_once(platform, second["id"])
    assert platform.bank_balance("HBB", person.hbb_card) == card_before - 12_000
    assert balance_shown(page, platform) == "¥70.00"

    # Signed out, a quick-pay payment's cashier sends the payer to the wallet's sign-in and back.
    page.click("header form.inline button[type=submit]")
    page.wait_for_url(re.compile(r"/wallet/login$"))
    third = new_payment(platform, 1_500, method="quick_pay")
    page.goto(f"{platform.up['api']}/cashier/{third['id']}")
    expect(page.locator("[data-wallet]")).to_have_count(0)
    page.click("[data-quick-pay]")
    page.click("[data-login]")
    page.fill("#login input[name=phone]", person.phone)
    page.fill("#login input[name=login_password]", LOGIN_PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_url(re.compile(rf"/cashier/{third['id']}/quick-pay$"))
    page.fill("#quick-pay input[name=payment_password]", PAYMENT_PASSWORD)
    page.click("#quick-pay button[type=submit]")
    page.wait_for_url(re.compile(rf"/cashier/{third['id']}/result$"))
    expect(page.locator("[data-state=succeeded]")).to_be_visible()
    assert platform.bank_balance("HBB", person.hbb_card) == card_before - 13_500
    verify = platform.cli("ledger", "verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_payer_short_of_balance_tops_up_at_hbb_and_the_wallet_pays_the_order(
    page: Page, platform: Platform
) -> None:
    from playwright.sync_api import expect

    person = WANG_FANG
    sign_up(page, platform, person)
    # Wrong codes first: four are refused with tries left, the fifth ends the binding; then it binds.
    apply_for_card(page, platform, person.hbb_card, person.phone)
    wrong = "000000" if bank_sms_code(platform, "HBB", person.phone) != "000000" else "111111"
    for _ in range(4):
        enter_code(page, wrong)
        expect(page.locator("[data-error]")).to_have_attribute("data-error", "sms_code_invalid")
    enter_code(page, wrong)
    expect(page.locator("[data-error]")).to_have_attribute("data-error", "sms_code_attempts_exceeded")
    expect(page.locator("[data-no-cards]")).to_be_visible()
    apply_for_card(page, platform, person.hbb_card, person.phone)
    enter_code(page, bank_sms_code(platform, "HBB", person.phone))
    page.wait_for_url(re.compile(r"/wallet/payment-password\?first_card=1$"))
    set_payment_password(page)
    card_before = platform.bank_balance("HBB", person.hbb_card)

    payment = new_payment(platform, 4_500)
    page.goto(payment["cashier_url"])
    page.click("[data-wallet]")
    expect(page.locator("[data-field=shortfall]")).to_contain_text("¥45.00")
    page.check("#top-up-and-pay input[name=amount_choice][value=shortfall]")
    page.check("#top-up-and-pay input[name=bank][value=HBB]")
    page.fill("#top-up-and-pay input[name=payment_password]", PAYMENT_PASSWORD)
    page.click("#top-up-and-pay button[type=submit]")

    # HBB's own pages: the top-up is paid there with 王芳's card.
    page.wait_for_url(platform.bank_url("HBB") + "/**")
    page.fill("#card_no", person.hbb_card)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("确认支付")
    page.click("button[type=submit]")

    # Back at the top-up's result, "back" goes to the wallet, which pays the waiting order at once.
    page.wait_for_url(re.compile(r"/cashier/pay_\w+/result$"))
    expect(page.locator("[data-state=succeeded]")).to_be_visible()
    page.click("[data-return]")
    page.wait_for_url(re.compile(rf"/cashier/{payment['id']}/result$"))
    expect(page.locator("[data-state=succeeded]")).to_be_visible()
    assert_notified_once(platform, payment["id"])
    assert platform.bank_balance("HBB", person.hbb_card) == card_before - 4_500
    assert balance_shown(page, platform) == "¥0.00"


def test_a_refused_binding_says_why(page: Page, platform: Platform) -> None:
    """A frozen card and elements that do not match have their own messages (wrong codes: the next test)."""
    from playwright.sync_api import expect

    sign_up(page, platform, LIU_YANG)
    apply_for_card(page, platform, LIU_YANG.hbb_card, LIU_YANG.phone)
    if page.locator("#confirm-card").count():
        enter_code(page, bank_sms_code(platform, "HBB", LIU_YANG.phone))
    expect(page.locator("[data-error]")).to_have_attribute("data-error", "card_frozen")
    expect(page.locator("[data-error]")).to_contain_text("冻结")

    # 张伟's card with its reserved phone, but 刘洋's name and ID number: HBB refuses at the code step.
    apply_for_card(page, platform, ZHANG_WEI.hbb_card, ZHANG_WEI.phone)
    enter_code(page, bank_sms_code(platform, "HBB", ZHANG_WEI.phone))
    expect(page.locator("[data-error]")).to_have_attribute("data-error", "card_elements_mismatch")
    expect(page.locator("[data-error]")).to_contain_text("不符")

