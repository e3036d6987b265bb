"""Every magic amount (BANKS.md) on HBB's online-banking consume and on its refund."""

from __future__ import annotations

import time
from datetime import date, timedelta

import httpx
import pytest

from tests.banksim.acp_kit import Browser, Platform, Receiver, post_back, wait_for
from tests.banksim.conftest import balance
from tests.banksim.hbb_flows import FRONT, RESERVE, ZHANG_WEI, pay, query, refund

QUIET_S = 0.4  # with the schedule scaled by 0.001 every retry would have happened by now


def _state(hbb_url: str) -> dict[str, object]:
    return httpx.get(f"{hbb_url}/_sim/state").json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("amount_minor", "code"), [(151, "51"), (261, "61")])
def test_consume_declines_by_magic_amount(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser, amount_minor: int, code: str
) -> None:
    before = balance(hbb_url, ZHANG_WEI)
    result = pay(browser, platform, amount_minor, f"{receiver.url}/ok/magic-{code}")
    assert result["respCode"] == code
    assert balance(hbb_url, ZHANG_WEI) == before
    wait_for(lambda: receiver.at(f"/ok/magic-{code}"))
    assert receiver.at(f"/ok/magic-{code}")[0].fields["respCode"] == code


def test_consume_91_is_refused_before_processing(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    fields = platform.consume(191, FRONT, f"{receiver.url}/ok/magic-91")
    page = browser.open_gateway(fields)
    assert page.front_post["respCode"] == "91"
    platform.verify_from_hbb(page.front_post)
    assert query(hbb_url, platform, fields["orderId"], fields["txnTime"])["respCode"] == "34"
    time.sleep(QUIET_S)
    assert not receiver.at("/ok/magic-91")


def test_consume_94_is_processing_for_two_queries_then_succeeds(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    before = balance(hbb_url, ZHANG_WEI)
    result = pay(browser, platform, 194, f"{receiver.url}/ok/magic-94")
    assert result["respCode"] == "05"
    assert balance(hbb_url, ZHANG_WEI) == before
    answers = [query(hbb_url, platform, result["orderId"], result["requestTxnTime"]) for _ in range(3)]
    assert [a["origRespCode"] for a in answers] == ["05", "05", "00"]
    assert balance(hbb_url, ZHANG_WEI) == before - 194
    wait_for(lambda: receiver.at("/ok/magic-94"))
    assert receiver.at("/ok/magic-94")[0].fields["respCode"] == "00"
    assert query(hbb_url, platform, result["orderId"], result["requestTxnTime"])["origRespCode"] == "00"


def test_consume_96_moves_the_money_but_the_answer_never_comes(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    before = balance(hbb_url, ZHANG_WEI)
    fields = platform.consume(196, FRONT, f"{receiver.url}/ok/magic-96")
    confirm = browser.submit(browser.open_gateway(fields), card_no=ZHANG_WEI, password="Passw0rd!")
    with pytest.raises(httpx.TimeoutException):
        browser.submit(confirm, timeout_s=0.5)
    assert balance(hbb_url, ZHANG_WEI) == before - 196
    wait_for(lambda: receiver.at("/ok/magic-96"))
    assert query(hbb_url, platform, fields["orderId"], fields["txnTime"])["origRespCode"] == "00"


def test_consume_97_is_not_processed_and_the_answer_never_comes(
    hbb_url: str, platform: Platform, browser: Browser
) -> None:
    fields = platform.consume(197, FRONT, "http://127.0.0.1:9/x")
    with pytest.raises(httpx.TimeoutException):
        browser.open_gateway(fields, timeout_s=0.5)
    assert query(hbb_url, platform, fields["orderId"], fields["txnTime"])["respCode"] == "34"


def test_consume_98_succeeds_without_a_notification(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    result = pay(browser, platform, 198, f"{receiver.url}/ok/magic-98")
    assert result["respCode"] == "00"
    time.sleep(QUIET_S)
    assert not receiver.at("/ok/magic-98")
    notes = [n for n in _state(hbb_url)["notifications"] if n["event_ref"].startswith(result["queryId"])]  # type: ignore[attr-defined]
    assert [n["status"] for n in notes] == ["suppressed"]


def test_consume_99_is_notified_twice_the_second_time_later(
    platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    result = pay(browser, platform, 199, f"{receiver.url}/ok/magic-99")
    wait_for(lambda: len(receiver.at("/ok/magic-99")) == 2)
    first, second = receiver.at("/ok/magic-99")
    assert first.fields == second.fields
    assert first.fields["queryId"] == result["queryId"]


def test_consume_93_lands_on_the_next_days_statement(hbb_url: str, platform: Platform, browser: Browser) -> None:
    result = pay(browser, platform, 193, "http://127.0.0.1:9/x")
    state = _state(hbb_url)
    business_date = date.fromisoformat(state["clock"]["business_date"])  # type: ignore[index]
    transfer = next(t for t in state["transfers"] if t["bank_ref"] == result["queryId"])  # type: ignore[attr-defined]
    assert transfer["business_date"] == business_date.isoformat()
    assert transfer["statement_date"] == (business_date + timedelta(days=1)).isoformat()
    assert result["settleDate"] == f"{business_date + timedelta(days=1):%m%d}"


@pytest.fixture
def paid(browser: Browser, platform: Platform) -> dict[str, str]:
    return pay(browser, platform, 50_000, "http://127.0.0.1:9/x")


@pytest.mark.parametrize(("amount_minor", "code"), [(1_051, "51"), (1_061, "61"), (1_091, "91")])
def test_refund_declines_by_magic_amount(
    hbb_url: str, platform: Platform, receiver: Receiver, paid: dict[str, str], amount_minor: int, code: str
) -> None:
    reserve = balance(hbb_url, RESERVE)
    answer = refund(hbb_url, platform, paid["queryId"], amount_minor, f"{receiver.url}/ok/refund-{code}")
    assert answer["respCode"] == code
    assert balance(hbb_url, RESERVE) == reserve
    time.sleep(QUIET_S)
    assert not receiver.at(f"/ok/refund-{code}")


def test_refund_94_is_processing_for_two_queries_then_succeeds(
    hbb_url: str, platform: Platform, receiver: Receiver, paid: dict[str, str]
) -> None:
    answer = refund(hbb_url, platform, paid["queryId"], 1_094, f"{receiver.url}/ok/refund-94")
    assert answer["respCode"] == "05"
    codes = [
        query(hbb_url, platform, answer["requestOrderId"], answer["requestTxnTime"])["origRespCode"] for _ in range(3)
    ]
    assert codes == ["05", "05", "00"]
    wait_for(lambda: receiver.at("/ok/refund-94"))


def test_refund_96_moves_the_money_but_the_answer_never_comes(
    hbb_url: str, platform: Platform, receiver: Receiver, paid: dict[str, str]
) -> None:
    reserve = balance(hbb_url, RESERVE)
    fields = platform.refund(paid["queryId"], 1_096, f"{receiver.url}/ok/refund-96")
    with pytest.raises(httpx.TimeoutException):
        post_back(f"{hbb_url}/gateway/api/backTransReq.do", fields, timeout_s=0.5)
    assert balance(hbb_url, RESERVE) == reserve - 1_096
    wait_for(lambda: receiver.at("/ok/refund-96"))


def test_refund_97_is_not_processed_and_the_answer_never_comes(
    hbb_url: str, platform: Platform, paid: dict[str, str]
) -> None:
    reserve = balance(hbb_url, RESERVE)
    fields = platform.refund(paid["queryId"], 1_097, "http://127.0.0.1:9/x")
    with pytest.raises(httpx.TimeoutException):
        post_back(f"{hbb_url}/gateway/api/backTransReq.do", fields, timeout_s=0.5)
    assert balance(hbb_url, RESERVE) == reserve
    assert query(hbb_url, platform, fields["orderId"], fields["txnTime"])["respCode"] == "34"


def test_refund_98_99_and_93_follow_the_table(
    hbb_url: str, platform: Platform, receiver: Receiver, paid: dict[str, str]
) -> None:
    silent = refund(hbb_url, platform, paid["queryId"], 1_098, f"{receiver.url}/ok/refund-98")
    twice = refund(hbb_url, platform, paid["queryId"], 1_099, f"{receiver.url}/ok/refund-99")
    late = refund(hbb_url, platform, paid["queryId"], 1_093, f"{receiver.url}/ok/refund-93")
    assert silent["respCode"] == twice["respCode"] == late["respCode"] == "00"
    wait_for(lambda: len(receiver.at("/ok/refund-99")) == 2)
    time.sleep(QUIET_S)
    assert not receiver.at("/ok/refund-98")
    business_date = date.fromisoformat(_state(hbb_url)["clock"]["business_date"])  # type: ignore[index]
    assert late["settleDate"] == f"{business_date + timedelta(days=1):%m%d}"
