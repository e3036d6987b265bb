"""Shared steps for the HBB tests: pay an order through the pages, query it, refund it."""

from __future__ import annotations

from tests.banksim.acp_kit import Browser, Platform, post_back

ZHANG_WEI = "6217990000000000014"
RESERVE = "6217990000000000998"
FRONT = "https://shop.example/return"


def pay(
    browser: Browser, platform: Platform, amount_minor: int, back_url: str, card_no: str = ZHANG_WEI
) -> dict[str, str]:
    """Pay through login and confirm; returns the signed front result (with the request's txnTime)."""
    fields = platform.consume(amount_minor, FRONT, back_url)
    result = browser.pay(fields, card_no)
    return {**result.front_post, "requestTxnTime": fields["txnTime"]}


def query(hbb_url: str, platform: Platform, order_id: str, txn_time: str) -> dict[str, str]:
    answer = post_back(f"{hbb_url}/gateway/api/queryTrans.do", platform.query(order_id, txn_time))
    platform.verify_from_hbb(answer)
    return answer


def refund(hbb_url: str, platform: Platform, query_id: str, amount_minor: int, back_url: str) -> dict[str, str]:
    fields = platform.refund(query_id, amount_minor, back_url)
    answer = post_back(f"{hbb_url}/gateway/api/backTransReq.do", fields)
    platform.verify_from_hbb(answer)
    return {**answer, "requestOrderId": fields["orderId"], "requestTxnTime": fields["txnTime"]}
