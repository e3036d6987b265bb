"""BCB's daily statement ``200005``: every movement on the platform's reserve for one date, as GBK CSV.

The file is written from the books, one line per movement: direct debits (代收, +), payouts (代付, −),
bounced payouts coming back (退票, +) and anything else (其他). BCB's day-end charges (docs/clearing.md)
are booked once, when the date is first asked for after it is over (`banksim.core.dayend`), and are
shown on their item's line in 手续费(元). The answer carries the file base64 in ``FILE_CONTENT``.
"""

from __future__ import annotations

import base64
import csv
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime

from banksim.bcb import wire
from banksim.bcb.codes import BcbError, RetCode
from banksim.bcb.payout import BANK_CODE, Payouts, mask_account
from banksim.core.bank import BankContext
from banksim.core.clock import SHANGHAI
from banksim.core.dayend import FEE_KIND, bps_fee_minor, charged_fees, close_day, day_is_over
from banksim.core.money import yuan_string
from banksim.core.seed import INCOME_ACCOUNTS

ENCODING = "GBK"
HEADER = ("流水号", "商户请求号", "业务类型", "账号", "户名", "金额(元)", "手续费(元)", "完成时间")
# BCB's charges (docs/clearing.md): direct debits 15 bps half up, at least 1 fen; payouts ¥0.50 each.
DEBIT_FEE_BPS = 15
PAYOUT_FEE_MINOR = 50
DEBIT, PAYOUT, RETURN, FEE, OTHER = "代收", "代付", "退票", "手续费", "其他"
RULE = "-" * 40

SCHEMA = """
CREATE TABLE IF NOT EXISTS bcb_statement_days (statement_date TEXT PRIMARY KEY, closed_at TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Line:
    bank_ref: str
    request_no: str
    kind: str
    account_no: str
    name: str
    amount_minor: int
    fee_minor: int
    at: datetime


class Statements:
    def __init__(self, context: BankContext, payouts: Payouts) -> None:
        self.context = context
        self.books = context.books
        self.payouts = payouts
        context.books.ensure_schema(SCHEMA)

    def download(self, partner_id: str, body: ET.Element) -> ET.Element:
        """The ``STMTRSP`` answer for ``STMTREQ/SETTLE_DATE``; ``1003`` while the date is not over."""
        statement_date = _date(wire.text(body, "STMTREQ/SETTLE_DATE"))
        if not day_is_over(self.context.clock, statement_date):
            raise BcbError(RetCode.STATEMENT_NOT_READY)
        content = self.render(partner_id, statement_date)
        answer = ET.Element("BODY")
        answer.append(wire.element("STMTRSP", {
            "SETTLE_DATE": f"{statement_date:%Y%m%d}", "FILE_NAME": file_name(partner_id, statement_date),
            "FILE_CONTENT": base64.b64encode(content).decode("ascii"),
        }))
        return answer

    def render(self, partner_id: str, statement_date: date) -> bytes:
        """The file for a date that is over; the first call closes the day, later ones change nothing."""
        closed_at = self.close(statement_date)
        lines = self.lines(statement_date)
        reserve = self.context.profile.reserve_acc_no
        holder = self.books.account(reserve)
        out = io.StringIO()
        start = datetime.combine(statement_date, datetime.min.time())
        out.write(f"#{self.context.profile.name_zh}代收付对账单\n")
        out.write(f"#商户号：[{partner_id}]\n")
        out.write(f"#账号：[{mask_account(reserve)}]   户名：[{holder.holder_name if holder else ''}]\n")
        out.write(f"#起始日期：[{start:%Y-%m-%d} 00:00:00]   终止日期：[{_next(statement_date):%Y-%m-%d} 00:00:00]\n")
        out.write(f"#生成时间：[{closed_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}]\n")
        out.write(f"#{RULE}业务明细列表{RULE}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for line in lines:
            writer.writerow((line.bank_ref, line.request_no, line.kind, mask_account(line.account_no) if line.account_no
                             else "", line.name, yuan_string(line.amount_minor), yuan_string(line.fee_minor),
                             f"{line.at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}"))
        out.write(f"#{RULE}业务明细列表结束{RULE}\n")
        out.write(f"#总笔数：[{len(lines)}]\n")
        out.write(f"#总金额(元)：[{yuan_string(sum(line.amount_minor for line in lines))}]\n")
        out.write(f"#总手续费(元)：[{yuan_string(sum(line.fee_minor for line in lines))}]\n")
        return out.getvalue().encode(ENCODING)

    def close(self, statement_date: date) -> datetime:
        """Book the day's charges once (idempotent per item) and remember when the day was closed."""
        items = self._items(statement_date)
        charges = [(line.bank_ref, _charge(line)) for line in items]
        close_day(self.books, reserve_acc=self.context.profile.reserve_acc_no, income_acc=INCOME_ACCOUNTS[BANK_CODE],
                  statement_date=statement_date, charges=charges, at=self.context.clock.now())
        with self.books.tx() as conn:
            conn.execute("INSERT OR IGNORE INTO bcb_statement_days(statement_date, closed_at) VALUES (?, ?)",
                         (statement_date.isoformat(), self.context.clock.now().isoformat()))
            row = conn.execute("SELECT closed_at FROM bcb_statement_days WHERE statement_date = ?",
                               (statement_date.isoformat(),)).fetchone()
        return datetime.fromisoformat(str(row["closed_at"]))

    def lines(self, statement_date: date) -> list[Line]:
        """The statement's lines: each item with the charge booked for it, then charges with no item."""
        items = self._items(statement_date)
        fees = charged_fees(self.books, statement_date)
        lines = [Line(i.bank_ref, i.request_no, i.kind, i.account_no, i.name, i.amount_minor,
                      fees.pop(i.bank_ref, 0), i.at) for i in items]
        for row in self._movements(statement_date, only_fees=True):
            if str(row["memo"]) in fees:
                lines.append(Line(str(row["bank_ref"]), str(row["memo"]), FEE, "", "", int(str(row["amount_minor"])), 0,
                                  datetime.fromisoformat(str(row["created_at"]))))
        return lines

    def _items(self, statement_date: date) -> list[Line]:
        return [self._line(row) for row in self._movements(statement_date, only_fees=False)]

    def _movements(self, statement_date: date, *, only_fees: bool) -> list[dict[str, object]]:
        rows = self.books.query(
            "SELECT m.bank_ref, m.amount_minor, m.created_at, t.kind, t.memo, t.debit_acc, t.credit_acc"
            " FROM movements m JOIN transfers t ON t.bank_ref = m.bank_ref"
            f" WHERE m.acc_no = ? AND m.statement_date = ? AND t.kind {'=' if only_fees else '<>'} ?"
            " ORDER BY m.movement_id",
            (self.context.profile.reserve_acc_no, statement_date.isoformat(), FEE_KIND),
        )
        return [dict(row) for row in rows]

    def _line(self, row: dict[str, object]) -> Line:
        bank_ref, amount = str(row["bank_ref"]), int(str(row["amount_minor"]))
        at = datetime.fromisoformat(str(row["created_at"]))
        if row["kind"] == "direct_debit":
            req_sn = bank_ref.removeprefix(BANK_CODE)
            found = self.books.query("SELECT account_no FROM bcb_requests WHERE req_sn = ?", (req_sn,))
            account_no = str(found[0]["account_no"]) if found else str(row["debit_acc"])
            return Line(bank_ref, req_sn, DEBIT, account_no, self._holder(account_no), amount, 0, at)
        payout = self.payouts.items_by_ref(bank_ref)
        if payout is not None:
            role, item = payout
            return Line(bank_ref, str(item["sn"]), RETURN if role == "return" else PAYOUT, str(item["account_no"]),
                        str(item["account_name"]), amount, 0, at)
        counterpart = str(row["debit_acc"] if amount > 0 else row["credit_acc"])
        return Line(bank_ref, "", OTHER, counterpart, self._holder(counterpart), amount, 0, at)

    def _holder(self, account_no: str) -> str:
        account = self.books.account(account_no)
        return account.holder_name if account is not None else ""


def file_name(partner_id: str, statement_date: date) -> str:
    return f"BCB_{partner_id}_{statement_date:%Y%m%d}.csv"


def _charge(line: Line) -> int:
    if line.kind == DEBIT:
        return bps_fee_minor(line.amount_minor, DEBIT_FEE_BPS)
    if line.kind == PAYOUT:
        return PAYOUT_FEE_MINOR
    return 0


def _date(value: str) -> date:
    if len(value) != 8 or not value.isdigit():
        raise BcbError(RetCode.MALFORMED, "SETTLE_DATE must be YYYYMMDD")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as exc:
        raise BcbError(RetCode.MALFORMED, "SETTLE_DATE must be YYYYMMDD") from exc


def _next(day: date) -> date:
    return date.fromordinal(day.toordinal() + 1)
