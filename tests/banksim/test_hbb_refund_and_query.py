"""HBB refunds (txnType 04) and queries (txnType 00) over real HTTP."""

from __future__ import annotations

from tests.banksim.acp_kit import Browser, Platform, Receiver, beijing_now, wait_for
from tests.banksim.conftest import balance
from tests.banksim.hbb_flows import FRONT, RESERVE, ZHANG_WEI, pay, query, refund


def test_partial_refunds_add_up_to_the_original_and_no_further(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    paid = pay(browser, platform, 10_000, f"{receiver.url}/ok/refunds-pay")
    card, reserve = balance(hbb_url, ZHANG_WEI), balance(hbb_url, RESERVE)

    first = refund(hbb_url, platform, paid["queryId"], 3_000, f"{receiver.url}/ok/refund-1")
    second = refund(hbb_url, platform, paid["queryId"], 5_000, f"{receiver.url}/ok/refund-2")
    too_much = refund(hbb_url, platform, paid["queryId"], 2_001, f"{receiver.url}/ok/refund-x")
    last = refund(hbb_url, platform, paid["queryId"], 2_000, f"{receiver.url}/ok/refund-3")
    nothing_left = refund(hbb_url, platform, paid["queryId"], 1, f"{receiver.url}/ok/refund-y")

    assert [first["respCode"], second["respCode"], last["respCode"]] == ["00", "00", "00"]
    assert too_much["respCode"] == "36"
    assert nothing_left["respCode"] == "36"
    assert first["origQryId"] == paid["queryId"]
    assert len(first["queryId"]) == 21
    assert balance(hbb_url, ZHANG_WEI) == card + 10_000
    assert balance(hbb_url, RESERVE) == reserve - 10_000
    wait_for(lambda: receiver.at("/ok/refund-3"))
    notified = receiver.at("/ok/refund-1")[0].fields
    platform.verify_from_hbb(notified)
    assert notified["txnType"] == "04"
    assert notified["respCode"] == "00"
    assert notified["txnAmt"] == "3000"
    assert not receiver.at("/ok/refund-x")
    refund_query = query(hbb_url, platform, second["requestOrderId"], second["requestTxnTime"])
    assert refund_query["origRespCode"] == "00"
    assert refund_query["origQryId"] == paid["queryId"]


def test_a_refund_of_an_unknown_or_failed_payment_is_refused_with_35(
    hbb_url: str, platform: Platform, browser: Browser
) -> None:
    assert refund(hbb_url, platform, "1" * 21, 100, "http://127.0.0.1:9/x")["respCode"] == "35"
    failed = pay(browser, platform, 1_051, "http://127.0.0.1:9/x")
    assert failed["respCode"] == "51"
    assert refund(hbb_url, platform, failed["queryId"], 100, "http://127.0.0.1:9/x")["respCode"] == "35"


def test_a_tampered_refund_is_refused_with_11(hbb_url: str, platform: Platform) -> None:
    from tests.banksim.acp_kit import post_back

    fields = platform.refund("1" * 21, 100, "http://127.0.0.1:9/x")
    answer = post_back(f"{hbb_url}/gateway/api/backTransReq.do", {**fields, "txnAmt": "99"})
    assert answer["respCode"] == "11"


def test_a_query_for_an_order_hbb_never_saw_answers_34(hbb_url: str, platform: Platform) -> None:
    answer = query(hbb_url, platform, "NEVERSEEN123", beijing_now())
    assert answer["respCode"] == "34"
    assert "origRespCode" not in answer


def test_a_query_while_the_payer_is_still_at_the_bank_says_processing(
    hbb_url: str, platform: Platform, browser: Browser
) -> None:
    fields = platform.consume(1_000, FRONT, "http://127.0.0.1:9/x")
    browser.open_gateway(fields)
    answer = query(hbb_url, platform, fields["orderId"], fields["txnTime"])
    assert answer["respCode"] == "00"
    assert answer["origRespCode"] == "05"


def test_a_query_for_a_paid_order_carries_the_payment_details(
    hbb_url: str, platform: Platform, browser: Browser
) -> None:
    paid = pay(browser, platform, 2_345, "http://127.0.0.1:9/x")
    answer = query(hbb_url, platform, paid["orderId"], paid["requestTxnTime"])
    assert answer["origRespCode"] == "00"
    assert answer["queryId"] == paid["queryId"]
    assert answer["txnAmt"] == "2345"
    assert answer["settleDate"] == paid["settleDate"]
    assert answer["traceNo"] == paid["traceNo"]
