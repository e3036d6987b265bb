"""The pure half of the adapter: ids, times, requests, and HBB's status tables mapped to outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tianpay.channels.hbb import mapping, wire
from tianpay.channels.hbb.wire import AcpResult, RespCode, WireError
from tianpay.domain.money import Money
from tianpay.ports.channels import ChannelResult, OnlineBankingOrder, Outcome, RefundOrder

from .conftest import ATTEMPT_ID, MER_ID, QUERY_ID, REFUND_ID

S, F, P, U, N = Outcome.SUCCEEDED, Outcome.FAILED, Outcome.PENDING, Outcome.UNKNOWN, Outcome.NOT_SUBMITTED

# Every respCode BANKS.md "HBB" names, with what it means for a transaction's own answer or
# notification, and as the origRespCode of a successful query.
BANKS_MD_CODES: list[tuple[str, Outcome, Outcome]] = [
    ("00", S, S),
    ("03", U, P),
    ("04", U, P),
    ("05", U, P),
    ("11", F, F),
    ("12", U, U),
    ("14", F, F),
    ("51", F, F),
    ("61", F, F),
    ("62", F, F),
    ("63", F, F),
    ("64", F, F),
    ("91", N, N),
]
# Codes HBB's simulator also answers with (and ACP defines); see docs/banks/hbb-adapter.md.
ACP_CODES: list[tuple[str, Outcome, Outcome]] = [
    ("30", F, F),
    ("34", U, U),
    ("35", F, F),
    ("36", F, F),
    ("55", F, F),
    ("69", F, F),
    ("A6", S, S),
]
UNRECOGNISED = ["01", "02", "06", "10", "37", "42", "94", "96", "99", "A0", "ZZ", "", "0", "000", " 00", "00 "]


@pytest.mark.parametrize(("code", "as_answer", "as_original"), BANKS_MD_CODES + ACP_CODES)
def test_every_known_code_maps_to_its_outcome(code: str, as_answer: Outcome, as_original: Outcome) -> None:
    assert mapping.transaction_outcome(code) is as_answer
    assert mapping.original_outcome(code) is as_original


@pytest.mark.parametrize("code", UNRECOGNISED)
def test_an_unrecognised_code_is_unknown_never_failed(code: str) -> None:
    assert mapping.transaction_outcome(code) is Outcome.UNKNOWN
    assert mapping.original_outcome(code) is Outcome.UNKNOWN


def test_both_tables_cover_every_code_the_adapter_knows() -> None:
    assert set(mapping.TRANSACTION_OUTCOMES) == set(RespCode)
    assert set(mapping.ORIGINAL_OUTCOMES) == set(RespCode)
    assert {code for code, _, _ in BANKS_MD_CODES + ACP_CODES} == {c.value for c in RespCode}


def test_only_a_refusal_before_processing_allows_failover_without_a_final_failure() -> None:
    not_submitted = {c for c, o in mapping.TRANSACTION_OUTCOMES.items() if o is Outcome.NOT_SUBMITTED}
    assert not_submitted == {RespCode.BANK_UNAVAILABLE}


# Query answers


def _result(**fields: str | int | None) -> AcpResult:
    base: dict[str, str | int | None] = {
        "respCode": "00",
        "respMsg": "成功",
        "merId": MER_ID,
        "orderId": "att01JD3Q7W2M9X4N5P6R7S8T9V0A",
        "txnType": "01",
        "txnTime": "20261127103000",
        "queryId": QUERY_ID,
        "txnAmt": 12345,
        "currencyCode": "156",
        "settleDate": "1127",
        "origRespCode": None,
        "origRespMsg": "",
        "origQryId": None,
    }
    base.update(fields)
    return AcpResult(**base)  # type: ignore[arg-type]


def test_a_successful_query_takes_the_originals_code() -> None:
    result = mapping.query_result(_result(origRespCode="00", origRespMsg="成功"))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.bank_reference == QUERY_ID
    assert result.amount == Money.cny(12345)
    assert result.bank_code == "00"
    assert result.settle_date == "1127"


def test_a_query_for_a_declined_order_is_failed_without_a_settle_date() -> None:
    result = mapping.query_result(_result(origRespCode="51", origRespMsg="余额不足"))
    assert (result.outcome, result.bank_code, result.settle_date) == (Outcome.FAILED, "51", None)


@pytest.mark.parametrize("code", ["34", "91", "11", "30", "03", "05", "99"])
def test_a_query_that_itself_did_not_succeed_says_nothing_final(code: str) -> None:
    result = mapping.query_result(_result(respCode=code, origRespCode="00"))
    assert result.outcome is Outcome.UNKNOWN
    assert result.bank_code == code


def test_a_successful_query_without_an_original_code_is_unknown() -> None:
    assert mapping.query_result(_result(origRespCode=None)).outcome is Outcome.UNKNOWN


def test_an_answer_in_another_currency_is_refused() -> None:
    with pytest.raises(WireError):
        mapping.transaction_result(_result(currencyCode="840"))


# Notifications


def test_a_consume_notification_names_our_attempt() -> None:
    notice = mapping.notification(_result(), mer_id=MER_ID)
    assert notice.kind == "payment"
    assert notice.platform_reference == ATTEMPT_ID
    assert notice.result.outcome is Outcome.SUCCEEDED


def test_a_refund_notification_names_our_refund() -> None:
    notice = mapping.notification(_result(txnType="04", orderId="rfd01JD3Q8A1B2C3D4E5F6G7H8J9K"), mer_id=MER_ID)
    assert (notice.kind, notice.platform_reference) == ("refund", REFUND_ID)


@pytest.mark.parametrize(
    "fields",
    [{"merId": "898120000000002"}, {"txnType": "12"}, {"orderId": "ATT01JD3Q7W2M9X4"}, {"orderId": "1234567890"}],
)
def test_a_notification_that_is_not_ours_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(WireError):
        mapping.notification(_result(**fields), mer_id=MER_ID)


# Ids and times


def test_an_attempt_id_becomes_an_order_id_and_back() -> None:
    assert mapping.order_id_for(ATTEMPT_ID) == "att01JD3Q7W2M9X4N5P6R7S8T9V0A"
    assert mapping.platform_id_for("att01JD3Q7W2M9X4N5P6R7S8T9V0A") == ATTEMPT_ID


@given(
    kind=st.sampled_from(["att", "rfd", "pyo"]),
    body=st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghijklmnopqrstuvwxyz", min_size=5, max_size=37),
)
def test_order_ids_round_trip_and_fit_hbbs_rule(kind: str, body: str) -> None:
    platform_id = f"{kind}_{body}"
    order_id = mapping.order_id_for(platform_id)
    assert wire.ORDER_ID.fullmatch(order_id)
    assert mapping.platform_id_for(order_id) == platform_id


@pytest.mark.parametrize(
    "bad", ["att_1234", "att_" + "A" * 38, "att-0123456789", "ATT_0123456789", "att_01_23456789", ""]
)
def test_ids_that_cannot_become_an_order_id_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        mapping.order_id_for(bad)


def test_times_are_written_in_beijing_time() -> None:
    assert mapping.beijing_stamp(datetime(2026, 11, 27, 16, 5, 9, 999_999, tzinfo=UTC)) == "20261128000509"
    other_zone = datetime(2026, 11, 27, 0, 0, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert mapping.beijing_stamp(other_zone) == "20261127130000"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mapping.beijing_stamp(datetime(2026, 11, 27, 10, 0, 0))


def test_a_consume_request_carries_the_order_as_acp_fields(order: OnlineBankingOrder) -> None:
    fields = wire.request_fields(mapping.consume_request(order, mer_id=MER_ID, cert_id="42"))
    assert fields == {
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "certId": "42",
        "txnType": "01",
        "txnSubType": "01",
        "bizType": "000201",
        "channelType": "07",
        "accessType": "0",
        "merId": MER_ID,
        "orderId": "att01JD3Q7W2M9X4N5P6R7S8T9V0A",
        "txnTime": "20261127103000",
        "txnAmt": "12345",
        "currencyCode": "156",
        "frontUrl": order.return_url,
        "backUrl": order.notify_url,
        "payTimeout": "20261127104500",
        "merAbbr": "津门好物商城",
    }


def test_a_refund_request_names_the_payment_by_its_query_id(refund_order: RefundOrder) -> None:
    fields = wire.request_fields(mapping.refund_request(refund_order, mer_id=MER_ID, cert_id="42"))
    assert fields["txnType"] == "04"
    assert fields["txnSubType"] == "00"
    assert fields["origQryId"] == QUERY_ID
    assert fields["orderId"] == "rfd01JD3Q8A1B2C3D4E5F6G7H8J9K"
    assert fields["txnTime"] == "20261127110000"
    assert fields["txnAmt"] == "2000"
    assert fields["backUrl"] == refund_order.notify_url
    assert "frontUrl" not in fields


@pytest.mark.parametrize("minor", [0, -100])
def test_amounts_must_be_positive(minor: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        mapping.fen(Money.cny(minor))


# "No such transaction" about a back-office order (refunds, payouts)

_ABSENT = ChannelResult(Outcome.UNKNOWN, bank_code="34", bank_message="查无此交易")


def test_no_such_transaction_is_unknown_inside_the_window_and_not_submitted_after_it() -> None:
    window = mapping.ABSENT_ORDER_FINAL_AFTER
    assert window == timedelta(minutes=30)
    assert mapping.settle_absent_order(_ABSENT, age=window - timedelta(seconds=1)) == _ABSENT
    settled = mapping.settle_absent_order(_ABSENT, age=window)
    assert (settled.outcome, settled.bank_code) == (Outcome.NOT_SUBMITTED, "34")


@pytest.mark.parametrize(
    "result",
    [
        ChannelResult(Outcome.UNKNOWN, bank_message="HBB did not answer in time"),
        ChannelResult(Outcome.UNKNOWN, bank_message="HBB answered HTTP 503"),
        ChannelResult(Outcome.UNKNOWN, bank_code="05"),
        ChannelResult(Outcome.PENDING, bank_code="05"),
        ChannelResult(Outcome.FAILED, bank_code="51"),
    ],
)
def test_nothing_but_hbbs_own_no_such_transaction_ever_becomes_final_with_age(result: ChannelResult) -> None:
    assert mapping.settle_absent_order(result, age=timedelta(days=3)) == result


def test_quick_pay_requests_carry_the_common_fields_of_every_acp_request() -> None:
    from tianpay.channels.hbb import quickpay_wire

    consume = quickpay_wire.TokenConsumeRequest(
        certId="42", merId=MER_ID, orderId="att12345678", txnTime="20261127103000", txnAmt="100", token="t",
        backUrl="http://127.0.0.1:9/notify",
    )
    query = wire.QueryRequest(certId="42", merId=MER_ID, orderId="att12345678", txnTime="20261127103000")
    common = ("version", "encoding", "signMethod", "accessType")
    consume_fields, query_fields = wire.request_fields(consume), wire.request_fields(query)
    assert {k: consume_fields[k] for k in common} == {k: query_fields[k] for k in common} == {
        "version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "accessType": "0",
    }
    assert (consume_fields["txnType"], consume_fields["bizType"], consume_fields["channelType"]) == (
        "01", "000301", "07",
    )
    assert "channelType" not in query_fields
