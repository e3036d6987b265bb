"""HBB's daily statement (对账单, txnType 76 on `fileTransfer.do`): the reserve account's day as a file.

The file is rendered from the books: one fixed-width line per movement on the platform's reserve
account whose statement date is D, then a trailer with the count and totals; `fileContent` is
base64 of the zlib-compressed text. Before the first rendering the day is closed: HBB books its
charges (collections 10 bps half up, minimum 1 fen; payouts ¥1.00; refunds and POS money free) as
transfers to its income account, which the item lines then show in their `fee` column. Layout,
codes and conventions: docs/banks/hbb.md "Statement".
"""

from __future__ import annotations

import base64
import sqlite3
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from banksim.core.cards import mask
from banksim.core.clock import SHANGHAI
from banksim.core.dayend import FEE_KIND, bps_fee_minor, charged_fees, close_day, day_is_over
from banksim.core.seed import CLEARING_ACC_NO, INCOME_ACCOUNTS
from banksim.hbb import wire
from banksim.hbb.gateway import AcpError, Gateway
from banksim.hbb.orders import Order, OrderStatus
from banksim.hbb.wire import FormatError, RespCode, TxnType

COLLECTION_FEE_BPS = 10
PAYOUT_FEE_MINOR = 100
ZERO_QUERY_ID = "0" * 21

# txnCode of each line (docs/banks/hbb.md "Statement"): S.. are HBB's own orders, P.. card-switch
# (TCS) money settled onto the reserve, S50 a charge not attached to an item, S99 anything else.
CONSUME, REFUND, PAYOUT, PAYOUT_RETURN, FEE, OTHER = "S22", "S30", "S40", "S41", "S50", "S99"
POS_PURCHASE, POS_VOID, POS_PURCHASE_REVERSED, POS_VOID_REVERSED = "P22", "P23", "P24", "P25"
TRAILER = "TRL"


@dataclass(frozen=True, slots=True)
class StatementItem:
    """One line before the fee column is known: what moved, why, and who the counterpart was."""

    item_ref: str  # the transfer's bank_ref: the charge for this item is booked as FEE<item_ref>
    txn_code: str
    query_id: str
    order_id: str
    txn_time: str
    acc_no: str  # masked, or blank when the counterpart is another bank
    signed_amount_minor: int
    orig_qry_id: str
    fee_minor: int  # what HBB charges for this item at day end


def render_line(
    txn_code: str,
    query_id: str,
    order_id: str,
    txn_time: str,
    acc_no: str,
    signed_amount_minor: int,
    fee_minor: int,
    orig_qry_id: str,
) -> str:
    """One statement line: fields of fixed width, separated by one space (163 characters)."""
    net_minor = signed_amount_minor - fee_minor
    return " ".join(
        (
            txn_code,
            query_id.rjust(21, "0"),
            order_id.ljust(40),
            txn_time,
            acc_no.ljust(19),
            f"{abs(signed_amount_minor):012d}",
            f"{fee_minor:012d}",
            f"{'-' if net_minor < 0 else '+'}{abs(net_minor):012d}",
            orig_qry_id.rjust(21, "0"),
        )
    )


def render_trailer(count: int, amount_minor: int, fee_minor: int) -> str:
    """The last line: how many item lines, and their signed amount, fee and signed net totals."""
    net_minor = amount_minor - fee_minor
    return " ".join(
        (
            TRAILER,
            f"{count:010d}",
            f"{'-' if amount_minor < 0 else '+'}{abs(amount_minor):015d}",
            f"{fee_minor:015d}",
            f"{'-' if net_minor < 0 else '+'}{abs(net_minor):015d}",
        )
    )


def statement_date_for(settle_date: str, today: date) -> date:
    """The most recent date with month-day `settle_date` (MMDD) that is not after `today`."""
    if len(settle_date) != 4 or not settle_date.isdigit():
        raise FormatError("settleDate must be MMDD")
    month, day = int(settle_date[:2]), int(settle_date[2:])
    # Eight years back always reaches a 29 February; any other valid MMDD is found in two tries.
    for year in range(today.year, today.year - 9, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    raise FormatError("settleDate is not a calendar date")


def statement(gateway: Gateway, fields: Mapping[str, str]) -> dict[str, str]:
    """txnType 76: close the day if it is over, then answer the file (the same bytes every time)."""
    wire.require(
        fields, "version", "encoding", "txnType", "txnSubType", "bizType", "accessType", "merId", "txnTime",
        "settleDate", "fileType",
    )
    wire.expect(fields, "version", wire.VERSION)
    wire.expect(fields, "txnType", TxnType.STATEMENT)
    wire.expect(fields, "txnSubType", "01")
    wire.expect(fields, "bizType", wire.BizType.GENERIC)
    wire.expect(fields, "accessType", "0")
    wire.expect(fields, "fileType", "00")
    wire.parse_time(fields["txnTime"], "txnTime")
    clock = gateway.context.clock
    statement_date = statement_date_for(fields["settleDate"], clock.business_date())
    if not day_is_over(clock, statement_date):
        raise AcpError(RespCode.FILE_NOT_READY)
    text = render_statement(gateway, statement_date)
    answer = {
        **wire.echo(fields),
        "settleDate": fields["settleDate"],
        "fileType": "00",
        "fileName": f"HBB_{fields['merId']}_{statement_date:%Y%m%d}.txt",
        "fileContent": base64.b64encode(zlib.compress(text.encode("ascii"), 6)).decode("ascii"),
        "respCode": RespCode.SUCCESS.value,
        "respMsg": wire.message(RespCode.SUCCESS),
    }
    return gateway.sign(answer)


def render_statement(gateway: Gateway, statement_date: date) -> str:
    """Close `statement_date` (book HBB's charges once) and render its file as text."""
    context = gateway.context
    reserve = context.profile.reserve_acc_no
    items = statement_items(gateway, statement_date)
    close_day(
        context.books,
        reserve_acc=reserve,
        income_acc=INCOME_ACCOUNTS[context.code],
        statement_date=statement_date,
        charges=((item.item_ref, item.fee_minor) for item in items),
        at=context.clock.now(),
    )
    # The fee column shows what was booked, so a rendering after a change of tariff still shows
    # the charges of the day as they were taken.
    booked = charged_fees(context.books, statement_date)
    lines = []
    amount_total = fee_total = 0
    for item in items:
        fee_minor = booked.get(item.item_ref, 0)
        lines.append(
            render_line(
                item.txn_code, item.query_id, item.order_id, item.txn_time, item.acc_no,
                item.signed_amount_minor, fee_minor, item.orig_qry_id,
            )
        )
        amount_total += item.signed_amount_minor
        fee_total += fee_minor
    lines.append(render_trailer(len(items), amount_total, fee_total))
    return "\n".join(lines) + "\n"


def statement_items(gateway: Gateway, statement_date: date) -> list[StatementItem]:
    """Every movement on the reserve for `statement_date`, as items, fee transfers for items left out."""
    books = gateway.context.books
    rows = books.query(
        "SELECT m.amount_minor AS moved, t.bank_ref, t.kind, t.debit_acc, t.credit_acc, t.created_at, t.memo"
        " FROM movements m JOIN transfers t ON t.bank_ref = m.bank_ref"
        " WHERE m.acc_no = ? AND m.statement_date = ? ORDER BY m.movement_id",
        (gateway.context.profile.reserve_acc_no, statement_date.isoformat()),
    )
    items = [_item(gateway, row) for row in rows if row["kind"] != FEE_KIND]
    charged_items = {item.item_ref for item in items}
    items.extend(
        _unattached_fee(row) for row in rows if row["kind"] == FEE_KIND and row["memo"] not in charged_items
    )
    return items


def _item(gateway: Gateway, row: sqlite3.Row) -> StatementItem:
    bank_ref, kind, moved = str(row["bank_ref"]), str(row["kind"]), int(row["moved"])
    orders = gateway.orders
    if kind in ("consume", "refund", "payout"):
        order = orders.by_query_id(bank_ref)
        if order is not None:
            return _order_item(bank_ref, order, moved, _counterpart(row, moved))
    if kind.startswith("clearing_"):
        inner, leg = _clearing_leg(bank_ref)
        order = orders.by_query_id(inner) if inner.isdigit() else None
        if order is not None and order.txn_type == TxnType.PAYOUT and leg == "OUT":
            return _order_item(bank_ref, order, moved, mask(order.acc_no))
        if order is not None and order.txn_type == TxnType.PAYOUT and leg == "RET":
            return _plain_item(row, PAYOUT_RETURN, order.query_id, order.order_id, mask(order.acc_no), orig=inner)
        if inner.startswith("TCS") and leg in ("IN", "OUT"):
            return _pos_item(row, inner, moved, "")
    if kind in ("pos_purchase", "pos_refund") and bank_ref.startswith("TCS"):
        return _pos_item(row, bank_ref, moved, _counterpart(row, moved))
    return _plain_item(row, OTHER, ZERO_QUERY_ID, bank_ref, _counterpart(row, moved))


def _order_item(bank_ref: str, order: Order, moved: int, acc_no: str) -> StatementItem:
    if order.txn_type == TxnType.PAYOUT:
        code = PAYOUT
        # A payout the clearing sent back failed; HBB does not charge for it.
        fee_minor = PAYOUT_FEE_MINOR if order.status is OrderStatus.SUCCEEDED else 0
    elif order.txn_type == TxnType.REFUND:
        code, fee_minor = REFUND, 0
    else:
        code, fee_minor = CONSUME, bps_fee_minor(order.amount_minor, COLLECTION_FEE_BPS)
    return StatementItem(
        item_ref=bank_ref,
        txn_code=code,
        query_id=order.query_id,
        order_id=order.order_id,
        txn_time=order.txn_time,
        acc_no=acc_no,
        signed_amount_minor=moved,
        orig_qry_id=order.orig_query_id or ZERO_QUERY_ID,
        fee_minor=fee_minor,
    )


def _pos_item(row: sqlite3.Row, inner: str, moved: int, acc_no: str) -> StatementItem:
    """TCS money: `TCS<rrn>` is a purchase (in) or a void (out); `TCS<rrn>R` reverses the item <rrn>."""
    rrn = inner[3:].removesuffix("R")
    if inner.endswith("R"):
        code = POS_VOID_REVERSED if moved > 0 else POS_PURCHASE_REVERSED
    else:
        code = POS_PURCHASE if moved > 0 else POS_VOID
    return _plain_item(row, code, ZERO_QUERY_ID, rrn, acc_no)


def _plain_item(
    row: sqlite3.Row, code: str, query_id: str, order_id: str, acc_no: str, orig: str = ZERO_QUERY_ID
) -> StatementItem:
    return StatementItem(
        item_ref=str(row["bank_ref"]),
        txn_code=code,
        query_id=query_id,
        order_id=order_id[:40],
        txn_time=_beijing(str(row["created_at"])),
        acc_no=acc_no,
        signed_amount_minor=int(row["moved"]),
        orig_qry_id=orig,
        fee_minor=0,
    )


def _unattached_fee(row: sqlite3.Row) -> StatementItem:
    return _plain_item(row, FEE, ZERO_QUERY_ID, str(row["bank_ref"]), "")


def _clearing_leg(bank_ref: str) -> tuple[str, str]:
    """`CLR<clearing_ref><leg>` (banksim.core.clearing) → (clearing_ref, leg)."""
    body = bank_ref.removeprefix("CLR")
    for leg in ("OUT", "RET", "IN"):
        if body.endswith(leg):
            return body[: -len(leg)], leg
    return body, ""


def _counterpart(row: sqlite3.Row, moved: int) -> str:
    other = str(row["credit_acc"] if moved < 0 else row["debit_acc"])
    return "" if other == CLEARING_ACC_NO else mask(other)


def _beijing(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S")

