"""TCS's POS clearing file behind the platform's StatementChannel (docs/banks/tcs.md §9).

The file is fetched from the switch's HTTP admin address (``GET /_sim/clearing-file``) straight to
disk, and read back line by line: ``P22`` purchases become COLLECTION lines and ``P23`` voids REFUND
lines, both keyed by the switch's RRN (a void also names its purchase's RRN as ``original_ref``).
The ``TOTAL`` line is checked at the end. TCS charges nothing (docs/clearing.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Final

import httpx
import structlog

from tianpay.ports.statements import (
    DownloadedStatement,
    StatementItemKind,
    StatementLine,
    StatementMalformed,
    StatementNotReady,
    StatementUnavailable,
)

log = structlog.stdlib.get_logger(__name__)

CODE: Final = "TCS"
CLEARING_FILE_PATH: Final = "/_sim/clearing-file"
LINE_LENGTH: Final = 146
# Positions of the single spaces between the fields of a line (§9).
_SEPARATORS: Final = (3, 12, 24, 33, 49, 56, 69, 76, 96, 109, 111, 115, 128, 139)
_ZERO_RRN: Final = "0" * 12


class TcsStatementChannel:
    """The clearing file of one acquirer (the platform) at TCS."""

    def __init__(self, *, admin_url: str, acquirer_id: str, http: httpx.Client) -> None:
        self.code = CODE
        self._admin_url = admin_url.rstrip("/")
        self._acquirer_id = acquirer_id
        self._http = http

    def close(self) -> None:
        self._http.close()

    def download_statement(self, statement_date: date, into: Path) -> DownloadedStatement:
        params = {"date": statement_date.isoformat(), "acquirer_id": self._acquirer_id}
        into.parent.mkdir(parents=True, exist_ok=True)
        part = into.with_name(into.name + ".part")
        try:
            with self._http.stream("GET", self._admin_url + CLEARING_FILE_PATH, params=params) as response:
                if response.status_code == 409:
                    raise StatementNotReady(f"TCS has not closed {statement_date.isoformat()} yet")
                if response.status_code != 200:
                    log.warning("tcs.clearing_file_http_status", status=response.status_code)
                    raise StatementUnavailable(f"TCS answered HTTP {response.status_code}")
                with part.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.HTTPError as error:
            part.unlink(missing_ok=True)
            log.warning("tcs.clearing_file_transport_error", error=type(error).__name__)
            raise StatementUnavailable("the exchange with TCS failed") from None
        part.replace(into)
        file_name = f"TCS_{self._acquirer_id}_{statement_date:%Y%m%d}.txt"
        return DownloadedStatement(bank=CODE, statement_date=statement_date, path=into, file_name=file_name)

    def read_statement(self, path: Path, statement_date: date) -> Iterator[StatementLine]:
        try:
            with path.open("r", encoding="ascii", newline="\n") as handle:
                yield from parse_clearing_lines(handle, statement_date)
        except UnicodeDecodeError:
            raise StatementMalformed("the clearing file is not ASCII text") from None


def parse_clearing_lines(lines: Iterable[str], statement_date: date) -> Iterator[StatementLine]:
    """Parse the clearing file's lines; StatementMalformed on a bad line or totals that do not add up."""
    wanted = f"{statement_date:%Y%m%d}"
    count = debit_total = credit_total = 0
    totals: tuple[int, int, int] | None = None
    line_no = 0
    for raw in lines:
        line_no += 1
        line = raw.rstrip("\r\n")
        if totals is not None:
            raise StatementMalformed(f"line {line_no}: text after the TOTAL line")
        if line.startswith("TOTAL"):
            totals = _total(line, line_no)
            continue
        parsed = _line(line, line_no, statement_date, wanted)
        count += 1
        if parsed.amount_minor > 0:
            debit_total += parsed.amount_minor
        else:
            credit_total -= parsed.amount_minor
        yield parsed
    if totals is None:
        raise StatementMalformed("the clearing file has no TOTAL line")
    if totals != (count, debit_total, credit_total):
        raise StatementMalformed("the lines do not add up to the TOTAL line")


def _line(line: str, line_no: int, statement_date: date, wanted: str) -> StatementLine:
    if len(line) != LINE_LENGTH or any(line[position] != " " for position in _SEPARATORS):
        raise StatementMalformed(f"line {line_no}: not a clearing-file line")
    kind_code, clear_date, rrn, amount, sign, orig_rrn = (
        line[0:3], line[4:12], line[57:69], line[97:109], line[110], line[116:128]
    )
    if not (rrn.isdigit() and amount.isdigit() and orig_rrn.isdigit()):
        raise StatementMalformed(f"line {line_no}: a field is not in its format")
    if clear_date != wanted:
        raise StatementMalformed(f"line {line_no}: the clearing date is not the file's date")
    if (kind_code, sign) == ("P22", "D"):
        kind, signed, original_ref = StatementItemKind.COLLECTION, int(amount), None
    elif (kind_code, sign) == ("P23", "C"):
        if orig_rrn == _ZERO_RRN:
            raise StatementMalformed(f"line {line_no}: a void without its purchase's RRN")
        kind, signed, original_ref = StatementItemKind.REFUND, -int(amount), orig_rrn
    else:
        raise StatementMalformed(f"line {line_no}: unknown type or sign")
    return StatementLine(
        bank=CODE,
        statement_date=statement_date,
        line_no=line_no,
        kind=kind,
        bank_ref=rrn,
        amount_minor=signed,
        switch_ref=rrn,
        original_ref=original_ref,
    )


def _total(line: str, line_no: int) -> tuple[int, int, int]:
    parts = line.split(" ")
    if len(parts) != 4 or not all(part.isdigit() for part in parts[1:]):
        raise StatementMalformed(f"line {line_no}: the TOTAL line is not in its format")
    return int(parts[1]), int(parts[2]), int(parts[3])


def build_tcs_statement_channel(
    admin_url: str, acquirer_id: str, *, http_client: httpx.Client | None = None, timeout_s: float = 60.0
) -> TcsStatementChannel:
    http = http_client or httpx.Client(timeout=httpx.Timeout(timeout_s))
    return TcsStatementChannel(admin_url=admin_url, acquirer_id=acquirer_id, http=http)
