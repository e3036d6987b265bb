"""HBB's statement file format (txnType 76, docs/banks/hbb.md "Statement"): render and parse, no I/O.

One fixed-width ASCII line per movement on the reserve (163 characters, fields separated by one
space), then a ``TRL`` trailer with the count and totals. Parsing is by slicing at fixed offsets,
so a million-line file costs a few microseconds per line and is never held in memory.
``render_line`` is the same layout the simulator writes, for benchmarks and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from functools import lru_cache
from typing import Final

from tianpay.channels.hbb.mapping import BEIJING
from tianpay.ports.statements import StatementItemKind, StatementLine, StatementMalformed, StatementTotals

BANK: Final = "HBB"
LINE_LENGTH: Final = 163
TRAILER_LENGTH: Final = 3 + 1 + 10 + 1 + 16 + 1 + 15 + 1 + 16
ZERO_QUERY_ID: Final = "0" * 21

K = StatementItemKind
# txnCode → (kind, sign of the reserve's movement). S.. lines are HBB's own orders, P.. lines
# card-switch (TCS) money settled onto the reserve; S99 takes its sign from netAmt.
TXN_CODES: Final[dict[str, tuple[StatementItemKind, int]]] = {
    "S22": (K.COLLECTION, 1),
    "S30": (K.REFUND, -1),
    "S40": (K.PAYOUT, -1),
    "S41": (K.PAYOUT_RETURN, 1),
    "S50": (K.FEE, -1),
    "S99": (K.OTHER, 0),
    "P22": (K.COLLECTION, 1),  # POS purchase
    "P23": (K.REFUND, -1),  # POS void
    "P24": (K.REFUND, -1),  # reversal of a POS purchase
    "P25": (K.COLLECTION, 1),  # reversal of a POS void
}
_ORDER_CODES: Final = frozenset({"S22", "S30", "S40", "S41"})
_POS_CODES: Final = frozenset({"P22", "P23", "P24", "P25"})
_REVERSAL_CODES: Final = frozenset({"P24", "P25"})


def render_line(
    txn_code: str,
    query_id: str,
    order_id: str,
    txn_time: str,
    acc_no_masked: str,
    signed_amount_minor: int,
    fee_minor: int,
    orig_qry_id: str = ZERO_QUERY_ID,
) -> str:
    """One statement line (without its newline) from values; ``acc_no_masked`` must already be masked."""
    net_minor = signed_amount_minor - fee_minor
    return " ".join(
        (
            txn_code,
            query_id.rjust(21, "0"),
            order_id.ljust(40),
            txn_time,
            acc_no_masked.ljust(19),
            f"{abs(signed_amount_minor):012d}",
            f"{fee_minor:012d}",
            f"{'-' if net_minor < 0 else '+'}{abs(net_minor):012d}",
            orig_qry_id.rjust(21, "0"),
        )
    )


def render_trailer(count: int, amount_minor: int, fee_minor: int) -> str:
    """The ``TRL`` line: item count, signed amount total, fee total, signed net total."""
    net_minor = amount_minor - fee_minor
    return " ".join(
        (
            "TRL",
            f"{count:010d}",
            f"{'-' if amount_minor < 0 else '+'}{abs(amount_minor):015d}",
            f"{fee_minor:015d}",
            f"{'-' if net_minor < 0 else '+'}{abs(net_minor):015d}",
        )
    )


def parse_lines(lines: Iterable[str], statement_date: date) -> Iterator[StatementLine]:
    """Parse a statement's text lines (newlines allowed) into StatementLines; StatementMalformed at
    the first bad line, or at the end when the lines do not add up to the trailer (or it is missing)."""
    count = amount_total = fee_total = 0
    totals: StatementTotals | None = None
    line_no = 0
    for raw in lines:
        line_no += 1
        line = raw.rstrip("\r\n")
        if totals is not None:
            raise StatementMalformed(f"line {line_no}: text after the trailer")
        if line.startswith("TRL"):
            totals = _trailer(line, line_no)
            continue
        parsed = parse_line(line, line_no, statement_date)
        count += 1
        amount_total += parsed.amount_minor
        fee_total += parsed.fee_minor
        yield parsed
    if totals is None:
        raise StatementMalformed("the statement has no TRL trailer")
    if (count, amount_total, fee_total) != (totals.count, totals.amount_minor, totals.fee_minor):
        raise StatementMalformed("the lines do not add up to the trailer's totals")


def parse_line(line: str, line_no: int, statement_date: date) -> StatementLine:
    """One item line; raises StatementMalformed with the line number (never the line's content)."""
    if len(line) != LINE_LENGTH:
        raise StatementMalformed(f"line {line_no}: {len(line)} characters, expected {LINE_LENGTH}")
    if not (line[3] == line[25] == line[66] == line[81] == line[101] == line[114] == line[127] == line[141] == " "):
        raise StatementMalformed(f"line {line_no}: the fields are not separated by single spaces")
    code = line[0:3]
    known = TXN_CODES.get(code)
    if known is None:
        raise StatementMalformed(f"line {line_no}: unknown txnCode {code!r}")
    kind, sign = known
    query_id, order_id, txn_time = line[4:25], line[26:66].rstrip(), line[67:81]
    txn_amt, fee, net, orig_qry_id = line[102:114], line[115:127], line[128:141], line[142:163]
    if not (
        query_id.isdigit()
        and txn_amt.isdigit()
        and fee.isdigit()
        and net[1:].isdigit()
        and net[0] in "+-"
        and orig_qry_id.isdigit()
        and order_id
        and order_id.isascii()
    ):
        raise StatementMalformed(f"line {line_no}: a field is not in its format")
    amount, fee_minor, net_minor = int(txn_amt), int(fee), int(net)
    if sign == 0:
        sign = -1 if net_minor < 0 else 1
    signed = sign * amount
    if signed - fee_minor != net_minor:
        raise StatementMalformed(f"line {line_no}: netAmt is not txnAmt minus fee")
    platform_ref = switch_ref = original_ref = None
    if code in _ORDER_CODES:
        bank_ref = query_id if code != "S41" else query_id + "RET"
        platform_ref = platform_ref_for(order_id)
    elif code in _POS_CODES:
        switch_ref = order_id
        if code in _REVERSAL_CODES:
            original_ref = order_id
            bank_ref = f"TCS{order_id}R"
        else:
            bank_ref = f"TCS{order_id}"
    else:
        bank_ref = order_id
    return StatementLine(
        bank=BANK,
        statement_date=statement_date,
        line_no=line_no,
        kind=kind,
        bank_ref=bank_ref,
        amount_minor=signed,
        fee_minor=fee_minor,
        platform_ref=platform_ref,
        switch_ref=switch_ref,
        occurred_at=_beijing_time(txn_time, line_no),
        original_ref=original_ref,
    )


def platform_ref_for(order_id: str) -> str | None:
    """The platform id an orderId was made from, or None when it is not one of ours.

    The same rule as ``mapping.platform_id_for`` (8–40 ASCII letters or digits, a lower-case
    3-letter kind first), checked with string methods instead of two regular expressions because
    it runs once per line of a file that may hold a million; a test keeps the two in agreement.
    """
    kind = order_id[:3]
    if 8 <= len(order_id) <= 40 and kind.isalpha() and kind.islower() and order_id.isascii() and order_id.isalnum():
        return f"{kind}_{order_id[3:]}"
    return None


def _beijing_time(stamp: str, line_no: int) -> datetime:
    try:
        return _parse_stamp(stamp)
    except ValueError:
        raise StatementMalformed(f"line {line_no}: txnTime is not a valid YYYYMMDDhhmmss") from None


@lru_cache(maxsize=65_536)
def _parse_stamp(stamp: str) -> datetime:
    # A day has at most 86,400 distinct stamps and many lines share one, so the cache pays.
    if len(stamp) != 14 or not stamp.isdigit():
        raise ValueError(stamp)
    return datetime(
        int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]),
        int(stamp[8:10]), int(stamp[10:12]), int(stamp[12:14]), tzinfo=BEIJING,
    )


def _trailer(line: str, line_no: int) -> StatementTotals:
    parts = line.split(" ")
    if (
        len(line) != TRAILER_LENGTH
        or len(parts) != 5
        or not parts[1].isdigit()
        or parts[2][:1] not in ("+", "-")
        or not parts[2][1:].isdigit()
        or not parts[3].isdigit()
        or parts[4][:1] not in ("+", "-")
        or not parts[4][1:].isdigit()
    ):
        raise StatementMalformed(f"line {line_no}: the trailer is not in its format")
    totals = StatementTotals(count=int(parts[1]), amount_minor=int(parts[2]), fee_minor=int(parts[3]))
    if totals.amount_minor - totals.fee_minor != int(parts[4]):
        raise StatementMalformed(f"line {line_no}: the trailer's net is not amount minus fee")
    return totals
