"""The merchant portal over real HTTP on both databases: sign-in, lockout, TOTP, CSRF, scoping,
refunds from the detail page, key rotation, webhooks and the read-only lists."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest

from tianpay.adapters.clock import SettableClock
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentMethod, PaymentRequest
from tianpay.domain.statistics import business_date_of
from tianpay.services import payments
from tianpay.services.settlement import settle_merchant
from tianpay.services.statistics import refresh_statistics

from .conftest import Portal, PortalBrowser, Shop, api_client, make_shop, paid_wallet_payment

pytestmark = pytest.mark.e2e


def test_a_signed_out_browser_is_sent_to_the_login_page(browser: PortalBrowser) -> None:
    response = browser.get("/merchant/payments")

    assert response.status_code == 303
    assert response.headers["location"] == "/merchant/login?next=%2Fmerchant%2Fpayments"


def test_a_user_signs_in_and_sees_the_dashboard_with_strict_headers_and_cookies(
    browser: PortalBrowser, shop: Shop
) -> None:
    login_page = browser.get("/merchant/login")
    assert "frame-ancestors 'none'" in login_page.headers["content-security-policy"]
    assert "script-src 'self'" in login_page.headers["content-security-policy"]

    response = browser.log_in(shop.username, shop.password)

    assert response.status_code == 303
    assert response.headers["location"] == "/merchant"
    cookie = response.headers["set-cookie"]
    assert "tp_merchant_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/merchant" in cookie
    dashboard = browser.get("/merchant")
    assert dashboard.status_code == 200
    assert shop.merchant_id in dashboard.text
    assert 'data-chart="daily-volume"' in dashboard.text


def test_a_wrong_password_is_refused_and_five_in_a_row_lock_the_account(
    browser: PortalBrowser, shop: Shop
) -> None:
    for _ in range(4):
        refused = browser.log_in(shop.username, "wrong password!")
        assert refused.status_code == 400
        assert "用户名或密码错误" in refused.text

    locked = browser.log_in(shop.username, "wrong password!")
    assert locked.status_code == 400
    assert "锁定" in locked.text
    # While locked even the right password is refused, so guessing gains nothing.
    still_locked = browser.log_in(shop.username, shop.password)
    assert still_locked.status_code == 400
    assert "锁定" in still_locked.text
    assert browser.get("/merchant").status_code == 303


def test_a_post_without_a_valid_csrf_token_is_refused(signed_in: PortalBrowser) -> None:
    signed_in.get("/merchant/webhooks")

    missing = signed_in.post("/merchant/webhooks/url", {"webhook_url": "https://evil.example/hook"}, csrf=False)
    forged = signed_in.post("/merchant/webhooks/url", {"webhook_url": "https://evil.example/hook",
                                                       "csrf_token": "0" * 64})

    assert missing.status_code == 403
    assert forged.status_code == 403
    assert "evil.example" not in signed_in.get("/merchant/webhooks").text


def test_a_login_post_without_a_csrf_token_is_refused(browser: PortalBrowser, shop: Shop) -> None:
    response = browser.post("/merchant/login", {"username": shop.username, "password": shop.password}, csrf=False)

    assert response.status_code == 403


def test_totp_once_switched_on_is_asked_for_at_every_sign_in(
    portal: Portal, browser: PortalBrowser, shop: Shop
) -> None:
    assert browser.log_in(shop.username, shop.password).status_code == 303
    browser.get("/merchant/security")
    setup = browser.post("/merchant/security/totp")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', setup.text)
    assert secret is not None
    totp = pyotp.TOTP(secret.group(1))
    assert browser.post("/merchant/security/totp/confirm", {"code": totp.now()}).status_code == 303
    assert "两步验证已开启" in browser.get("/merchant/security").text
    browser.post("/merchant/logout")

    second = PortalBrowser(portal.base_url)
    try:
        response = second.log_in(shop.username, shop.password)
        assert response.headers["location"] == "/merchant/totp"
        # Until the code is typed the session opens nothing but the code page.
        assert second.get("/merchant/payments").headers["location"] == "/merchant/totp"
        second.get("/merchant/totp")
        assert second.post("/merchant/totp", {"code": "000000" if totp.now() != "000000" else "111111"}
                           ).status_code == 400
        assert second.post("/merchant/totp", {"code": totp.now()}).headers["location"] == "/merchant"
        assert second.get("/merchant/payments").status_code == 200
    finally:
        second.close()


def test_a_user_of_one_merchant_gets_404_for_another_merchants_payment(
    portal: Portal, signed_in: PortalBrowser
) -> None:
    other = make_shop(portal, name="别家小店")
    container = portal.container
    theirs = payments.create_payment(container.uow, container.clock, container.ids, PaymentRequest(
        merchant_id=other.merchant_id, out_trade_no="theirs-1", amount=Money.cny(1_000),
        method=PaymentMethod.CASHIER, subject="别人的订单",
    )).payment

    assert signed_in.get(f"/merchant/payments/{theirs.id}").status_code == 404
    assert signed_in.get("/merchant/payments", out_trade_no="theirs-1").text.count("data-payment-id") == 0
    assert signed_in.post(f"/merchant/payments/{theirs.id}/refunds",
                          {"amount": "1.00", "out_refund_no": "x-1"}).status_code == 404


def test_the_search_finds_payments_by_order_number_amount_and_status(
    portal: Portal, signed_in: PortalBrowser, shop: Shop
) -> None:
    small = paid_wallet_payment(portal, shop.merchant_id, 1_200, out_trade_no="S-small")
    large = paid_wallet_payment(portal, shop.merchant_id, 88_800, out_trade_no="S-large")

    by_number = signed_in.get("/merchant/payments", out_trade_no="S-large")
    by_amount = signed_in.get("/merchant/payments", amount_min="100", amount_max="1000")
    by_status = signed_in.get("/merchant/payments", status="failed")
    bad = signed_in.get("/merchant/payments", amount_min="abc")

    assert re.findall(r'data-payment-id="([^"]+)"', by_number.text) == [large.id]
    assert re.findall(r'data-payment-id="([^"]+)"', by_amount.text) == [large.id]
    assert small.id not in by_status.text
    assert large.id not in by_status.text
    assert bad.status_code == 400


def test_the_search_pages_through_results_newest_first(
    portal: Portal, signed_in: PortalBrowser, shop: Shop
) -> None:
    container = portal.container
    made = [
        payments.create_payment(container.uow, container.clock, container.ids, PaymentRequest(
            merchant_id=shop.merchant_id, out_trade_no=f"P-{n}", amount=Money.cny(100 + n),
            method=PaymentMethod.CASHIER, subject="纸杯",
        )).payment.id
        for n in range(23)
    ]

    first = signed_in.get("/merchant/payments", method="cashier")
    shown = re.findall(r'data-payment-id="([^"]+)"', first.text)
    next_link = re.search(r'href="([^"]+)" id="next-page"', first.text)
    assert next_link is not None
    second = signed_in.get(next_link.group(1).replace("&amp;", "&"))
    shown += re.findall(r'data-payment-id="([^"]+)"', second.text)

    assert len(shown) == 23
    assert set(shown) == set(made)
    assert 'id="next-page"' not in second.text


def test_a_merchant_refunds_part_of_a_payment_from_its_detail_page_once_per_form(
    portal: Portal, signed_in: PortalBrowser, shop: Shop
) -> None:
    payment = paid_wallet_payment(portal, shop.merchant_id, 10_000, out_trade_no="R-order")
    detail = signed_in.get(f"/merchant/payments/{payment.id}")
    assert detail.status_code == 200
    out_refund_no = re.search(r'name="out_refund_no" value="([^"]+)"', detail.text)
    assert out_refund_no is not None
    form = {"amount": "25.00", "reason": "one cup broken", "out_refund_no": out_refund_no.group(1)}

    first = signed_in.post(f"/merchant/payments/{payment.id}/refunds", form)
    # The same form sent twice (a double click, a reload) is the same refund, not a second one.
    again = signed_in.post(f"/merchant/payments/{payment.id}/refunds", form)

    assert first.status_code == 303
    assert again.status_code == 303
    page = signed_in.get(f"/merchant/payments/{payment.id}")
    assert len(re.findall(r"data-refund-id=", page.text)) == 1
    assert 'id="refunded" data-value="2500"' in page.text
    assert 'data-event-type="refund.succeeded"' in page.text
    assert 'data-event-type="payment.succeeded"' in page.text
    fetched = api_client(portal, shop.credentials).get(f"/v1/payments/{payment.id}")
    assert fetched.json()["refunded_amount"] == 2_500


def test_a_refund_over_what_is_left_shows_the_reason_and_changes_nothing(
    portal: Portal, signed_in: PortalBrowser, shop: Shop
) -> None:
    payment = paid_wallet_payment(portal, shop.merchant_id, 5_000)
    signed_in.get(f"/merchant/payments/{payment.id}")

    refused = signed_in.post(f"/merchant/payments/{payment.id}/refunds",
                             {"amount": "60.00", "out_refund_no": "too-much-1"})

    assert refused.status_code == 400
    assert 'id="refund-error"' in refused.text
    assert 'id="refunded" data-value="0"' in signed_in.get(f"/merchant/payments/{payment.id}").text


def test_a_key_rotation_keeps_the_old_key_valid_until_its_expiry_and_revoking_ends_it(
    portal: Portal, signed_in: PortalBrowser, shop: Shop
) -> None:
    old = api_client(portal, shop.credentials)
    signed_in.get("/merchant/keys")

    rotated = signed_in.post("/merchant/keys/rotate", {"public_key": "", "overlap_hours": "24"})

    assert rotated.status_code == 200
    new_key_id = re.search(r'id="issued-key-id">([^<]+)<', rotated.text)
    new_secret = re.search(r'id="issued-secret">([0-9a-f]+)<', rotated.text)
    assert new_key_id is not None
    assert new_secret is not None
    assert old.get("/v1/balance").status_code == 200
    new = api_client(portal, type(shop.credentials)(
        merchant_id=shop.merchant_id, key_id=new_key_id.group(1), private_key_pem=None,
        webhook_secret=shop.credentials.webhook_secret, algorithm="hmac-sha256",
        hmac_secret=bytes.fromhex(new_secret.group(1)),
    ))
    assert new.get("/v1/balance").status_code == 200
    keys_page = signed_in.get("/merchant/keys")
    old_row = re.search(rf'data-key-id="{shop.credentials.key_id}">(.*?)</tr>', keys_page.text, re.S)
    assert old_row is not None
    assert "有效" in old_row.group(1)

    assert signed_in.post(f"/merchant/keys/{shop.credentials.key_id}/revoke").status_code == 303
    assert old.get("/v1/balance").status_code == 401
    assert new.get("/v1/balance").status_code == 200
    # The last valid key cannot be revoked: the merchant would lock itself out of the API.
    signed_in.get("/merchant/keys")
    assert signed_in.post(f"/merchant/keys/{new_key_id.group(1)}/revoke").status_code == 400


def test_webhook_settings_change_the_url_show_a_new_secret_once_and_resend_an_event(
    portal: Portal, signed_in: PortalBrowser, shop: Shop
) -> None:
    payment = paid_wallet_payment(portal, shop.merchant_id, 3_000)
    signed_in.get("/merchant/webhooks")
    assert signed_in.post("/merchant/webhooks/url", {"webhook_url": "https://shop.example/hooks"}).status_code == 303
    page = signed_in.get("/merchant/webhooks")
    assert 'value="https://shop.example/hooks"' in page.text

    rotated = signed_in.post("/merchant/webhooks/secret")
    secret = re.search(r'id="new-secret">[^<]*<code class="mono">(whsec_[^<]+)<', rotated.text)
    assert secret is not None
    with portal.container.uow() as uow:
        merchant = uow.merchants.get(shop.merchant_id)
    assert merchant is not None
    assert merchant.webhook_secret == secret.group(1)
    assert secret.group(1) not in signed_in.get("/merchant/webhooks").text

    event_id = re.search(r'data-event-id="([^"]+)"', page.text)
    assert event_id is not None
    resent = signed_in.post(f"/merchant/webhooks/events/{event_id.group(1)}/resend",
                            {"back": f"/merchant/payments/{payment.id}"})
    assert resent.status_code == 303
    assert resent.headers["location"] == f"/merchant/payments/{payment.id}"


def test_the_lists_show_the_merchants_own_members_masked(
    portal: Portal, signed_in: PortalBrowser, shop: Shop
) -> None:
    paid_wallet_payment(portal, shop.merchant_id, 1_000)

    members_page = signed_in.get("/merchant/members")

    assert members_page.status_code == 200
    assert "张*" in members_page.text
    assert "张伟" not in members_page.text
    assert re.search(r"1\d{2}\*{4}\d{4}", members_page.text)
    assert signed_in.get("/merchant/mandates").status_code == 200
    assert signed_in.get("/merchant/terminals").status_code == 200
    assert signed_in.get("/merchant/balance").status_code == 200


def test_the_dashboard_shows_the_same_figures_as_the_statistics_api(
    portal: Portal, signed_in: PortalBrowser, shop: Shop
) -> None:
    first = paid_wallet_payment(portal, shop.merchant_id, 10_000)
    paid_wallet_payment(portal, shop.merchant_id, 2_000)
    signed_in.get(f"/merchant/payments/{first.id}")
    signed_in.post(f"/merchant/payments/{first.id}/refunds", {"amount": "10.00", "out_refund_no": "D-1"})
    container = portal.container
    # The worker's aggregation job, run once here with no settling margin.
    refresh_statistics(container.uow, container.clock.now(), settle_margin=timedelta(0))

    page = signed_in.get("/merchant")
    api = api_client(portal, shop.credentials).get("/v1/statistics").json()

    for period, figures in (("today", api["days"][-1]), ("last_30_days", api["totals"])):
        shown = re.search(rf'data-period="{period}">(.*?)</section>', page.text, re.S)
        assert shown is not None
        for name in ("volume", "succeeded_count", "refunded_amount", "fee_amount", "net_amount"):
            field = "volume" if name == "volume" else name
            value = re.search(rf'data-figure="{field}" data-value="(-?\d+)"', shown.group(1))
            assert value is not None
            assert int(value.group(1)) == figures[name]
    assert api["totals"]["volume"] == 12_000
    assert api["totals"]["refunded_amount"] == 1_000
    by_method = {row["method"]: row["volume"] for row in api["by_method"]}
    for method, volume in by_method.items():
        assert f'data-label="{method}" data-value="{volume}"' in page.text


def test_the_balance_page_lists_settlements_whose_statement_downloads_as_the_api_gives_it(
    portal: Portal, signed_in: PortalBrowser, shop: Shop
) -> None:
    container = portal.container
    paid_wallet_payment(portal, shop.merchant_id, 20_000)
    today = business_date_of(container.clock.now())
    # Settling needs the day to be over: a clock one day ahead stands in for tomorrow's run.
    tomorrow = SettableClock(container.clock.now() + timedelta(days=1))
    settled = settle_merchant(container.uow, tomorrow, merchant_id=shop.merchant_id, business_date=today,
                              required_banks=())
    assert settled.settlement is not None

    page = signed_in.get("/merchant/balance")
    csv_link = f"/merchant/statements/{today.isoformat()}.csv"
    statement = signed_in.get(csv_link)
    from_api = api_client(portal, shop.credentials).get(f"/v1/statements/{today.isoformat()}")

    assert page.status_code == 200
    assert f'data-settlement-id="{settled.settlement.id}"' in page.text
    assert f'href="{csv_link}"' in page.text
    assert 'id="available" data-value="19880"' in page.text
    assert statement.status_code == 200
    assert statement.headers["content-type"].startswith("text/csv")
    assert statement.text == from_api.text
    assert signed_in.get("/merchant/statements/2001-01-01.csv").status_code == 404
    # The same day spelled without dashes is no date of ours, not a second link to the statement.
    assert signed_in.get(f"/merchant/statements/{today:%Y%m%d}.csv").status_code == 404


def test_the_pages_speak_english_when_asked_and_remember_it(browser: PortalBrowser) -> None:
    english = browser.get("/merchant/login", lang="en")
    again = browser.get("/merchant/login")

    assert '<html lang="en">' in english.text
    assert "Sign in" in english.text
    assert "Sign in" in again.text
    assert '<html lang="zh-CN">' in browser.get("/merchant/login", lang="zh").text
