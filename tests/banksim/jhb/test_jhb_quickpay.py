"""JHB quick pay (协议支付) over real loopback HTTP: bind.apply → SMS → bind.confirm → no_agree,
bind.query, unbind, and pay with the agreement, with every failure code and the magic amounts.

The envelopes are built and opened by the independent gmalg-based test client (jhbsim_kit); the
SMS code is read from `GET /_sim/sms?phone=`, as a tester or a demo would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from jhbsim_kit import LI_NA_CARD, RESERVE, ZHANG_WEI_CARD, JhbTestClient, balance, ebank_pay, onboard, order_no

from banksim.core.books import AccountStatus
from banksim.core.clock import SimClock

CLIENT_TIMEOUT_S = 1.0
ZHANG = {"card_no": ZHANG_WEI_CARD, "acct_name": "张伟", "id_no": "110105198503120012", "bind_mob": "13800138001"}
LI_NA = {"card_no": LI_NA_CARD, "acct_name": "李娜", "id_no": "120110197801010039", "bind_mob": "13800138003"}


def sms(http: httpx.Client, phone: str) -> list[dict[str, Any]]:
    return http.get("/_sim/sms", params={"phone": phone}).json()  # type: ignore[no-any-return]


def latest_code(http: httpx.Client, phone: str) -> str:
    return str(sms(http, phone)[0]["code"])


def apply(jhb: JhbTestClient, holder: dict[str, str] = ZHANG, **overrides: str) -> dict[str, Any]:
    return jhb.call("bind.apply", {**holder, "id_type": "0", "user_id": "member-42", **overrides})


def bind(jhb: JhbTestClient, http: httpx.Client, holder: dict[str, str] = ZHANG) -> str:
    applied = apply(jhb, holder)
    assert applied["ret_code"] == "0000", applied
    code = latest_code(http, holder["bind_mob"])
    confirmed = jhb.call("bind.confirm", {"token": applied["token"], "verify_code": code})
    assert confirmed["ret_code"] == "0000", confirmed
    return str(confirmed["no_agree"])


def quick_pay(
    jhb: JhbTestClient, sink_url: str, no_agree: str, amount: str, *, timeout_s: float = 10.0
) -> tuple[str, dict[str, Any]]:
    out_trade_no = order_no("Q")
    body = {
        "no_agree": no_agree,
        "out_trade_no": out_trade_no,
        "amount": amount,
        "subject": "津门好物 茶叶礼盒",
        "notify_url": f"{sink_url}/notify/ok/{out_trade_no}",
    }
    return out_trade_no, jhb.call("pay", body, timeout_s=timeout_s)


def notifications(http: httpx.Client, event_ref: str) -> list[dict[str, Any]]:
    return [n for n in http.get("/_sim/state").json()["notifications"] if n["event_ref"] == event_ref]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.fixture
def agreement(jhb: JhbTestClient, http: httpx.Client) -> str:
    return bind(jhb, http)


@pytest.fixture
def frozen_li_na(jhb_world: Any) -> Iterator[str]:
    books = jhb_world.context.books
    books.set_status(LI_NA_CARD, AccountStatus.FROZEN)
    yield LI_NA_CARD
    books.set_status(LI_NA_CARD, AccountStatus.ACTIVE)


# Binding


def test_the_code_goes_to_the_reserved_phone_and_confirming_it_gives_an_agreement(
    jhb: JhbTestClient, http: httpx.Client
) -> None:
    before = len(sms(http, "13800138001"))
    applied = apply(jhb)
    assert applied["ret_code"] == "0000"
    assert len(applied["token"]) == 32
    assert (applied["card_no"], applied["bind_mob"]) == ("622799*********0013", "138****8001")
    assert len(applied["token_expire_time"]) == 14
    messages = sms(http, "13800138001")
    assert len(messages) == before + 1
    assert "津海银行" in messages[0]["text"]
    assert "0013" in messages[0]["text"]
    confirmed = jhb.call("bind.confirm", {"token": applied["token"], "verify_code": messages[0]["code"]})
    assert confirmed["ret_code"] == "0000"
    assert confirmed["no_agree"].startswith("JHA")
    assert len(confirmed["no_agree"]) == 21
    assert (confirmed["card_no"], confirmed["bank_code"], confirmed["user_id"]) == (
        "622799*********0013",
        "JHB",
        "member-42",
    )
    query = jhb.call("bind.query", {"no_agree": confirmed["no_agree"]})
    assert (query["ret_code"], query["status"], query["unbind_time"]) == ("0000", "ACTIVE", "")


def test_a_retried_confirm_and_a_second_binding_give_the_same_agreement(jhb: JhbTestClient, http: httpx.Client) -> None:
    applied = apply(jhb)
    code = latest_code(http, "13800138001")
    first = jhb.call("bind.confirm", {"token": applied["token"], "verify_code": code})
    again = jhb.call("bind.confirm", {"token": applied["token"], "verify_code": code})
    assert again["no_agree"] == first["no_agree"]
    assert bind(jhb, http) == first["no_agree"]


@pytest.mark.parametrize(
    "overrides",
    [{"acct_name": "张三"}, {"id_no": "110105198503120020"}, {"bind_mob": "13900000000"}],
    ids=["name", "id", "phone"],
)
def test_elements_that_do_not_match_are_refused_with_1064_and_no_sms(
    jhb: JhbTestClient, http: httpx.Client, overrides: dict[str, str]
) -> None:
    before = len(sms(http, "13800138001"))
    assert apply(jhb, **overrides)["ret_code"] == "1064"
    assert len(sms(http, "13800138001")) == before
    assert sms(http, "13900000000") == []


def test_a_frozen_card_is_refused_with_1062(jhb: JhbTestClient, http: httpx.Client, frozen_li_na: str) -> None:
    assert apply(jhb, LI_NA)["ret_code"] == "1062"


@pytest.mark.parametrize(
    "card_no",
    ["6227990000000000014", "6217990000000000014", "6227990000000001003", "62279900"],
    ids=["luhn", "other-bank", "unknown", "short"],
)
def test_an_invalid_card_is_refused_with_1065(jhb: JhbTestClient, card_no: str) -> None:
    assert apply(jhb, card_no=card_no)["ret_code"] == "1065"


def test_five_wrong_codes_lock_the_token_with_1066(jhb: JhbTestClient, http: httpx.Client) -> None:
    applied = apply(jhb)
    code = latest_code(http, "13800138001")
    body = {"token": applied["token"], "verify_code": wrong(code)}
    codes = [jhb.call("bind.confirm", body)["ret_code"] for _ in range(5)]
    assert codes == ["1063", "1063", "1063", "1063", "1066"]
    assert jhb.call("bind.confirm", {"token": applied["token"], "verify_code": code})["ret_code"] == "1066"


def test_an_expired_code_is_refused_with_1063(jhb: JhbTestClient, http: httpx.Client, clock_reset: SimClock) -> None:
    applied = apply(jhb)
    code = latest_code(http, "13800138001")
    clock_reset.advance(301)
    assert jhb.call("bind.confirm", {"token": applied["token"], "verify_code": code})["ret_code"] == "1063"


def test_a_token_that_is_unknown_or_another_partners_is_refused_with_1067(
    jhb: JhbTestClient, http: httpx.Client
) -> None:
    applied = apply(jhb)
    code = latest_code(http, "13800138001")
    stranger = JhbTestClient(http, onboard(http))
    assert stranger.call("bind.confirm", {"token": applied["token"], "verify_code": code})["ret_code"] == "1067"
    assert jhb.call("bind.confirm", {"token": "0" * 32, "verify_code": code})["ret_code"] == "1067"
    assert jhb.call("bind.confirm", {"token": applied["token"], "verify_code": code})["ret_code"] == "0000"


# Paying with the agreement


def test_pay_debits_the_card_notifies_and_can_be_queried_and_refunded(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str
) -> None:
    card, reserve = balance(http, ZHANG_WEI_CARD), balance(http, RESERVE)
    out_trade_no, answer = quick_pay(jhb, jhb_world.sink_url, agreement, "12.34")
    assert (answer["ret_code"], answer["status"], answer["no_agree"]) == ("0000", "SUCCESS", agreement)
    assert answer["card_no"] == "622799*********0013"
    assert balance(http, ZHANG_WEI_CARD) == card - 1234
    assert balance(http, RESERVE) == reserve + 1234
    envelope = jhb_world.sink.wait_for(out_trade_no)[0]
    assert envelope["head"]["service"] == "pay.notify"
    assert envelope["head"]["req_no"] == "N" + answer["jhb_trade_no"]
    notice = jhb.open(envelope)
    assert (notice["status"], notice["amount"], notice["out_trade_no"]) == ("SUCCESS", "12.34", out_trade_no)
    query = jhb.call("pay.query", {"out_trade_no": out_trade_no})
    assert (query["ret_code"], query["status"], query["jhb_trade_no"]) == ("0000", "SUCCESS", answer["jhb_trade_no"])
    out_refund_no = order_no("R")
    refund = jhb.call("refund", {"out_refund_no": out_refund_no, "orig_out_trade_no": out_trade_no, "amount": "2.34"})
    assert (refund["ret_code"], refund["status"]) == ("0000", "SUCCESS")
    assert balance(http, ZHANG_WEI_CARD) == card - 1000


def test_paying_again_with_the_same_order_number_debits_once(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str
) -> None:
    card = balance(http, ZHANG_WEI_CARD)
    out_trade_no, first = quick_pay(jhb, jhb_world.sink_url, agreement, "3.00")
    again = jhb.call("pay", jhb.last_request_body)
    assert (again["ret_code"], again["jhb_trade_no"]) == ("0000", first["jhb_trade_no"])
    assert balance(http, ZHANG_WEI_CARD) == card - 300
    changed = {**jhb.last_request_body, "amount": "4.00"}
    assert jhb.call("pay", changed)["ret_code"] == "1010"
    assert out_trade_no == changed["out_trade_no"]


def test_a_card_without_the_money_fails_with_1051(jhb: JhbTestClient, http: httpx.Client, jhb_world: Any) -> None:
    no_agree = bind(jhb, http, LI_NA)
    out_trade_no, answer = quick_pay(jhb, jhb_world.sink_url, no_agree, "9000.00")
    assert (answer["ret_code"], answer["status"], answer["fail_code"]) == ("1051", "FAILED", "1051")
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["status"] == "FAILED"


def test_after_unbinding_the_agreement_no_longer_pays(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str
) -> None:
    first = jhb.call("unbind", {"no_agree": agreement})
    assert (first["ret_code"], first["status"]) == ("0000", "UNBOUND")
    again = jhb.call("unbind", {"no_agree": agreement})
    assert (again["ret_code"], again["unbind_time"]) == ("0000", first["unbind_time"])
    assert jhb.call("bind.query", {"no_agree": agreement})["status"] == "UNBOUND"
    card = balance(http, ZHANG_WEI_CARD)
    out_trade_no, answer = quick_pay(jhb, jhb_world.sink_url, agreement, "1.00")
    assert answer["ret_code"] == "1068"
    assert balance(http, ZHANG_WEI_CARD) == card
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["ret_code"] == "1011"
    assert bind(jhb, http) != agreement


def test_another_partners_agreement_is_refused_with_1068(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str
) -> None:
    stranger = JhbTestClient(http, onboard(http))
    assert quick_pay(stranger, jhb_world.sink_url, agreement, "1.00")[1]["ret_code"] == "1068"
    assert stranger.call("bind.query", {"no_agree": agreement})["ret_code"] == "1068"
    assert stranger.call("unbind", {"no_agree": agreement})["ret_code"] == "1068"


# Magic amounts on pay


@pytest.mark.parametrize(("amount", "code"), [("5.51", "1051"), ("5.61", "1061")])
def test_51_and_61_fail_the_payment_and_notify(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str, amount: str, code: str
) -> None:
    card = balance(http, ZHANG_WEI_CARD)
    out_trade_no, answer = quick_pay(jhb, jhb_world.sink_url, agreement, amount)
    assert (answer["ret_code"], answer["status"], answer["fail_code"]) == (code, "FAILED", code)
    notice = jhb.open(jhb_world.sink.wait_for(out_trade_no)[0])
    assert (notice["status"], notice["fail_code"]) == ("FAILED", code)
    assert balance(http, ZHANG_WEI_CARD) == card


def test_91_refuses_the_payment_before_anything_happens(jhb: JhbTestClient, jhb_world: Any, agreement: str) -> None:
    out_trade_no, answer = quick_pay(jhb, jhb_world.sink_url, agreement, "5.91")
    assert answer["ret_code"] == "1091"
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["ret_code"] == "1011"


def test_94_is_processing_for_two_queries_then_succeeds(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str
) -> None:
    card = balance(http, ZHANG_WEI_CARD)
    out_trade_no, answer = quick_pay(jhb, jhb_world.sink_url, agreement, "5.94")
    assert (answer["ret_code"], answer["status"]) == ("2000", "PROCESSING")
    for _ in range(2):
        assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["status"] == "PROCESSING"
    assert balance(http, ZHANG_WEI_CARD) == card
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["status"] == "SUCCESS"
    assert balance(http, ZHANG_WEI_CARD) == card - 594
    assert jhb.open(jhb_world.sink.wait_for(out_trade_no)[0])["status"] == "SUCCESS"


def test_96_pays_but_the_answer_never_comes(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str
) -> None:
    card = balance(http, ZHANG_WEI_CARD)
    with pytest.raises(httpx.TimeoutException):
        quick_pay(jhb, jhb_world.sink_url, agreement, "5.96", timeout_s=CLIENT_TIMEOUT_S)
    out_trade_no = jhb.last_request_body["out_trade_no"]
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["status"] == "SUCCESS"
    assert balance(http, ZHANG_WEI_CARD) == card - 596
    assert jhb.open(jhb_world.sink.wait_for(out_trade_no)[0])["status"] == "SUCCESS"


def test_97_does_nothing_and_the_answer_never_comes(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str
) -> None:
    card = balance(http, ZHANG_WEI_CARD)
    with pytest.raises(httpx.TimeoutException):
        quick_pay(jhb, jhb_world.sink_url, agreement, "5.97", timeout_s=CLIENT_TIMEOUT_S)
    out_trade_no = jhb.last_request_body["out_trade_no"]
    assert jhb.call("pay.query", {"out_trade_no": out_trade_no})["ret_code"] == "1011"
    assert balance(http, ZHANG_WEI_CARD) == card


def test_98_pays_but_never_notifies(jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str) -> None:
    out_trade_no, answer = quick_pay(jhb, jhb_world.sink_url, agreement, "5.98")
    assert answer["status"] == "SUCCESS"
    time.sleep(0.5)
    assert jhb_world.sink.seen(out_trade_no) == []
    assert [n["status"] for n in notifications(http, "N" + answer["jhb_trade_no"])] == ["suppressed"]


def test_99_pays_and_notifies_twice(jhb: JhbTestClient, jhb_world: Any, agreement: str) -> None:
    out_trade_no, answer = quick_pay(jhb, jhb_world.sink_url, agreement, "5.99")
    assert answer["status"] == "SUCCESS"
    first, second = jhb_world.sink.wait_for(out_trade_no, count=2)
    assert first == second


def test_93_pays_onto_tomorrows_statement(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str
) -> None:
    _, answer = quick_pay(jhb, jhb_world.sink_url, agreement, "5.93")
    booked = next(t for t in http.get("/_sim/state").json()["transfers"] if t["bank_ref"] == answer["jhb_trade_no"])
    assert booked["kind"] == "jhb_quick_pay"
    assert date.fromisoformat(booked["statement_date"]) == date.fromisoformat(booked["business_date"]) + timedelta(
        days=1
    )


# The refuse_new_orders fault


@pytest.fixture
def faults(http: httpx.Client) -> Iterator[str]:
    """JHB's fault switch; reset afterwards because the world is shared by the whole session."""
    yield "/_sim/faults"
    http.post("/_sim/faults", json={"reset": True}).raise_for_status()


def test_refuse_new_orders_answers_every_new_payment_1091_but_settles_the_old_ones(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any, agreement: str, faults: str
) -> None:
    # Paid before the fault: its query and refund must keep working while the fault is on.
    earlier, paid = quick_pay(jhb, jhb_world.sink_url, agreement, "15.00")
    assert paid["ret_code"] == "0000"
    assert http.post(faults, json={"refuse_new_orders": True}).json()["refuse_new_orders"] is True
    card = balance(http, ZHANG_WEI_CARD)

    # Any amount, not only a magic 91, gets JHB's own signed 1091 and nothing is recorded.
    refused, answer = quick_pay(jhb, jhb_world.sink_url, agreement, "12.34")
    assert answer["ret_code"] == "1091"
    assert jhb.call("pay.query", {"out_trade_no": refused})["ret_code"] == "1011"
    online, opened = ebank_pay(jhb, jhb_world.sink_url, "23.45")
    assert opened["ret_code"] == "1091"
    assert jhb.call("pay.query", {"out_trade_no": online})["ret_code"] == "1011"

    # What is already there keeps working: the agreement, the query, the refund and its notification.
    assert jhb.call("bind.query", {"no_agree": agreement})["status"] == "ACTIVE"
    assert jhb.call("pay.query", {"out_trade_no": earlier})["status"] == "SUCCESS"
    body = {"out_refund_no": order_no("R"), "orig_out_trade_no": earlier, "amount": "15.00",
            "notify_url": f"{jhb_world.sink_url}/notify/ok/refund-during-fault"}  # fmt: skip
    assert jhb.call("refund", body)["status"] == "SUCCESS"
    jhb_world.sink.wait_for("refund-during-fault")
    assert balance(http, ZHANG_WEI_CARD) == card + 1500

    # Reset brings new payments back.
    assert http.post(faults, json={"reset": True}).json()["refuse_new_orders"] is False
    assert quick_pay(jhb, jhb_world.sink_url, agreement, "12.34")[1]["ret_code"] == "0000"
