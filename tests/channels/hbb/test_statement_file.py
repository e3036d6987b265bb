"""HBB's statement file: every txnCode parses to the right kind and references, bad files are refused.

Files are written with ``render_line`` (the platform's copy of the layout), which must agree with the
simulator's own renderer; a large file is parsed in bounded memory.
"""

from __future__ import annotations

import tracemalloc
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from banksim.hbb.statement import render_line as bank_render_line
from tianpay.channels.hbb import HbbConfig
from tianpay.channels.hbb.mapping import platform_id_for
from tianpay.channels.hbb.statement import build_hbb_statement_channel
from tianpay.channels.hbb.statement_file import platform_ref_for, render_line, render_trailer
from tianpay.ports.statements import StatementItemKind, StatementLine, StatementMalformed

K = StatementItemKind
DAY = date(2026, 11, 26)
CARD = "621799*********0014"
QID = "261126101500000000001"
QID2 = "261126101600000000002"
T = "20261126101500"


def _lines() -> list[str]:
    return [
        render_line("S22", QID, "att01JD3Q7W2M9X4N5P6R7S8T9V0A", T, CARD, 12_345, 12),
        render_line("S30", QID2, "rfd01JD3Q8A1B2C3D4E5F6G7H8J9K", T, CARD, -2_000, 0, QID),
        render_line("S40", "261126101700000000003", "pyo01JD3Q9A1B2C3D4E5F6G7H8J9K", T, CARD, -5_000, 100),
        render_line("S41", "261126101700000000003", "pyo01JD3Q9A1B2C3D4E5F6G7H8J9K", T, CARD, 5_000, 0),
        render_line("P22", "0", "261126000001", T, CARD, 1_000, 0),
        render_line("P23", "0", "261126000002", T, CARD, -1_000, 0),
        render_line("P24", "0", "261126000003", T, "", -3_000, 0),
        render_line("P25", "0", "261126000004", T, "", 700, 0),
        render_line("S99", "0", "ADJ20261126", T, "", -50, 0),
    ]


def _write(path: Path, lines: list[str], trailer: str | None = None) -> Path:
    if trailer is None:
        amounts = [int(line[128:141]) + int(line[115:127]) for line in lines]
        trailer = render_trailer(len(lines), sum(amounts), sum(int(line[115:127]) for line in lines))
    path.write_text("\n".join([*lines, trailer]) + "\n", encoding="ascii")
    return path


def _read(config: HbbConfig, path: Path) -> list[StatementLine]:
    channel = build_hbb_statement_channel(config, clock=lambda: datetime.now(UTC))
    try:
        return list(channel.read_statement(path, DAY))
    finally:
        channel.close()


def test_every_txn_code_becomes_its_kind_with_signed_amounts_and_references(config: HbbConfig, tmp_path: Path) -> None:
    parsed = _read(config, _write(tmp_path / "s.txt", _lines()))
    summary = [(p.kind, p.amount_minor, p.fee_minor, p.platform_ref, p.switch_ref, p.original_ref) for p in parsed]
    assert summary == [
        (K.COLLECTION, 12_345, 12, "att_01JD3Q7W2M9X4N5P6R7S8T9V0A", None, None),
        (K.REFUND, -2_000, 0, "rfd_01JD3Q8A1B2C3D4E5F6G7H8J9K", None, None),
        (K.PAYOUT, -5_000, 100, "pyo_01JD3Q9A1B2C3D4E5F6G7H8J9K", None, None),
        (K.PAYOUT_RETURN, 5_000, 0, "pyo_01JD3Q9A1B2C3D4E5F6G7H8J9K", None, None),
        (K.COLLECTION, 1_000, 0, None, "261126000001", None),
        (K.REFUND, -1_000, 0, None, "261126000002", None),
        (K.REFUND, -3_000, 0, None, "261126000003", "261126000003"),
        (K.COLLECTION, 700, 0, None, "261126000004", "261126000004"),
        (K.OTHER, -50, 0, None, None, None),
    ]
    assert [p.bank_ref for p in parsed] == [
        QID, QID2, "261126101700000000003", "261126101700000000003RET",
        "TCS261126000001", "TCS261126000002", "TCS261126000003R", "TCS261126000004R", "ADJ20261126",
    ]  # fmt: skip
    assert parsed[0].occurred_at == datetime(2026, 11, 26, 2, 15, tzinfo=UTC)
    assert parsed[0].net_minor == 12_333
    assert [p.line_no for p in parsed] == list(range(1, 10))


def test_the_platform_and_the_simulator_write_the_same_line() -> None:
    values = ("S22", QID, "att01JD3Q7W2M9X4N5P6R7S8T9V0A", T, CARD, 12_345, 12, "0")
    assert render_line(*values) == bank_render_line(*values)


@pytest.mark.parametrize(
    "damage",
    [
        lambda line: line[:-1],  # one character short
        lambda line: "S23" + line[3:],  # unknown txnCode
        lambda line: line[:128] + "+000000012344" + line[141:],  # netAmt is not txnAmt - fee
        lambda line: line[:102] + "00000001234x" + line[114:],  # a letter in an amount
        lambda line: line[:67] + "20261332101500" + line[81:],  # month 13
        lambda line: line[:25] + "|" + line[26:],  # a separator missing
    ],
)
def test_a_damaged_line_is_malformed(config: HbbConfig, tmp_path: Path, damage: object) -> None:
    lines = _lines()
    assert callable(damage)
    lines[2] = damage(lines[2])
    with pytest.raises(StatementMalformed, match="line 3"):
        _read(config, _write(tmp_path / "bad.txt", lines, trailer=render_trailer(9, 0, 0)))


def test_lines_that_do_not_add_up_to_the_trailer_are_malformed(config: HbbConfig, tmp_path: Path) -> None:
    with pytest.raises(StatementMalformed, match="trailer"):
        _read(config, _write(tmp_path / "sum.txt", _lines(), trailer=render_trailer(9, 1, 112)))


def test_a_file_without_its_trailer_or_with_text_after_it_is_malformed(config: HbbConfig, tmp_path: Path) -> None:
    path = tmp_path / "cut.txt"
    path.write_text("\n".join(_lines()) + "\n", encoding="ascii")
    with pytest.raises(StatementMalformed, match="no TRL"):
        _read(config, path)
    _write(path, _lines())
    path.write_text(path.read_text() + _lines()[0] + "\n")
    with pytest.raises(StatementMalformed, match="after the trailer"):
        _read(config, path)


def test_a_large_statement_is_read_in_bounded_memory(config: HbbConfig, tmp_path: Path) -> None:
    count = 20_000
    path = tmp_path / "big.txt"
    with path.open("w", encoding="ascii") as out:
        for n in range(count):
            out.write(render_line("S22", f"{n:021d}", f"att{n:026d}", T, CARD, 1_000 + n % 7, 1) + "\n")
        amount = sum(1_000 + n % 7 for n in range(count))
        out.write(render_trailer(count, amount, count) + "\n")
    channel = build_hbb_statement_channel(config)
    tracemalloc.start()
    seen = total = 0
    for line in channel.read_statement(path, DAY):
        seen += 1
        total += line.net_minor
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    channel.close()
    assert (seen, total) == (count, amount - count)
    assert peak < 2_000_000


@pytest.mark.parametrize(
    "order_id",
    ["att01JD3Q7W2M9X4N5P6R7S8T9V0A", "pyo1234", "pyo12345", "Att01JD3Q7W2M", "261126000001", "abc" + "x" * 38,
     "rfd01JD3Q8A1B2C3D4E5F6G7H8J9K", "att01JD-3Q7W2M", "att０１２３４５６７"],
)
def test_the_fast_platform_ref_rule_agrees_with_the_mapping(order_id: str) -> None:
    try:
        expected: str | None = platform_id_for(order_id)
    except ValueError:
        expected = None
    assert platform_ref_for(order_id) == expected
