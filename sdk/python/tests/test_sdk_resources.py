"""Each resource method calls the endpoint the contract names, with ids escaped."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from sdk_fake_platform import FakePlatform, Reply
from sdk_support import ClientFactory

from tianpay_sdk import TianpayClient

Call = Callable[[TianpayClient], Any]

ENDPOINTS: list[tuple[Call, str, str]] = [
    (lambda c: c.payments.create(out_trade_no="T-1", amount=1, currency="CNY"), "POST", "/v1/payments"),
    (lambda c: c.payments.retrieve("pay_1"), "GET", "/v1/payments/pay_1"),
    (lambda c: c.payments.list(), "GET", "/v1/payments"),
    (lambda c: c.payments.close("pay_1"), "POST", "/v1/payments/pay_1/close"),
    (lambda c: c.payments.confirm("pay_1", sms_code="1"), "POST", "/v1/payments/pay_1/confirm"),
    (lambda c: c.refunds.create("pay_1", out_refund_no="R-1"), "POST", "/v1/payments/pay_1/refunds"),
    (lambda c: c.refunds.retrieve("ref_1"), "GET", "/v1/refunds/ref_1"),
    (lambda c: c.members.create(out_member_id="U1"), "POST", "/v1/members"),
    (lambda c: c.members.add_card("mem_1", card_no="6222"), "POST", "/v1/members/mem_1/cards"),
    (lambda c: c.members.remove_card("mem_1", "card_1"), "DELETE", "/v1/members/mem_1/cards/card_1"),
    (lambda c: c.card_bindings.confirm("cb_1", sms_code="1"), "POST", "/v1/card-bindings/cb_1/confirm"),
    (lambda c: c.mandates.create(member_id="mem_1"), "POST", "/v1/mandates"),
    (lambda c: c.mandates.confirm("man_1", sms_code="1"), "POST", "/v1/mandates/man_1/confirm"),
    (lambda c: c.mandates.debit("man_1", out_trade_no="T-2"), "POST", "/v1/mandates/man_1/debits"),
    (lambda c: c.mandates.revoke("man_1"), "POST", "/v1/mandates/man_1/revoke"),
    (lambda c: c.payouts.create(out_payout_no="P-1"), "POST", "/v1/payouts"),
    (lambda c: c.payouts.list(), "GET", "/v1/payouts"),
    (lambda c: c.balance.retrieve(), "GET", "/v1/balance"),
    (lambda c: c.settlements.list(), "GET", "/v1/settlements"),
    (lambda c: c.events.list(), "GET", "/v1/events"),
    (lambda c: c.events.resend("evt_1"), "POST", "/v1/events/evt_1/resend"),
]


@pytest.mark.parametrize(("call", "method", "path"), ENDPOINTS, ids=[f"{m} {p}" for _, m, p in ENDPOINTS])
def test_each_resource_method_calls_its_endpoint(
    call: Call, method: str, path: str, platform: FakePlatform, make_client: ClientFactory
) -> None:
    assert call(make_client()) == {"ok": True}

    received = platform.received[0]
    assert (received.method, received.url.removeprefix(platform.base_url)) == (method, path)
    assert platform.verification_failures == []


def test_a_statement_comes_back_as_csv_text(platform: FakePlatform, make_client: ClientFactory) -> None:
    csv = "payment_id,amount,currency\npay_1,100,CNY\n"
    platform.then(Reply(text=csv, content_type="text/csv; charset=utf-8"))

    assert make_client().statements.retrieve(datetime.date(2024, 6, 1)) == csv
    assert platform.received[0].url.endswith("/v1/statements/2024-06-01")


def test_ids_are_escaped_so_they_cannot_reach_another_endpoint(
    platform: FakePlatform, make_client: ClientFactory
) -> None:
    make_client().payments.retrieve("../balance")

    assert platform.received[0].url.endswith("/v1/payments/..%2Fbalance")
    assert platform.verification_failures == []


@pytest.mark.parametrize("bad_id", ["", ".", ".."])
def test_an_empty_or_dot_id_is_refused_before_anything_is_sent(
    bad_id: str, platform: FakePlatform, make_client: ClientFactory
) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        make_client().refunds.create(bad_id, out_refund_no="R-1")

    assert platform.received == []


def test_the_generic_request_sends_json_and_query(platform: FakePlatform, make_client: ClientFactory) -> None:
    platform.then(Reply(json_body={"id": "x"}))

    result = make_client().request("post", "/v1/payouts", json={"out_payout_no": "P-9"}, params={"dry": "1"})

    assert result == {"id": "x"}
    assert platform.received[0].url.endswith("/v1/payouts?dry=1")
    assert platform.received[0].body == b'{"out_payout_no":"P-9"}'
