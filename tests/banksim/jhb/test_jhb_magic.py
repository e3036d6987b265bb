"""The magic amounts of BANKS.md at JHB, for online-banking payments and for refunds."""

from __future__ import annotations

import time
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from jhbsim_kit import ZHANG_WEI_CARD, JhbTestClient, balance, ebank_pay, order_no, paid_order, pay_with_browser

CLIENT_TIMEOUT_S = 1.0


def returned_status(done: httpx.Response) -> str:
    return parse_qs(urlsplit(done.headers["location"]).query)["status"][0]


def transfer(http: httpx.Client, bank_ref: str) -> dict | None:
    return next((t for t in http.get("/_sim/state").json()["transfers"] if t["bank_ref"] == bank_ref), None)


def notifications(http: httpx.Client, event_ref: str) -> list[dict]:
    return [n for n in http.get("/_sim/state").json()["notifications"] if n["event_ref"] == event_ref]


# Online banking


@pytest.mark.parametrize(("amount", "code"), [("10.51", "1051"), ("10.61", "1061")])
def test_51_and_61_decline_the_payment_at_confirmation(jhb: JhbTestClient, http, jhb_world, amount, code) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, amount)
    assert answer["ret_code"] == "0000"
    card = balance(http, ZHANG_WEI_CARD)
    done = pay_with_browser(jhb_world.url, answer["redirect_url"])
    assert returned_status(done) == "FAILED"
    notice = jhb.open(jhb_world.sink.wait_for(out_trade_no)[0])
    assert (notice["status"], notice["fail_code"]) == ("FAILED", code)
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["fail_code"] == code
    assert balance(http, ZHANG_WEI_CARD) == card
    assert transfer(http, answer["jhb_trade_no"]) is None


def test_91_refuses_the_order_before_anything_happens(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "10.91")
    assert answer["ret_code"] == "1091"
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["ret_code"] == "1011"


def test_94_is_processing_for_two_queries_then_succeeds(jhb: JhbTestClient, http, jhb_world) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "10.94")
    card = balance(http, ZHANG_WEI_CARD)
    done = pay_with_browser(jhb_world.url, answer["redirect_url"])
    assert returned_status(done) == "PROCESSING"
    for _ in range(2):
        assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["status"] == "PROCESSING"
    assert balance(http, ZHANG_WEI_CARD) == card
    assert jhb_world.sink.seen(out_trade_no) == []
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["status"] == "SUCCESS"
    assert balance(http, ZHANG_WEI_CARD) == card - 1094
    assert jhb.open(jhb_world.sink.wait_for(out_trade_no)[0])["status"] == "SUCCESS"


def test_96_creates_the_order_but_the_answer_never_comes(jhb: JhbTestClient, jhb_world) -> None:
    with pytest.raises(httpx.TimeoutException):
        ebank_pay(jhb, jhb_world.sink_url, "10.96", timeout_s=CLIENT_TIMEOUT_S)
    out_trade_no = jhb.last_request_body["out_trade_no"]
    query = jhb.call("pay.query", {"out_trade_no": out_trade_no})
    assert (query["ret_code"], query["status"]) == ("0000", "WAIT_PAY")


def test_97_creates_nothing_and_the_answer_never_comes(jhb: JhbTestClient, jhb_world) -> None:
    with pytest.raises(httpx.TimeoutException):
        ebank_pay(jhb, jhb_world.sink_url, "10.97", timeout_s=CLIENT_TIMEOUT_S)
    out_trade_no = jhb.last_request_body["out_trade_no"]
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["ret_code"] == "1011"


def test_98_succeeds_but_never_notifies(jhb: JhbTestClient, http, jhb_world) -> None:
    out_trade_no, jhb_trade_no = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "10.98")
    time.sleep(0.5)
    assert jhb_world.sink.seen(out_trade_no) == []
    assert [n["status"] for n in notifications(http, "N" + jhb_trade_no)] == ["suppressed"]
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["status"] == "SUCCESS"


def test_99_notifies_twice_the_second_time_later(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, _ = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "10.99")
    first, second = jhb_world.sink.wait_for(out_trade_no, count=2)
    assert first == second
    assert jhb.open(second)["status"] == "SUCCESS"


def test_93_succeeds_but_is_booked_on_tomorrows_statement(jhb: JhbTestClient, http, jhb_world) -> None:
    _, jhb_trade_no = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "10.93")
    booked = transfer(http, jhb_trade_no)
    assert booked is not None
    business_date = date.fromisoformat(booked["business_date"])
    assert date.fromisoformat(booked["statement_date"]) == business_date + timedelta(days=1)
    _, ordinary = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "10.00")
    plain = transfer(http, ordinary)
    assert plain is not None
    assert plain["statement_date"] == plain["business_date"]


# Refunds


@pytest.fixture
def paid(jhb: JhbTestClient, jhb_world) -> str:
    out_trade_no, _ = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "200.00")
    return out_trade_no


def refund_body(paid: str, amount: str, sink_url: str) -> dict[str, str]:
    out_refund_no = order_no("R")
    return {
        "out_refund_no": out_refund_no,
        "orig_out_trade_no": paid,
        "amount": amount,
        "notify_url": f"{sink_url}/notify/ok/{out_refund_no}",
    }


@pytest.mark.parametrize(("amount", "code"), [("1.51", "1051"), ("1.61", "1061")])
def test_51_and_61_decline_a_refund(jhb: JhbTestClient, http, jhb_world, paid, amount, code) -> None:
    card = balance(http, ZHANG_WEI_CARD)
    body = refund_body(paid, amount, jhb_world.sink_url)
    answer = jhb.call("refund", body)
    assert (answer["ret_code"], answer["status"], answer["fail_code"]) == (code, "FAILED", code)
    assert jhb.call("refund.query", {"out_refund_no": body["out_refund_no"]})["status"] == "FAILED"
    assert jhb.open(jhb_world.sink.wait_for(body["out_refund_no"])[0])["fail_code"] == code
    assert balance(http, ZHANG_WEI_CARD) == card
    # A declined refund does not use up the refundable amount.
    assert jhb.call("refund", refund_body(paid, "200.00", jhb_world.sink_url))["ret_code"] == "0000"


def test_91_refuses_a_refund_before_anything_happens(jhb: JhbTestClient, jhb_world, paid) -> None:
    body = refund_body(paid, "1.91", jhb_world.sink_url)
    assert jhb.call("refund", body)["ret_code"] == "1091"
    assert jhb.call("refund.query", {"out_refund_no": body["out_refund_no"]})["ret_code"] == "1011"


def test_94_refund_answers_2000_then_succeeds_on_the_third_query(jhb: JhbTestClient, http, jhb_world, paid) -> None:
    card = balance(http, ZHANG_WEI_CARD)
    body = refund_body(paid, "1.94", jhb_world.sink_url)
    answer = jhb.call("refund", body)
    assert (answer["ret_code"], answer["status"]) == ("2000", "PROCESSING")
    for _ in range(2):
        assert jhb.call("refund.query", {"out_refund_no": body["out_refund_no"]})["status"] == "PROCESSING"
    assert balance(http, ZHANG_WEI_CARD) == card
    assert jhb.call("refund.query", {"out_refund_no": body["out_refund_no"]})["status"] == "SUCCESS"
    assert balance(http, ZHANG_WEI_CARD) == card + 194
    assert jhb.open(jhb_world.sink.wait_for(body["out_refund_no"])[0])["status"] == "SUCCESS"


def test_96_refund_moves_the_money_but_the_answer_never_comes(jhb: JhbTestClient, http, jhb_world, paid) -> None:
    card = balance(http, ZHANG_WEI_CARD)
    body = refund_body(paid, "1.96", jhb_world.sink_url)
    with pytest.raises(httpx.TimeoutException):
        jhb.call("refund", body, timeout_s=CLIENT_TIMEOUT_S)
    assert jhb.call("refund.query", {"out_refund_no": body["out_refund_no"]})["status"] == "SUCCESS"
    assert balance(http, ZHANG_WEI_CARD) == card + 196


def test_97_refund_does_nothing_and_the_answer_never_comes(jhb: JhbTestClient, http, jhb_world, paid) -> None:
    card = balance(http, ZHANG_WEI_CARD)
    body = refund_body(paid, "1.97", jhb_world.sink_url)
    with pytest.raises(httpx.TimeoutException):
        jhb.call("refund", body, timeout_s=CLIENT_TIMEOUT_S)
    assert jhb.call("refund.query", {"out_refund_no": body["out_refund_no"]})["ret_code"] == "1011"
    assert balance(http, ZHANG_WEI_CARD) == card


def test_98_refund_succeeds_without_notification(jhb: JhbTestClient, jhb_world, paid) -> None:
    body = refund_body(paid, "1.98", jhb_world.sink_url)
    assert jhb.call("refund", body)["ret_code"] == "0000"
    time.sleep(0.5)
    assert jhb_world.sink.seen(body["out_refund_no"]) == []


def test_99_refund_is_notified_twice(jhb: JhbTestClient, jhb_world, paid) -> None:
    body = refund_body(paid, "1.99", jhb_world.sink_url)
    assert jhb.call("refund", body)["ret_code"] == "0000"
    assert len(jhb_world.sink.wait_for(body["out_refund_no"], count=2)) == 2


def test_93_refund_is_booked_on_tomorrows_statement(jhb: JhbTestClient, http, jhb_world, paid) -> None:
    answer = jhb.call("refund", refund_body(paid, "1.93", jhb_world.sink_url))
    booked = transfer(http, answer["jhb_refund_no"])
    assert booked is not None
    assert date.fromisoformat(booked["statement_date"]) == date.fromisoformat(booked["business_date"]) + timedelta(
        days=1
    )
