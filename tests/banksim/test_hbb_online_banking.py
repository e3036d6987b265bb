"""HBB online banking over real HTTP: the payer logs in, confirms, and the bank debits, notifies
and sends the browser back to the platform with a signed result (BANKS.md "HBB")."""

from __future__ import annotations

import httpx

from tests.banksim.acp_kit import Browser, Platform, Receiver, beijing_now, post_back, wait_for
from tests.banksim.conftest import balance

ZHANG_WEI = "6217990000000000014"
WANG_FANG = "6217990000000000022"
LIU_YANG_FROZEN = "6217990000000000030"
ZHAO_LEI_TEN_YUAN = "6217990000000000519"
RESERVE = "6217990000000000998"
FRONT = "https://shop.example/return"


def test_a_payer_logs_in_confirms_and_the_card_pays_the_reserve(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    card_before, reserve_before = balance(hbb_url, WANG_FANG), balance(hbb_url, RESERVE)
    fields = platform.consume(12_345, FRONT, f"{receiver.url}/ok/flow")

    login = browser.open_gateway(fields)
    assert "登录" in login.response.text
    assert "123.45" in login.response.text
    confirm = browser.submit(login, card_no=WANG_FANG, password="Passw0rd!")
    assert "确认支付" in confirm.response.text
    assert "621799*********0022" in confirm.response.text
    result = browser.submit(confirm)

    front = result.front_post
    assert result.resp_code == "00"
    assert result.page.forms[0]["action"] == FRONT
    platform.verify_from_hbb(front)
    assert front["respCode"] == "00"
    assert front["orderId"] == fields["orderId"]
    assert len(front["queryId"]) == 21
    assert len(front["traceNo"]) == 6
    assert len(front["settleDate"]) == 4
    assert front["accNo"] == "621799*********0022"
    assert balance(hbb_url, WANG_FANG) == card_before - 12_345
    assert balance(hbb_url, RESERVE) == reserve_before + 12_345
    wait_for(lambda: receiver.at("/ok/flow"))
    notified = receiver.at("/ok/flow")[0].fields
    platform.verify_from_hbb(notified)
    assert notified["queryId"] == front["queryId"]
    assert notified["respCode"] == "00"


def test_a_wrong_password_lets_the_payer_retry_and_three_fail_the_order_with_55(
    platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    fields = platform.consume(1_000, FRONT, f"{receiver.url}/ok/password")
    page = browser.open_gateway(fields)
    page = browser.submit(page, card_no=ZHANG_WEI, password="wrong")
    assert "登录密码错误" in page.response.text
    page = browser.submit(page, card_no=ZHANG_WEI, password="wrong")
    page = browser.submit(page, card_no=ZHANG_WEI, password="wrong")
    assert page.resp_code == "55"
    assert page.front_post["respCode"] == "55"
    wait_for(lambda: receiver.at("/ok/password"))
    assert receiver.at("/ok/password")[0].fields["respCode"] == "55"


def test_an_unknown_card_is_shown_as_14_and_the_payer_may_retry(platform: Platform, browser: Browser) -> None:
    page = browser.open_gateway(platform.consume(1_000, FRONT, "http://127.0.0.1:9/unused"))
    page = browser.submit(page, card_no="6227990000000000013", password="Passw0rd!")
    assert "14" in page.response.text
    assert "无效卡号" in page.response.text
    page = browser.submit(page, card_no="6217990000000000015", password="Passw0rd!")
    assert "无效卡号" in page.response.text


def test_a_frozen_card_is_declined_with_62(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    before = balance(hbb_url, LIU_YANG_FROZEN)
    result = browser.pay(platform.consume(1_000, FRONT, f"{receiver.url}/ok/frozen"), LIU_YANG_FROZEN)
    assert result.resp_code == "62"
    assert result.front_post["respCode"] == "62"
    assert balance(hbb_url, LIU_YANG_FROZEN) == before
    wait_for(lambda: receiver.at("/ok/frozen"))
    assert receiver.at("/ok/frozen")[0].fields["respCode"] == "62"


def test_zhao_lei_cannot_pay_more_than_his_ten_yuan(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    result = browser.pay(platform.consume(1_200, FRONT, f"{receiver.url}/ok/zhao"), ZHAO_LEI_TEN_YUAN)
    assert result.front_post["respCode"] == "51"
    assert balance(hbb_url, ZHAO_LEI_TEN_YUAN) == 1_000


def test_an_amount_over_the_cards_limit_is_declined_with_61(platform: Platform, browser: Browser) -> None:
    result = browser.pay(platform.consume(5_000_100, FRONT, "http://127.0.0.1:9/unused"), ZHANG_WEI)
    assert result.front_post["respCode"] == "61"


def test_an_order_past_its_pay_timeout_fails_with_69_and_is_notified(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    fields = platform.consume(1_000, FRONT, f"{receiver.url}/ok/expired", payTimeout=beijing_now(-60))
    page = browser.open_gateway(fields)
    assert page.resp_code == "69"
    assert page.front_post["respCode"] == "69"
    wait_for(lambda: receiver.at("/ok/expired"))
    query = post_back(f"{hbb_url}/gateway/api/queryTrans.do", platform.query(fields["orderId"], fields["txnTime"]))
    assert query["respCode"] == "00"
    assert query["origRespCode"] == "69"


def test_a_tampered_form_is_refused_with_11_and_nothing_is_recorded(
    hbb_url: str, platform: Platform, browser: Browser
) -> None:
    fields = platform.consume(1_000, FRONT, "http://127.0.0.1:9/unused")
    tampered = {**fields, "txnAmt": "1"}
    page = browser.open_gateway(tampered)
    assert page.resp_code == "11"
    query = post_back(f"{hbb_url}/gateway/api/queryTrans.do", platform.query(fields["orderId"], fields["txnTime"]))
    assert query["respCode"] == "34"


def test_a_request_signed_with_another_key_is_refused_with_11(hbb_url: str, platform: Platform) -> None:
    stranger = Platform.create()
    stranger.pack = platform.pack
    answer = post_back(f"{hbb_url}/gateway/api/queryTrans.do", stranger.query("ABCDEFGH1", beijing_now()))
    assert answer["respCode"] == "11"
    platform.verify_from_hbb(answer)


def test_a_reused_order_id_the_same_day_is_refused_with_12(platform: Platform, browser: Browser) -> None:
    fields = platform.consume(1_000, FRONT, "http://127.0.0.1:9/unused")
    assert browser.open_gateway(fields).response.status_code == 200
    again = browser.open_gateway(platform.consume(2_000, FRONT, "http://127.0.0.1:9/unused", orderId=fields["orderId"]))
    assert again.resp_code == "12"


def test_malformed_fields_are_refused_with_30(platform: Platform, browser: Browser) -> None:
    page = browser.open_gateway(platform.consume(1_000, FRONT, "http://127.0.0.1:9/unused", orderId="short"))
    assert page.resp_code == "30"


def test_the_login_page_is_plain_html_in_chinese(hbb_url: str, platform: Platform, browser: Browser) -> None:
    page = browser.open_gateway(platform.consume(1_000, FRONT, "http://127.0.0.1:9/unused"))
    assert page.response.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in page.response.text
    assert httpx.get(f"{hbb_url}/sms").status_code == 200
