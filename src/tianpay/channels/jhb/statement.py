"""JHB's daily statement behind the platform's StatementChannel: `bill.download` and its backtick CSV.

The download is one enveloped call like any other (signature verified and body decrypted by the
same client); the answer carries the whole file as base64 with its SHA-256, which is checked and
written to disk unchanged. The reader streams the file with the csv module and checks its lines
against the file's own summary block at the end (docs/banks/jhb.md §12, docs/banks/jhb-adapter.md).
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType

import httpx
import structlog

from tianpay.channels.jhb import wire
from tianpay.channels.jhb.client import Answered, JhbClient, NoAnswer
from tianpay.channels.jhb.config import JhbConfig
from tianpay.ports.statements import (
    DownloadedStatement,
    StatementItemKind,
    StatementLine,
    StatementMalformed,
    StatementNotReady,
    StatementTotals,
    StatementUnavailable,
)

log = structlog.stdlib.get_logger(__name__)

CHANNEL_CODE = "JHB"
BACKTICK = "`"
COL_TIME, COL_TYPE, COL_JHB_NO, COL_OUT_NO = "交易时间", "交易类型", "JHB流水号", "商户订单号"
COL_AMOUNT, COL_FEE, COL_STATUS = "金额", "手续费", "状态"
DETAIL_COLUMNS = (COL_TIME, COL_TYPE, COL_JHB_NO, COL_OUT_NO, COL_AMOUNT, COL_FEE, COL_STATUS)
SUMMARY_COLUMNS = ("总笔数", "总金额", "总手续费")
STATUS_SUCCESS = "SUCCESS"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# 交易类型 → what the line is for the reserve, and the sign its 金额 must have (money in > 0).
# Anything JHB may add later is OTHER: the platform cannot attribute it, so it becomes an exception.
KINDS: Mapping[str, StatementItemKind] = MappingProxyType(
    {
        "网银支付": StatementItemKind.COLLECTION,
        "快捷支付": StatementItemKind.COLLECTION,
        "代扣": StatementItemKind.COLLECTION,
        "退款": StatementItemKind.REFUND,
    }
)
_SIGNS: Mapping[StatementItemKind, int] = MappingProxyType(
    {StatementItemKind.COLLECTION: 1, StatementItemKind.REFUND: -1}
)
# Yuan with exactly two decimals and an optional minus sign; parsed as integers, never as floats.
_YUAN = re.compile(r"(-?)(0|[1-9][0-9]{0,14})\.([0-9]{2})")
_COUNT = re.compile(r"0|[1-9][0-9]{0,11}")
# A file name JHB suggests is kept only if it is a plain name; the file itself goes where we say.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class JhbStatementChannel:
    """Implements `StatementChannel` for JHB."""

    code: str = CHANNEL_CODE

    def __init__(
        self,
        config: JhbConfig,
        http_client: httpx.Client | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._config = config
        self._http = http_client
        self._clock = clock

    def download_statement(self, statement_date: date, into: Path) -> DownloadedStatement:
        """Calls `bill.download` once; 1031 is StatementNotReady, every other failure StatementUnavailable.

        The file is written to a temporary name beside ``into`` and renamed, so ``into`` holds a
        whole, hash-checked file or nothing.
        """
        if self._http is not None:
            answer = self._call(JhbClient(self._config, self._http, self._clock), statement_date)
        else:
            # A statement is fetched once a day: a short-lived HTTP client is cheaper than one kept open.
            with httpx.Client(timeout=self._config.timeout_s) as http:
                answer = self._call(JhbClient(self._config, http, self._clock), statement_date)
        content = _content(answer, statement_date)
        _write_atomically(into, content)
        file_name = answer.bill_name if _SAFE_NAME.fullmatch(answer.bill_name) else into.name
        log.info(
            "jhb statement downloaded",
            statement_date=statement_date.isoformat(),
            size_bytes=len(content),
            sha256=answer.bill_sha256,
        )
        return DownloadedStatement(CHANNEL_CODE, statement_date, into, file_name)

    def _call(self, client: JhbClient, statement_date: date) -> wire.BillAnswer:
        request = wire.BillDownload(bill_date=statement_date.isoformat())
        call = client.call(wire.Service.BILL_DOWNLOAD, request.to_body())
        if isinstance(call, NoAnswer):
            raise StatementUnavailable(f"JHB bill.download for {statement_date}: {call.reason}")
        if not isinstance(call, Answered):
            # Unsigned errors (1001–1004) and answers that fail verification prove nothing.
            code = f" ({call.plain.ret_code} {call.plain.ret_msg})" if call.plain is not None else ""
            raise StatementUnavailable(f"JHB bill.download for {statement_date}: {call.reason}{code}")
        try:
            answer = wire.read_bill_answer(call.body)
        except wire.WireError as exc:
            raise StatementUnavailable(f"JHB bill.download answer: {exc}") from exc
        if answer.ret_code == wire.RetCode.BILL_NOT_READY:
            raise StatementNotReady(f"JHB has not closed {statement_date} yet: {answer.ret_msg}")
        if answer.ret_code != wire.RetCode.SUCCESS:
            raise StatementUnavailable(f"JHB bill.download refused: {answer.ret_code} {answer.ret_msg}")
        return answer

    def read_statement(self, path: Path, statement_date: date) -> Iterator[StatementLine]:
        """The detail lines one by one; StatementMalformed for a bad line or, at the end, bad totals."""
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                yield from read_lines(csv.reader(handle), statement_date)
        except UnicodeDecodeError as exc:
            raise StatementMalformed(f"JHB statement {path.name} is not UTF-8: {exc}") from exc
        except csv.Error as exc:
            raise StatementMalformed(f"JHB statement {path.name}: {exc}") from exc


def build_jhb_statement_channel(
    config: JhbConfig,
    *,
    http_client: httpx.Client | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> JhbStatementChannel:
    """The composition root's way in; without a shared client each download opens its own."""
    return JhbStatementChannel(config, http_client, clock)


def _content(answer: wire.BillAnswer, statement_date: date) -> bytes:
    """The file's bytes, once the answer is for our date and the bytes match their SHA-256."""
    if answer.bill_date != statement_date.isoformat():
        raise StatementUnavailable(f"JHB answered for {answer.bill_date!r}, not {statement_date}")
    try:
        content = base64.b64decode(answer.bill_content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise StatementUnavailable(f"bill_content is not base64: {exc}") from exc
    digest = hashlib.sha256(content).hexdigest()
    if not hmac.compare_digest(digest, answer.bill_sha256.lower()):
        raise StatementUnavailable("bill_content does not match bill_sha256")
    return content


def _write_atomically(into: Path, content: bytes) -> None:
    into.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{into.name}.", dir=into.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, into)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# Parsing: pure functions over rows of strings, so every rule is tested without a file.


def read_lines(rows: Iterator[Sequence[str]], statement_date: date) -> Iterator[StatementLine]:
    """Parse a JHB statement's rows (as the csv module gives them) into lines, checking the totals.

    Detail rows end at the summary header (`总笔数,…`); the one row after it is the summary, and
    nothing but blank rows may follow. The totals are compared after the last line is yielded.
    """
    header = next(rows, None)
    if header is None:
        raise StatementMalformed("the JHB statement is empty")
    columns = _column_index(header)
    running = StatementTotals(count=0, amount_minor=0, fee_minor=0)
    for row_no, row in enumerate(rows, start=2):
        values = [_unticked(value) for value in row]
        if values and values[0] == SUMMARY_COLUMNS[0]:
            declared = _summary(values, rows, row_no)
            if running != declared:
                raise StatementMalformed(f"the lines add up to {running}, the summary says {declared}")
            return
        if not any(values):
            raise StatementMalformed(f"row {row_no} is blank inside the detail block")
        line = parse_detail(values, columns, statement_date, row_no)
        running = StatementTotals(
            running.count + 1, running.amount_minor + line.amount_minor, running.fee_minor + line.fee_minor
        )
        yield line
    raise StatementMalformed("the JHB statement has no summary block (总笔数,总金额,总手续费)")


def parse_detail(values: Sequence[str], columns: Mapping[str, int], statement_date: date, row_no: int) -> StatementLine:
    """One detail row (backticks already stripped) as a StatementLine; raises StatementMalformed."""
    if len(values) != len(columns):
        raise StatementMalformed(f"row {row_no} has {len(values)} values, the header {len(columns)}")
    field = {name: values[index] for name, index in columns.items()}
    if field[COL_STATUS] != STATUS_SUCCESS:
        raise StatementMalformed(f"row {row_no}: status {field[COL_STATUS]!r} is not a booked movement")
    if not field[COL_JHB_NO]:
        raise StatementMalformed(f"row {row_no}: {COL_JHB_NO} is empty")
    kind = KINDS.get(field[COL_TYPE], StatementItemKind.OTHER)
    amount_minor = yuan_to_fen(field[COL_AMOUNT], f"row {row_no} {COL_AMOUNT}")
    fee_minor = yuan_to_fen(field[COL_FEE], f"row {row_no} {COL_FEE}")
    sign = _SIGNS.get(kind)
    if amount_minor == 0 or (sign is not None and amount_minor * sign < 0):
        raise StatementMalformed(f"row {row_no}: {field[COL_TYPE]} of {field[COL_AMOUNT]} has the wrong sign")
    if fee_minor < 0:
        raise StatementMalformed(f"row {row_no}: a negative {COL_FEE}")
    return StatementLine(
        bank=CHANNEL_CODE,
        statement_date=statement_date,
        line_no=row_no,
        kind=kind,
        bank_ref=field[COL_JHB_NO],
        amount_minor=amount_minor,
        fee_minor=fee_minor,
        # The adapter sends the attempt id as out_trade_no and the refund id as out_refund_no
        # (mapping.py), so JHB's 商户订单号 is the platform id itself.
        platform_ref=field[COL_OUT_NO] or None,
        occurred_at=_occurred_at(field[COL_TIME], row_no),
    )


def yuan_to_fen(text: str, what: str) -> int:
    """`"-12.34"` → -1234 by integer arithmetic; anything but yuan with two decimals is malformed."""
    match = _YUAN.fullmatch(text)
    if match is None:
        raise StatementMalformed(f"{what} {text!r} is not yuan with two decimals")
    minor = int(match.group(2)) * 100 + int(match.group(3))
    return -minor if match.group(1) else minor


def _column_index(header: Sequence[str]) -> dict[str, int]:
    names = [_unticked(name) for name in header]
    missing = [name for name in DETAIL_COLUMNS if name not in names]
    if missing:
        raise StatementMalformed(f"the header lacks {', '.join(missing)}")
    if len(set(names)) != len(names):
        raise StatementMalformed("the header names a column twice")
    # Columns are found by name; any column JHB adds later is carried but not read.
    return {name: index for index, name in enumerate(names)}


def _summary(header: Sequence[str], rows: Iterator[Sequence[str]], row_no: int) -> StatementTotals:
    if tuple(header) != SUMMARY_COLUMNS:
        raise StatementMalformed(f"row {row_no}: the summary header is {list(header)}")
    values = [_unticked(value) for value in next(rows, [])]
    if len(values) != len(SUMMARY_COLUMNS) or _COUNT.fullmatch(values[0]) is None:
        raise StatementMalformed(f"row {row_no + 1}: the summary row is {values}")
    totals = StatementTotals(
        count=int(values[0]),
        amount_minor=yuan_to_fen(values[1], "总金额"),
        fee_minor=yuan_to_fen(values[2], "总手续费"),
    )
    if any(any(value.strip() for value in row) for row in rows):
        raise StatementMalformed("rows follow the summary block")
    return totals


def _occurred_at(text: str, row_no: int) -> datetime:
    # JHB writes Beijing time without an offset (docs/banks/jhb.md §12); China has no DST.
    try:
        beijing = datetime.strptime(f"{text} +0800", f"{TIME_FORMAT} %z")
    except ValueError as exc:
        raise StatementMalformed(f"row {row_no}: {COL_TIME} {text!r} is not {TIME_FORMAT}") from exc
    return beijing.astimezone(UTC)


def _unticked(value: str) -> str:
    """JHB puts one backtick before every value so spreadsheets keep it as text (BANKS.md)."""
    return value[1:] if value.startswith(BACKTICK) else value
