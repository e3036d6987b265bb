"""JHB's daily statement (`bill.download`): the movements on a partner's reserve account for one date.

The answer carries the whole file: `bill_content` is base64 of the UTF-8 CSV, `bill_sha256` its
hash, `bill_name` a file name. The CSV follows BANKS.md (every value behind a backtick, a detail
block and a one-row summary block) and docs/banks/jhb.md §12. The first download of a date that
is over closes the day (the day-end charges are booked once, `banksim.core.dayend`).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from banksim.core.bank import BankContext
from banksim.core.clock import SHANGHAI
from banksim.core.dayend import FEE_KIND, bps_fee_minor, charged_fees, close_day, day_is_over
from banksim.core.money import yuan_string
from banksim.core.seed import INCOME_ACCOUNTS
from banksim.jhb.codes import JhbError, RetCode
from banksim.jhb.service import TRANSFER_KINDS, Answer
from banksim.jhb.store import JhbStore

BILL_SERVICE = "bill.download"
REFUND_KIND = "jhb_refund"
# JHB charges 12 basis points of every collection, rounded half up, at least 1 fen; refunds are
# free (docs/clearing.md). Collections are the three ways a payer pays the partner.
COLLECTION_FEE_BPS = 12
COLLECTION_KINDS = frozenset(TRANSFER_KINDS.values())

DETAIL_HEADER = ("交易时间", "交易类型", "JHB流水号", "商户订单号", "金额", "手续费", "状态")
SUMMARY_HEADER = ("总笔数", "总金额", "总手续费")
# 交易类型 by the books' transfer kind; a movement of any other kind is listed as 其他.
TYPE_NAMES: Mapping[str, str] = {
    TRANSFER_KINDS["ebank.pay"]: "网银支付",
    TRANSFER_KINDS["pay"]: "快捷支付",
    TRANSFER_KINDS["mandate.debit"]: "代扣",
    REFUND_KIND: "退款",
}
OTHER_TYPE = "其他"
STATUS_SUCCESS = "SUCCESS"
# Excel would read a long digit string as a number; the backtick keeps it text (WeChat's habit).
BACKTICK = "`"
_BILL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, slots=True)
class BillRow:
    """One detail line: a movement on the reserve, signed as the reserve moved, with its charge."""

    occurred_at: datetime
    type_name: str
    jhb_no: str
    out_no: str
    amount_minor: int
    fee_minor: int


@dataclass(frozen=True, slots=True)
class Bill:
    name: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def read_bill_date(body: Mapping[str, Any]) -> date:
    value = body.get("bill_date")
    if not isinstance(value, str) or _BILL_DATE.fullmatch(value) is None:
        raise JhbError(RetCode.MESSAGE_MALFORMED, "bill_date must be YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise JhbError(RetCode.MESSAGE_MALFORMED, "bill_date is not a real date") from exc


def collection_fee_minor(kind: str, amount_minor: int) -> int:
    """JHB's day-end charge for one item of the given transfer kind."""
    if kind in COLLECTION_KINDS:
        return bps_fee_minor(amount_minor, COLLECTION_FEE_BPS)
    return 0


class Bills:
    def __init__(self, context: BankContext, store: JhbStore) -> None:
        self._context = context
        self._store = store

    def download(self, partner_id: str, bill_date: date) -> Answer:
        bill = self.bill(partner_id, bill_date)
        body = {
            "ret_code": RetCode.SUCCESS.value,
            "ret_msg": "对账单下载成功",
            "bill_date": bill_date.isoformat(),
            "bill_name": bill.name,
            "bill_content": base64.b64encode(bill.content).decode("ascii"),
            "bill_sha256": bill.sha256,
        }
        return Answer(body)

    def bill(self, partner_id: str, bill_date: date) -> Bill:
        """Close the day if it is over (refuse with 1031 if not), then render the file."""
        if not day_is_over(self._context.clock, bill_date):
            raise JhbError(RetCode.BILL_NOT_READY)
        reserve = self._store.reserve_acc_no(partner_id) or self._context.profile.reserve_acc_no
        self.close(reserve, bill_date)
        rows = self.rows(reserve, bill_date)
        return Bill(name=f"JHB_{partner_id}_{bill_date:%Y%m%d}.csv", content=render(rows).encode("utf-8"))

    def close(self, reserve: str, bill_date: date) -> None:
        """Book the day-end charge of every item on the reserve for `bill_date`; books each once."""
        items = self._items(reserve, bill_date)
        charges = [(item["bank_ref"], collection_fee_minor(item["kind"], item["amount"])) for item in items]
        close_day(
            self._context.books,
            reserve_acc=reserve,
            income_acc=INCOME_ACCOUNTS[self._context.code],
            statement_date=bill_date,
            charges=charges,
            at=self._context.clock.now(),
        )

    def rows(self, reserve: str, bill_date: date) -> list[BillRow]:
        """The detail lines: each item on the reserve with the charge that was booked for it."""
        fees = charged_fees(self._context.books, bill_date)
        return [
            BillRow(
                occurred_at=datetime.fromisoformat(item["created_at"]),
                type_name=TYPE_NAMES.get(item["kind"], OTHER_TYPE),
                jhb_no=item["bank_ref"],
                out_no=item["out_trade_no"] or item["out_refund_no"] or "",
                amount_minor=int(item["movement"]),
                fee_minor=fees.get(item["bank_ref"], 0),
            )
            for item in self._items(reserve, bill_date)
        ]

    def _items(self, reserve: str, bill_date: date) -> list[sqlite3.Row]:
        # Day-end charges are not items: each is shown in the 手续费 of the item it was charged for.
        return self._context.books.query(
            "SELECT m.amount_minor AS movement, t.amount_minor AS amount, t.bank_ref, t.kind, t.created_at,"
            " p.out_trade_no, r.out_refund_no"
            " FROM movements m JOIN transfers t ON t.bank_ref = m.bank_ref"
            " LEFT JOIN jhb_payments p ON p.jhb_trade_no = t.bank_ref"
            " LEFT JOIN jhb_refunds r ON r.jhb_refund_no = t.bank_ref"
            " WHERE m.acc_no = ? AND m.statement_date = ? AND t.kind != ?"
            " ORDER BY m.movement_id",
            (reserve, bill_date.isoformat(), FEE_KIND),
        )


def render(rows: Iterable[BillRow]) -> str:
    """The CSV: header, one line per row, then the summary header and its one line (CRLF endings)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DETAIL_HEADER)
    count = amount_minor = fee_minor = 0
    for row in rows:
        writer.writerow(
            _ticked(
                f"{row.occurred_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}",
                row.type_name,
                row.jhb_no,
                row.out_no,
                yuan_string(row.amount_minor),
                yuan_string(row.fee_minor),
                STATUS_SUCCESS,
            )
        )
        count += 1
        amount_minor += row.amount_minor
        fee_minor += row.fee_minor
    writer.writerow(SUMMARY_HEADER)
    writer.writerow(_ticked(str(count), yuan_string(amount_minor), yuan_string(fee_minor)))
    return out.getvalue()


def _ticked(*values: str) -> list[str]:
    return [BACKTICK + value for value in values]
