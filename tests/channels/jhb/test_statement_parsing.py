"""Reading JHB statement files: columns by name, yuan to fen exactly, kinds and signs, and the totals.

The files are written here by hand in JHB's dialect (docs/banks/jhb.md §12) and read through the
adapter's `read_statement`, so each rule of the reader is shown on the smallest file that needs it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tianpay.channels.jhb import JhbConfig
from tianpay.channels.jhb.signing import SigningKey
from tianpay.channels.jhb.statement import JhbStatementChannel, build_jhb_statement_channel
from tianpay.ports.statements import StatementItemKind, StatementLine, StatementMalformed

DAY = date(2026, 3, 2)
HEADER = "交易时间,交易类型,JHB流水号,商户订单号,金额,手续费,状态"
PAYMENT = "`2026-03-02 10:15:00,`网银支付,`JHB202603020000000001,`att_01J9ZK3Q5V,`100.00,`0.12,`SUCCESS"
REFUND = "`2026-03-02 11:00:00,`退款,`JHR202603020000000001,`rfd_01J9ZK9A1B,`-30.00,`0.00,`SUCCESS"
SUMMARY_HEADER = "总笔数,总金额,总手续费"


@pytest.fixture(scope="module")
def channel() -> JhbStatementChannel:
    key = SigningKey.generate()
    config = JhbConfig(
        base_url="http://127.0.0.1:9",
        partner_id="JHB00000001",
        platform_private_key=key,
        jhb_public_key=SigningKey.generate().public_key,
        data_keys={"K1": bytes(16)},
        current_key_id="K1",
    )
    return build_jhb_statement_channel(config)


def write(tmp_path: Path, *rows: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "bill.csv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode(encoding))
    return path


def read(channel: JhbStatementChannel, path: Path) -> list[StatementLine]:
    return list(channel.read_statement(path, DAY))


def test_a_payment_and_a_refund_read_as_signed_fen_with_their_platform_ids(
    channel: JhbStatementChannel, tmp_path: Path
) -> None:
    path = write(tmp_path, HEADER, PAYMENT, REFUND, SUMMARY_HEADER, "`2,`70.00,`0.12")

    payment, refund = read(channel, path)

    assert payment == StatementLine(
        bank="JHB",
        statement_date=DAY,
        line_no=2,
        kind=StatementItemKind.COLLECTION,
        bank_ref="JHB202603020000000001",
        amount_minor=10_000,
        fee_minor=12,
        platform_ref="att_01J9ZK3Q5V",
        occurred_at=datetime(2026, 3, 2, 2, 15, tzinfo=UTC),
    )
    assert (refund.kind, refund.amount_minor, refund.fee_minor, refund.platform_ref) == (
        StatementItemKind.REFUND,
        -3_000,
        0,
        "rfd_01J9ZK9A1B",
    )
    assert payment.net_minor == 9_988


def test_columns_are_found_by_name_whatever_their_order_and_extra_ones_are_ignored(
    channel: JhbStatementChannel, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "状态,金额,手续费,备注,商户订单号,JHB流水号,交易类型,交易时间",
        "`SUCCESS,`0.40,`0.01,`hello,`att_x,`JHB1,`快捷支付,`2026-03-02 23:59:59",
        SUMMARY_HEADER,
        "`1,`0.40,`0.01",
    )

    (line,) = read(channel, path)

    assert (line.kind, line.amount_minor, line.fee_minor) == (StatementItemKind.COLLECTION, 40, 1)
    assert line.bank_ref == "JHB1"


def test_a_direct_debit_is_a_collection_and_an_unknown_type_is_other_without_a_platform_id(
    channel: JhbStatementChannel, tmp_path: Path
) -> None:
    debit = "`2026-03-02 09:00:00,`代扣,`JHB3,`att_d,`88.88,`0.11,`SUCCESS"
    other = "`2026-03-02 09:30:00,`冲正,`JHB4,`,`-5.00,`0.00,`SUCCESS"
    path = write(tmp_path, HEADER, debit, other, SUMMARY_HEADER, "`2,`83.88,`0.11")

    lines = read(channel, path)

    assert [(x.kind, x.platform_ref) for x in lines] == [
        (StatementItemKind.COLLECTION, "att_d"),
        (StatementItemKind.OTHER, None),
    ]


def test_an_empty_day_is_a_header_and_a_zero_summary(channel: JhbStatementChannel, tmp_path: Path) -> None:
    assert read(channel, write(tmp_path, HEADER, SUMMARY_HEADER, "`0,`0.00,`0.00")) == []


@pytest.mark.parametrize("summary", ["`3,`70.00,`0.12", "`2,`70.01,`0.12", "`2,`70.00,`0.13"])
def test_a_summary_that_does_not_match_the_lines_is_malformed_after_the_lines(
    channel: JhbStatementChannel, tmp_path: Path, summary: str
) -> None:
    path = write(tmp_path, HEADER, PAYMENT, REFUND, SUMMARY_HEADER, summary)
    read_so_far: list[StatementLine] = []

    with pytest.raises(StatementMalformed, match="summary"):
        read_so_far.extend(channel.read_statement(path, DAY))
    assert len(read_so_far) == 2


@pytest.mark.parametrize("amount", ["100", "100.0", "100.000", "1e2", "+100.00", "100,00", "０.10", "0.00", "-0.00"])
def test_an_amount_that_is_not_nonzero_yuan_with_two_decimals_is_malformed(
    channel: JhbStatementChannel, tmp_path: Path, amount: str
) -> None:
    row = PAYMENT.replace("`100.00", f"`{amount}")
    with pytest.raises(StatementMalformed):
        read(channel, write(tmp_path, HEADER, row, SUMMARY_HEADER, "`1,`100.00,`0.12"))


def test_a_payment_with_a_negative_amount_or_a_refund_with_a_positive_one_is_malformed(
    channel: JhbStatementChannel, tmp_path: Path
) -> None:
    negative_payment = PAYMENT.replace("`100.00", "`-100.00")
    positive_refund = REFUND.replace("`-30.00", "`30.00")
    for row, total in ((negative_payment, "-100.00"), (positive_refund, "30.00")):
        with pytest.raises(StatementMalformed, match="sign"):
            read(channel, write(tmp_path, HEADER, row, SUMMARY_HEADER, f"`1,`{total},`0.12"))


SUMMARY = "`1,`100.00,`0.12"


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param((HEADER.replace("手续费", "费用"), PAYMENT, SUMMARY_HEADER, SUMMARY), id="missing column"),
        pytest.param((HEADER, PAYMENT), id="no summary"),
        pytest.param((HEADER, PAYMENT, SUMMARY_HEADER), id="no summary row"),
        pytest.param((HEADER, PAYMENT, SUMMARY_HEADER, SUMMARY, PAYMENT), id="rows after the summary"),
        pytest.param((HEADER, PAYMENT + ",`extra", SUMMARY_HEADER, SUMMARY), id="a row longer than the header"),
        pytest.param((HEADER, PAYMENT.replace("SUCCESS", "FAILED"), SUMMARY_HEADER, SUMMARY), id="not booked"),
        pytest.param((HEADER, PAYMENT.replace("10:15:00", "25:15:00"), SUMMARY_HEADER, SUMMARY), id="bad time"),
        pytest.param((HEADER, PAYMENT, "", SUMMARY_HEADER, SUMMARY), id="blank row in the details"),
        pytest.param(("",), id="empty file"),
    ],
)
def test_a_file_that_breaks_the_layout_is_malformed(
    channel: JhbStatementChannel, tmp_path: Path, rows: tuple[str, ...]
) -> None:
    with pytest.raises(StatementMalformed):
        read(channel, write(tmp_path, *rows))


def test_a_file_that_is_not_utf8_is_malformed(channel: JhbStatementChannel, tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, PAYMENT, SUMMARY_HEADER, "`1,`100.00,`0.12", encoding="gbk")

    with pytest.raises(StatementMalformed, match="UTF-8"):
        read(channel, path)
