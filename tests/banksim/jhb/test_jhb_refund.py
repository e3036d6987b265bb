"""Refunds at JHB: partial and multiple refunds up to the original amount, queries and notifications."""

from __future__ import annotations

from jhbsim_kit import RESERVE, ZHANG_WEI_CARD, JhbTestClient, balance, ebank_pay, order_no, paid_order


def refund(jhb: JhbTestClient, sink_url: str, amount: str, **ref: str) -> tuple[str, dict]:
    out_refund_no = order_no("R")
    body = {"out_refund_no": out_refund_no, "amount": amount, "notify_url": f"{sink_url}/notify/ok/{out_refund_no}"}
    return out_refund_no, jhb.call("refund", {**body, **ref})


def test_a_partial_refund_returns_money_to_the_card_and_is_notified(jhb: JhbTestClient, http, jhb_world) -> None:
    out_trade_no, jhb_trade_no = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "100.00")
    card_before, reserve_before = balance(http, ZHANG_WEI_CARD), balance(http, RESERVE)
    out_refund_no, answer = refund(jhb, jhb_world.sink_url, "30.00", orig_out_trade_no=out_trade_no)
    assert (answer["ret_code"], answer["status"], answer["amount"]) == ("0000", "SUCCESS", "30.00")
    assert answer["jhb_trade_no"] == jhb_trade_no
    assert answer["jhb_refund_no"].startswith("JHR")
    assert balance(http, ZHANG_WEI_CARD) == card_before + 3000
    assert balance(http, RESERVE) == reserve_before - 3000
    envelope = jhb_world.sink.wait_for(out_refund_no)[0]
    assert envelope["head"]["service"] == "refund.notify"
    notice = jhb.open(envelope)
    assert (notice["out_refund_no"], notice["status"], notice["amount"]) == (out_refund_no, "SUCCESS", "30.00")
    assert notice["orig_out_trade_no"] == out_trade_no
    query = jhb.call("refund.query", {"out_refund_no": out_refund_no})
    assert (query["ret_code"], query["status"]) == ("0000", "SUCCESS")
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["refunded_amount"] == "30.00"


def test_several_refunds_may_add_up_to_the_payment_but_not_beyond(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, jhb_trade_no = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "50.00")
    assert refund(jhb, jhb_world.sink_url, "20.00", orig_out_trade_no=out_trade_no)[1]["ret_code"] == "0000"
    assert refund(jhb, jhb_world.sink_url, "20.00", jhb_trade_no=jhb_trade_no)[1]["ret_code"] == "0000"
    over = refund(jhb, jhb_world.sink_url, "10.01", orig_out_trade_no=out_trade_no)[1]
    assert over["ret_code"] == "1021"
    assert "10.00" in over["ret_msg"]
    assert refund(jhb, jhb_world.sink_url, "10.00", orig_out_trade_no=out_trade_no)[1]["ret_code"] == "0000"
    assert refund(jhb, jhb_world.sink_url, "0.01", orig_out_trade_no=out_trade_no)[1]["ret_code"] == "1021"
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["refunded_amount"] == "50.00"


def test_a_refund_larger_than_the_payment_is_refused(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, _ = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "5.00")
    assert refund(jhb, jhb_world.sink_url, "5.01", orig_out_trade_no=out_trade_no)[1]["ret_code"] == "1021"


def test_repeating_a_refund_request_does_not_refund_twice(jhb: JhbTestClient, http, jhb_world) -> None:
    out_trade_no, _ = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "8.00")
    body = {"out_refund_no": order_no("R"), "orig_out_trade_no": out_trade_no, "amount": "3.00"}
    first = jhb.call("refund", body)
    card = balance(http, ZHANG_WEI_CARD)
    again = jhb.call("refund", body)
    assert again["jhb_refund_no"] == first["jhb_refund_no"]
    assert again["ret_code"] == "0000"
    assert balance(http, ZHANG_WEI_CARD) == card
    assert jhb.call("refund", {**body, "amount": "4.00"})["ret_code"] == "1020"


def test_an_unpaid_or_unknown_order_cannot_be_refunded(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, _ = ebank_pay(jhb, jhb_world.sink_url, "9.00")
    assert refund(jhb, jhb_world.sink_url, "1.00", orig_out_trade_no=out_trade_no)[1]["ret_code"] == "1022"
    assert refund(jhb, jhb_world.sink_url, "1.00", orig_out_trade_no=order_no())[1]["ret_code"] == "1011"
    assert jhb.call("refund", {"out_refund_no": order_no("R"), "amount": "1.00"})["ret_code"] == "1004"
    assert refund(jhb, jhb_world.sink_url, "1.0", orig_out_trade_no=out_trade_no)[1]["ret_code"] == "1005"


def test_a_refund_query_for_an_unknown_refund_answers_1011(jhb: JhbTestClient) -> None:
    assert jhb.call("refund.query", {"out_refund_no": order_no("R")})["ret_code"] == "1011"
    assert jhb.call("refund.query", {})["ret_code"] == "1004"


def test_a_refund_without_notify_url_is_simply_not_notified(jhb: JhbTestClient, jhb_world) -> None:
    out_trade_no, _ = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "6.00")
    body = {"out_refund_no": order_no("R"), "orig_out_trade_no": out_trade_no, "amount": "6.00"}
    answer = jhb.call("refund", body)
    assert answer["status"] == "SUCCESS"
    by_jhb_no = jhb.call("refund.query", {"jhb_refund_no": answer["jhb_refund_no"]})
    assert by_jhb_no["out_refund_no"] == body["out_refund_no"]
