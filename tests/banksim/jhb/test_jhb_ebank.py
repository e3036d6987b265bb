"""Online banking at JHB end to end over HTTP: order, the payer's pages, notification, return, query."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from jhbsim_kit import (
    LI_NA_CARD,
    RESERVE,
    ZHANG_WEI_CARD,
    JhbTestClient,
    balance,
    ebank_pay,
    onboard,
    order_no,
    pay_with_browser,
)

from banksim.core.books import AccountStatus


def test_a_payer_pays_through_jhb_pages_and_the_platform_hears_of_it(jhb: JhbTestClient, http, jhb_world) -> None:
    card_before, reserve_before = balance(http, ZHANG_WEI_CARD), balance(http, RESERVE)
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "123.45")
    assert answer["ret_code"] == "0000"
    assert answer["redirect_url"].startswith(jhb_world.url + "/ebank/pay?token=")
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["status"] == "WAIT_PAY"

    done = pay_with_browser(jhb_world.url, answer["redirect_url"])

    assert done.status_code == 303
    back = urlsplit(done.headers["location"])
    assert (back.netloc, back.path) == ("shop.example", "/cashier/return")
    params = parse_qs(back.query)
    assert params["from"] == ["jhb"]
    assert params["out_trade_no"] == [out_trade_no]
    assert params["status"] == ["SUCCESS"]
    assert params["amount"] == ["123.45"]
    notice = jhb.open(jhb_world.sink.wait_for(out_trade_no)[0])
    assert notice["out_trade_no"] == out_trade_no
    assert notice["jhb_trade_no"] == answer["jhb_trade_no"]
    assert notice["amount"] == "123.45"
    assert notice["status"] == "SUCCESS"
    assert notice["fail_code"] == ""
    assert len(notice["finish_time"]) == 14
    query = jhb.call("pay.query", {"out_trade_no": out_trade_no})
    assert (query["ret_code"], query["status"], query["amount"]) == ("0000", "SUCCESS", "123.45")
    assert jhb.call("pay.query", {"jhb_trade_no": answer["jhb_trade_no"]})["out_trade_no"] == out_trade_no
    assert balance(http, ZHANG_WEI_CARD) == card_before - 12345
    assert balance(http, RESERVE) == reserve_before + 12345


def test_the_notification_envelope_names_its_service_and_keeps_its_req_no(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "1.00")
    pay_with_browser(jhb_world.url, answer["redirect_url"])
    notice = jhb_world.sink.wait_for(out_trade_no)[0]
    assert notice["head"]["service"] == "ebank.pay.notify"
    assert notice["head"]["partner_id"] == jhb.partner.partner_id
    assert notice["head"]["req_no"] == "N" + answer["jhb_trade_no"]


def test_a_wrong_password_or_a_foreign_card_keeps_the_payer_on_the_login_page(jhb: JhbTestClient, jhb_world) -> None:
    _, answer = ebank_pay(jhb, jhb_world.sink_url, "2.00")
    token = answer["redirect_url"].split("token=")[1]
    with httpx.Client(base_url=jhb_world.url) as browser:
        wrong = browser.post("/ebank/login", data={"token": token, "card_no": ZHANG_WEI_CARD, "password": "nope"})
        assert wrong.status_code == 400
        assert "卡号或登录密码错误" in wrong.text
        foreign = browser.post(
            "/ebank/login", data={"token": token, "card_no": "6217990000000000014", "password": "Passw0rd!"}
        )
        assert "请使用津海银行借记卡登录" in foreign.text
        # Without a session the confirmation page sends the payer back to log in.
        assert browser.get(f"/ebank/confirm?token={token}").status_code == 303
        assert browser.post("/ebank/confirm", data={"token": token}).status_code == 400


def test_the_pages_never_show_a_full_card_number_after_login(jhb: JhbTestClient, jhb_world) -> None:
    _, answer = ebank_pay(jhb, jhb_world.sink_url, "2.00")
    token = answer["redirect_url"].split("token=")[1]
    with httpx.Client(base_url=jhb_world.url) as browser:
        login = browser.post("/ebank/login", data={"token": token, "card_no": LI_NA_CARD, "password": "Passw0rd!"})
        page = browser.get(login.headers["location"])
        assert LI_NA_CARD not in page.text
        assert "622799*********0021" in page.text


def test_real_insufficient_funds_fail_the_order_with_1051(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "9000.00")
    done = pay_with_browser(jhb_world.url, answer["redirect_url"], card_no=LI_NA_CARD)
    assert parse_qs(urlsplit(done.headers["location"]).query)["status"] == ["FAILED"]
    notice = jhb.open(jhb_world.sink.wait_for(out_trade_no)[0])
    assert (notice["status"], notice["fail_code"]) == ("FAILED", "1051")
    query = jhb.call("pay.query", {"out_trade_no": out_trade_no})
    assert (query["ret_code"], query["status"], query["fail_code"]) == ("0000", "FAILED", "1051")


def test_a_paid_order_cannot_be_paid_again(jhb: JhbTestClient, jhb_world) -> None:
    _, answer = ebank_pay(jhb, jhb_world.sink_url, "3.00")
    pay_with_browser(jhb_world.url, answer["redirect_url"])
    with httpx.Client(base_url=jhb_world.url) as browser:
        page = browser.get(answer["redirect_url"])
        assert "该订单已处理" in page.text


def test_resubmitting_the_same_order_returns_the_same_page(jhb: JhbTestClient, jhb_world) -> None:
    body = {
        "out_trade_no": order_no(),
        "amount": "4.00",
        "subject": "同一订单",
        "notify_url": f"{jhb_world.sink_url}/notify/ok/same",
        "return_url": "http://shop.example/return",
    }
    first = jhb.call("ebank.pay", body)
    again = jhb.call("ebank.pay", body)
    assert again["ret_code"] == "0000"
    assert (again["jhb_trade_no"], again["redirect_url"]) == (first["jhb_trade_no"], first["redirect_url"])
    assert jhb.call("ebank.pay", {**body, "amount": "5.00"})["ret_code"] == "1010"


def test_a_paid_order_number_cannot_be_reused(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "3.00")
    pay_with_browser(jhb_world.url, answer["redirect_url"])
    body = {
        "out_trade_no": out_trade_no,
        "amount": "3.00",
        "subject": "津门好物 茶叶礼盒",
        "notify_url": f"{jhb_world.sink_url}/notify/ok/{out_trade_no}",
        "return_url": "http://shop.example/cashier/return?from=jhb",
    }
    assert jhb.call("ebank.pay", body)["ret_code"] == "1010"


def test_an_order_closes_when_it_expires(jhb: JhbTestClient, jhb_world, clock_reset) -> None:
    now = clock_reset.local_now()
    _, past = ebank_pay(jhb, jhb_world.sink_url, "6.00", expire_time=now.strftime("%Y%m%d%H%M%S"))
    assert past["ret_code"] == "1004"
    expire_time = (now + timedelta(minutes=2)).strftime("%Y%m%d%H%M%S")
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "6.00", expire_time=expire_time)
    assert answer["expire_time"] == expire_time
    clock_reset.advance(180)
    query = jhb.call("pay.query", {"out_trade_no": out_trade_no})
    assert (query["status"], query["fail_code"]) == ("CLOSED", "1012")
    with httpx.Client(base_url=jhb_world.url) as browser:
        assert browser.get(answer["redirect_url"]).status_code == 410


def test_a_query_for_an_unknown_order_answers_1011(jhb: JhbTestClient) -> None:
    assert jhb.call("pay.query", {"out_trade_no": order_no()})["ret_code"] == "1011"
    assert jhb.call("pay.query", {"jhb_trade_no": "JHB000"})["ret_code"] == "1011"
    assert jhb.call("pay.query", {})["ret_code"] == "1004"


def test_a_partner_cannot_see_another_partners_orders(jhb: JhbTestClient, http, jhb_world) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "7.00")
    other = JhbTestClient(http, onboard(http))
    assert other.call("pay.query", {"out_trade_no": out_trade_no})["ret_code"] == "1011"
    assert other.call("pay.query", {"jhb_trade_no": answer["jhb_trade_no"]})["ret_code"] == "1011"


def test_a_frozen_card_is_declined_with_1062(jhb: JhbTestClient, jhb_world) -> None:
    # No JHB test card is frozen (BANKS.md), so freeze Li Na's card for this test only.
    books = jhb_world.context.books
    books.set_status(LI_NA_CARD, AccountStatus.FROZEN)
    try:
        out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "1.00")
        pay_with_browser(jhb_world.url, answer["redirect_url"], card_no=LI_NA_CARD)
    finally:
        books.set_status(LI_NA_CARD, AccountStatus.ACTIVE)
    assert jhb.open(jhb_world.sink.wait_for(out_trade_no)[0])["fail_code"] == "1062"


def test_an_amount_above_the_card_limit_is_declined_with_1061(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "50000.01")
    pay_with_browser(jhb_world.url, answer["redirect_url"])
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["fail_code"] == "1061"
