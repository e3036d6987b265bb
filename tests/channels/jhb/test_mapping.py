"""The pure JHB mapping: yuan ↔ fen, times, and every ret_code and status mapped to one outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tianpay.channels.jhb import mapping, wire
from tianpay.channels.jhb.wire import RefundStatus, RetCode, TradeStatus
from tianpay.domain.money import Money
from tianpay.ports.channels import OnlineBankingOrder, Outcome, RefundOrder

YOUNG = timedelta(minutes=1)
OLD = timedelta(minutes=31)


# Amounts


@given(st.integers(min_value=0, max_value=10**15))
def test_fen_to_yuan_and_back_is_the_identity(fen: int) -> None:
    assert mapping.yuan_to_money(mapping.money_to_yuan(Money.cny(fen))) == Money.cny(fen)


@given(st.integers(min_value=0, max_value=10**15))
def test_yuan_always_has_exactly_two_decimals(fen: int) -> None:
    whole, _, decimals = mapping.money_to_yuan(Money.cny(fen)).partition(".")
    assert len(decimals) == 2
    assert whole == str(fen // 100)


@pytest.mark.parametrize(
    ("fen", "yuan"), [(0, "0.00"), (1, "0.01"), (10, "0.10"), (100, "1.00"), (1234, "12.34"), (10_000_051, "100000.51")]
)
def test_fen_render_as_yuan(fen: int, yuan: str) -> None:
    assert mapping.money_to_yuan(Money.cny(fen)) == yuan
    assert mapping.yuan_to_money(yuan) == Money.cny(fen)


@pytest.mark.parametrize(
    "text",
    [
        "12.3",
        "12.345",
        "-1.00",
        "1e3",
        "12",
        "12.",
        ".50",
        "",
        " 1.00",
        "1.00 ",
        "+1.00",
        "01.00",
        "1,000.00",
        "NaN",
        "inf",
        "1_000.00",
        "١.٠٠",
        "１.00",
        "12.3a",
    ],
)
def test_anything_but_yuan_with_two_decimals_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="two decimals"):
        mapping.yuan_to_money(text)


def test_negative_amounts_never_reach_the_wire() -> None:
    with pytest.raises(mapping.NotAcceptable):
        mapping.money_to_yuan(Money.cny(-100))


# Times


def test_times_go_on_the_wire_in_beijing_time() -> None:
    assert mapping.to_wire_time(datetime(2025, 1, 2, 16, 30, 5, tzinfo=UTC)) == "20250103003005"


# Codes and statuses


def test_every_ret_code_jhb_documents_has_an_outcome() -> None:
    assert set(mapping.RET_CODE_OUTCOMES) == set(RetCode)
    assert set(mapping.TRADE_STATUS_OUTCOMES) == set(TradeStatus)
    assert set(mapping.REFUND_STATUS_OUTCOMES) == set(RefundStatus)


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("0000", Outcome.SUCCEEDED),
        ("2000", Outcome.PENDING),
        ("1091", Outcome.NOT_SUBMITTED),
        ("1001", Outcome.FAILED),
        ("1051", Outcome.FAILED),
        ("1061", Outcome.FAILED),
        ("1062", Outcome.FAILED),
        ("1071", Outcome.FAILED),
        ("1010", Outcome.UNKNOWN),
        ("1020", Outcome.UNKNOWN),
        ("1999", Outcome.FAILED),
        ("1555", Outcome.FAILED),
        ("2001", Outcome.UNKNOWN),
        ("3000", Outcome.UNKNOWN),
        ("9999", Outcome.UNKNOWN),
        ("", Outcome.UNKNOWN),
        ("10510", Outcome.UNKNOWN),
        ("１０５１", Outcome.UNKNOWN),
    ],
)
def test_ret_codes_map_to_outcomes(code: str, outcome: Outcome) -> None:
    assert mapping.outcome_for_ret_code(code) is outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("WAIT_PAY", Outcome.PENDING),
        ("PROCESSING", Outcome.PENDING),
        ("SUCCESS", Outcome.SUCCEEDED),
        ("FAILED", Outcome.FAILED),
        ("CLOSED", Outcome.FAILED),
        ("success", Outcome.UNKNOWN),
        ("REFUNDED", Outcome.UNKNOWN),
        ("", Outcome.UNKNOWN),
    ],
)
def test_payment_statuses_map_to_outcomes(status: str, outcome: Outcome) -> None:
    assert mapping.outcome_for_trade_status(status) is outcome


def test_not_found_is_unknown_until_the_request_cannot_still_be_in_flight() -> None:
    assert mapping.outcome_for_not_found(YOUNG) is Outcome.UNKNOWN
    assert mapping.outcome_for_not_found(OLD) is Outcome.NOT_SUBMITTED


# Requests


def _order(attempt_id: str = "att_01JABCDEF", amount_minor: int = 10_051) -> OnlineBankingOrder:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    return OnlineBankingOrder(
        attempt_id=attempt_id,
        amount=Money.cny(amount_minor),
        subject="茶" * 200,
        merchant_name="津门好物商城",
        created_at=now,
        expires_at=now + timedelta(minutes=30),
        notify_url="http://127.0.0.1:8000/channels/jhb/notify",
        return_url="http://127.0.0.1:8000/cashier/return",
    )


def test_an_attempt_becomes_an_ebank_pay_body() -> None:
    body = mapping.ebank_pay_request(_order()).to_body()
    assert body["out_trade_no"] == "att_01JABCDEF"
    assert body["amount"] == "100.51"
    assert body["expire_time"] == "20250102113405"
    assert len(body["subject"]) == mapping.SUBJECT_MAX_CHARS


@pytest.mark.parametrize("attempt_id", ["", "a" * 33, "att 1", "att/1", "订单1"])
def test_an_attempt_id_jhb_would_refuse_is_never_sent(attempt_id: str) -> None:
    with pytest.raises(mapping.NotAcceptable):
        mapping.ebank_pay_request(_order(attempt_id))


def test_a_zero_amount_is_never_sent() -> None:
    with pytest.raises(mapping.NotAcceptable):
        mapping.ebank_pay_request(_order(amount_minor=0))


def test_a_refund_names_the_payment_both_ways() -> None:
    order = RefundOrder(
        refund_id="ref_1",
        payment_attempt_id="att_1",
        payment_bank_reference="JHB202501020000000001",
        payment_created_at=datetime(2025, 1, 2, tzinfo=UTC),
        amount=Money.cny(3000),
        created_at=datetime(2025, 1, 3, tzinfo=UTC),
        notify_url="http://127.0.0.1:8000/channels/jhb/notify",
    )
    assert mapping.refund_request(order).to_body() == {
        "out_refund_no": "ref_1",
        "orig_out_trade_no": "att_1",
        "jhb_trade_no": "JHB202501020000000001",
        "amount": "30.00",
        "reason": "",
        "notify_url": "http://127.0.0.1:8000/channels/jhb/notify",
    }


# Answers


def _ebank_answer(**changes: str) -> wire.EbankPayAnswer:
    values = {
        "ret_code": "0000",
        "ret_msg": "下单成功",
        "out_trade_no": "att_1",
        "jhb_trade_no": "JHB1",
        "amount": "1.00",
        "redirect_url": "http://127.0.0.1:9/ebank/pay?token=abc-_1&x=",
        "expire_time": "20250102113405",
    }
    return wire.EbankPayAnswer(**{**values, **changes})


def test_the_redirect_url_becomes_a_get_form_with_its_query_as_fields() -> None:
    form = mapping.redirect_form(_ebank_answer())
    assert (form.method, form.url, dict(form.fields)) == (
        "GET",
        "http://127.0.0.1:9/ebank/pay",
        {"token": "abc-_1", "x": ""},
    )


def test_a_redirect_to_anything_but_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        mapping.redirect_form(_ebank_answer(redirect_url="javascript:alert(1)"))


@pytest.mark.parametrize(
    ("code", "outcome"),
    [("1091", Outcome.NOT_SUBMITTED), ("1004", Outcome.FAILED), ("0000", Outcome.UNKNOWN), ("1010", Outcome.UNKNOWN)],
)
def test_an_ebank_pay_without_a_page_keeps_jhbs_verdict(code: str, outcome: Outcome) -> None:
    assert mapping.ebank_pay_refusal(_ebank_answer(ret_code=code, redirect_url="")).outcome is outcome


def _trade(**changes: str) -> wire.TradeView:
    values = {
        "ret_code": "0000",
        "ret_msg": "查询成功",
        "out_trade_no": "att_1",
        "jhb_trade_no": "JHB1",
        "amount": "100.51",
        "status": "SUCCESS",
        "fail_code": "",
        "fail_msg": "",
        "finish_time": "20250102113405",
    }
    return wire.TradeView(**{**values, **changes})


def test_a_successful_query_carries_amount_and_reference() -> None:
    result = mapping.trade_query_result(_trade(), "att_1", YOUNG)
    assert (result.outcome, result.amount, result.bank_reference) == (Outcome.SUCCEEDED, Money.cny(10051), "JHB1")


def test_a_failed_payment_reports_jhbs_reason() -> None:
    result = mapping.trade_query_result(_trade(status="FAILED", fail_code="1051", fail_msg="余额不足"), "att_1", YOUNG)
    assert (result.outcome, result.bank_code, result.bank_message) == (Outcome.FAILED, "1051", "余额不足")


@pytest.mark.parametrize("code", ["1001", "1004", "2000", "1091", ""])
def test_a_query_that_itself_failed_says_nothing_about_the_payment(code: str) -> None:
    assert mapping.trade_query_result(_trade(ret_code=code, status=""), "att_1", OLD).outcome is Outcome.UNKNOWN


def test_a_query_answer_about_another_order_is_unknown() -> None:
    assert mapping.trade_query_result(_trade(out_trade_no="att_2"), "att_1", YOUNG).outcome is Outcome.UNKNOWN


def test_a_final_answer_with_an_unreadable_amount_is_unknown() -> None:
    assert mapping.trade_query_result(_trade(amount="100.5"), "att_1", YOUNG).outcome is Outcome.UNKNOWN


def test_not_found_on_query_follows_the_age_rule() -> None:
    not_found = _trade(ret_code="1011", status="", out_trade_no="", amount="")
    assert mapping.trade_query_result(not_found, "att_1", YOUNG).outcome is Outcome.UNKNOWN
    assert mapping.trade_query_result(not_found, "att_1", OLD).outcome is Outcome.NOT_SUBMITTED


def _refund(**changes: str) -> wire.RefundView:
    values = {
        "ret_code": "0000",
        "ret_msg": "退款成功",
        "out_refund_no": "ref_1",
        "jhb_refund_no": "JHR1",
        "orig_out_trade_no": "att_1",
        "jhb_trade_no": "JHB1",
        "amount": "30.00",
        "status": "SUCCESS",
        "fail_code": "",
        "fail_msg": "",
        "finish_time": "",
    }
    return wire.RefundView(**{**values, **changes})


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("0000", "SUCCESS", Outcome.SUCCEEDED),
        ("0000", "PROCESSING", Outcome.PENDING),
        ("0000", "", Outcome.SUCCEEDED),
        ("0000", "ODD", Outcome.UNKNOWN),
        ("2000", "PROCESSING", Outcome.PENDING),
        ("1051", "FAILED", Outcome.FAILED),
        ("1021", "", Outcome.FAILED),
        ("1091", "", Outcome.NOT_SUBMITTED),
        ("1020", "", Outcome.UNKNOWN),
        ("", "SUCCESS", Outcome.UNKNOWN),
    ],
)
def test_a_refund_answer_maps_by_code_then_status(code: str, status: str, outcome: Outcome) -> None:
    assert mapping.refund_answer_result(_refund(ret_code=code, status=status), "ref_1").outcome is outcome


def test_a_refund_query_maps_by_status() -> None:
    assert mapping.refund_query_result(_refund(), "ref_1", YOUNG).amount == Money.cny(3000)
    assert mapping.refund_query_result(_refund(status="PROCESSING"), "ref_1", YOUNG).outcome is Outcome.PENDING
    assert mapping.refund_query_result(_refund(ret_code="1004"), "ref_1", OLD).outcome is Outcome.UNKNOWN
    assert mapping.refund_query_result(_refund(out_refund_no="ref_2"), "ref_1", YOUNG).outcome is Outcome.UNKNOWN


def test_notifications_map_by_status_alone() -> None:
    assert mapping.trade_notice_result(_trade(ret_code="")).outcome is Outcome.SUCCEEDED
    assert mapping.refund_notice_result(_refund(ret_code="", status="FAILED")).outcome is Outcome.FAILED
