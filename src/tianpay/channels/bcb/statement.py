"""BCB's daily statement behind the platform's StatementChannel: ``200005`` and its GBK CSV (docs/banks/bcb.md).

The answer carries the file base64 in ``STMTRSP/FILE_CONTENT``; the adapter writes the decoded bytes
to disk unchanged (still GBK). Reading is streaming: one decoded line at a time, ``#`` lines skipped
except the trailer's totals, which are checked once the last line has been read. Amounts are yuan
with two decimals and become fen by integer arithmetic only.
"""

from __future__ import annotations

import base64
import binascii
import csv
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Final

import httpx
import structlog

from tianpay.channels.bcb import mapping, wire
from tianpay.channels.bcb.client import AipgClient
from tianpay.channels.bcb.onboarding import BcbConfig
from tianpay.ports.statements import (
    DownloadedStatement,
    StatementItemKind,
    StatementLine,
    StatementMalformed,
    StatementNotReady,
    StatementUnavailable,
)

log = structlog.stdlib.get_logger(__name__)

BANK: Final = "BCB"
ENCODING: Final = "gbk"
NOT_READY: Final = "1003"
BEIJING: Final = timezone(timedelta(hours=8))
HEADER: Final = ("流水号", "商户请求号", "业务类型", "账号", "户名", "金额(元)", "手续费(元)", "完成时间")
KINDS: Final = {
    "代收": StatementItemKind.COLLECTION,
    "代付": StatementItemKind.PAYOUT,
    "退票": StatementItemKind.PAYOUT_RETURN,
    "手续费": StatementItemKind.FEE,
    "其他": StatementItemKind.OTHER,
}
# The sign each kind's amount must have (money into the reserve > 0); OTHER may be either.
SIGNS: Final = {
    StatementItemKind.COLLECTION: 1, StatementItemKind.PAYOUT: -1, StatementItemKind.PAYOUT_RETURN: 1,
    StatementItemKind.FEE: -1,
}
# Only lines that are the platform's own orders carry its id in 商户请求号.
OWN_ORDERS: Final = frozenset({StatementItemKind.COLLECTION, StatementItemKind.PAYOUT,
                               StatementItemKind.PAYOUT_RETURN})
YUAN: Final = re.compile(r"(-?)(\d+)\.(\d{2})")
TOTALS: Final = {
    "count": re.compile(r"#总笔数：\[(\d+)\]"),
    "amount": re.compile(r"#总金额\(元\)：\[(-?\d+\.\d{2})\]"),
    "fee": re.compile(r"#总手续费\(元\)：\[(-?\d+\.\d{2})\]"),
}


def yuan_to_fen(text: str) -> int:
    """``"-123.45"`` → ``-12345`` exactly; anything but an integer with two decimals is malformed."""
    match = YUAN.fullmatch(text.strip())
    if match is None:
        raise StatementMalformed(f"not an amount in yuan: {text!r}")
    sign, whole, cents = match.groups()
    fen = int(whole) * 100 + int(cents)
    return -fen if sign else fen


class BcbStatementChannel:
    code = "BCB"

    def __init__(self, config: BcbConfig, http: httpx.Client | None = None) -> None:
        self._client = AipgClient(config, http)

    def close(self) -> None:
        self._client.close()

    def download_statement(self, statement_date: date, into: Path) -> DownloadedStatement:
        request = wire.section("STMTREQ", {"SETTLE_DATE": f"{statement_date:%Y%m%d}"})
        answer = self._client.call(wire.TrxCode.STATEMENT, "TP" + secrets.token_hex(12), request)
        if answer is None:
            raise StatementUnavailable("no answer signed by BCB")
        if answer.ret_code == NOT_READY:
            raise StatementNotReady(f"BCB has not published {statement_date} yet")
        if answer.ret_code not in mapping.SUCCESS:
            raise StatementUnavailable(f"BCB answered {answer.ret_code} {answer.err_msg}".rstrip())
        if wire.text(answer.body, "STMTRSP/SETTLE_DATE") != f"{statement_date:%Y%m%d}":
            raise StatementUnavailable("BCB answered with another date's statement")
        try:
            content = base64.b64decode(wire.text(answer.body, "STMTRSP/FILE_CONTENT"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise StatementUnavailable("FILE_CONTENT is not base64") from exc
        into.parent.mkdir(parents=True, exist_ok=True)
        partial = into.with_name(into.name + ".part")
        partial.write_bytes(content)
        partial.replace(into)
        file_name = wire.text(answer.body, "STMTRSP/FILE_NAME") or into.name
        log.info("bcb statement", statement_date=statement_date.isoformat(), size=len(content))
        return DownloadedStatement(BANK, statement_date, into, file_name)

    def read_statement(self, path: Path, statement_date: date) -> Iterator[StatementLine]:
        return read_statement(path, statement_date)


@dataclass
class _Reading:
    """What the reader has seen so far: the header's columns, the running sums and the trailer."""

    columns: dict[str, int] | None = None
    count: int = 0
    amount_minor: int = 0
    fee_minor: int = 0
    totals: dict[str, str] = field(default_factory=dict)


def read_statement(path: Path, statement_date: date) -> Iterator[StatementLine]:
    """Parse a BCB statement file line by line (see the module docstring)."""
    reading = _Reading()
    try:
        with path.open("r", encoding=ENCODING, newline="") as handle:
            for number, raw in enumerate(handle, start=1):
                text = raw.rstrip("\r\n")
                if not text:
                    continue
                if text.startswith("#"):
                    _read_comment(reading, text)
                    continue
                if reading.totals:
                    raise StatementMalformed(f"line {number}: a line after the totals")
                row = next(csv.reader([text]))
                if reading.columns is None:
                    reading.columns = _columns(row)
                    continue
                line = _line(row, reading.columns, statement_date, number)
                reading.count += 1
                reading.amount_minor += line.amount_minor
                reading.fee_minor += line.fee_minor
                yield line
    except UnicodeDecodeError as exc:
        raise StatementMalformed(f"not GBK text: {exc.reason}") from exc
    _check_totals(reading)


def _read_comment(reading: _Reading, text: str) -> None:
    if reading.columns is None:
        return
    for name, pattern in TOTALS.items():
        match = pattern.fullmatch(text.strip())
        if match is not None:
            reading.totals[name] = match.group(1)


def _columns(row: list[str]) -> dict[str, int]:
    positions = {name.strip(): index for index, name in enumerate(row)}
    missing = [name for name in HEADER if name not in positions]
    if missing:
        raise StatementMalformed(f"the header lacks {', '.join(missing)}")
    return positions


def _line(row: list[str], columns: dict[str, int], statement_date: date, number: int) -> StatementLine:
    if len(row) != len(columns):
        raise StatementMalformed(f"line {number}: {len(row)} fields, the header has {len(columns)}")

    def value(name: str) -> str:
        return row[columns[name]].strip()

    kind = KINDS.get(value("业务类型"))
    if kind is None:
        raise StatementMalformed(f"line {number}: unknown 业务类型")
    bank_ref = value("流水号")
    if not bank_ref:
        raise StatementMalformed(f"line {number}: no 流水号")
    amount, fee = yuan_to_fen(value("金额(元)")), yuan_to_fen(value("手续费(元)"))
    sign = SIGNS.get(kind)
    if amount == 0 or (sign is not None and (amount > 0) != (sign > 0)) or fee < 0:
        raise StatementMalformed(f"line {number}: the amount's sign does not fit 业务类型, or a negative fee")
    try:
        occurred_at = datetime.strptime(value("完成时间"), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    except ValueError as exc:
        raise StatementMalformed(f"line {number}: 完成时间 is not YYYY-MM-DD HH:MM:SS") from exc
    request_no = value("商户请求号")
    return StatementLine(
        bank=BANK,
        statement_date=statement_date,
        line_no=number,
        kind=kind,
        bank_ref=bank_ref,
        amount_minor=amount,
        fee_minor=fee,
        platform_ref=request_no if kind in OWN_ORDERS and request_no else None,
        occurred_at=occurred_at.astimezone(UTC),
    )


def _check_totals(reading: _Reading) -> None:
    if reading.columns is None:
        raise StatementMalformed("no header line")
    missing = [name for name in TOTALS if name not in reading.totals]
    if missing:
        raise StatementMalformed(f"the trailer lacks the totals: {', '.join(missing)}")
    declared = (int(reading.totals["count"]), yuan_to_fen(reading.totals["amount"]), yuan_to_fen(reading.totals["fee"]))
    counted = (reading.count, reading.amount_minor, reading.fee_minor)
    if declared != counted:
        raise StatementMalformed(f"the lines add up to {counted} (count, amount, fee), the trailer says {declared}")
