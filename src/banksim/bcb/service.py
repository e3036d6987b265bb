"""BCB's transactions behind ``/aipg/ProcessServlet``, one handler per ``TRX_CODE`` (BANKS.md "BCB").

``100010``/``100011``/``100012`` (mandate register → SMS, confirm → mandate number, revoke) are
this simulator's extension (docs/banks/bcb.md); ``100002`` debits a card against an active mandate
(its limits enforced here too); ``200004`` answers for a ``REQ_SN``; ``100001`` batch payout and
``200005`` statement live in `payout` and `statement`. Every ``REQ_SN`` is accepted once (``1102``).
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives.asymmetric import rsa

from banksim.bcb import wire
from banksim.bcb.codes import MESSAGES, BcbError, RetCode
from banksim.bcb.payout import Payouts
from banksim.bcb.statement import Statements
from banksim.core.bank import BankContext
from banksim.core.books import Declined, DeclineReason
from banksim.core.cardholders import cardholder, elements_match, same_name
from banksim.core.magic import QUERIES_BEFORE_SUCCESS, Magic, magic_for, statement_date_for
from banksim.core.sms import CodeCheck

BANK_CODE = "BCB"
SMS_TEMPLATE = (
    "您正在签约滨海商业银行代扣协议，尾号{last4}的银行卡，单笔限额{per_debit}元，验证码{{code}}，5分钟内有效。"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS bcb_mandates (
    token TEXT PRIMARY KEY, mandate_no TEXT UNIQUE, partner_id TEXT NOT NULL, card_no TEXT NOT NULL,
    phone TEXT NOT NULL, max_per_debit_minor INTEGER NOT NULL, max_per_month_minor INTEGER NOT NULL,
    valid_until TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bcb_requests (
    req_sn TEXT PRIMARY KEY, partner_id TEXT NOT NULL, trx_code TEXT NOT NULL, ret_code TEXT NOT NULL,
    sn TEXT NOT NULL DEFAULT '', amount_minor INTEGER NOT NULL DEFAULT 0, account_no TEXT NOT NULL DEFAULT '',
    mandate_no TEXT NOT NULL DEFAULT '', month TEXT NOT NULL DEFAULT '', queries_seen INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, fin_time TEXT NOT NULL DEFAULT ''
);
"""

INTERMEDIATE = frozenset({"2000", "2001", "2003", "2005", "2007", "2008"})
_DECLINES = {
    DeclineReason.INSUFFICIENT_FUNDS: RetCode.INSUFFICIENT_FUNDS,
    DeclineReason.OVER_LIMIT: RetCode.OVER_LIMIT,
    DeclineReason.ACCOUNT_FROZEN: RetCode.ACCOUNT_FROZEN,
    DeclineReason.ACCOUNT_CLOSED: RetCode.ACCOUNT_CLOSED,
    DeclineReason.NO_SUCH_ACCOUNT: RetCode.ACCOUNT_CLOSED,
}


@dataclass(frozen=True, slots=True)
class Result:
    """What a handler answers: INFO's RET_CODE, the BODY, and whether the answer is lost (96/97)."""

    code: RetCode | str
    body: ET.Element
    withhold: bool = False
    message: str = ""


Handler = Callable[["BcbService", str, str, ET.Element], Result]


class BcbService:
    def __init__(self, context: BankContext, key: rsa.RSAPrivateKey | None = None) -> None:
        self.context = context
        self.books = context.books
        context.books.ensure_schema(SCHEMA)
        # The key signs what BCB sends on its own (the 300001 bounce); without it no notice is sent.
        self.payouts = Payouts(context, key)
        self.statements = Statements(context, self.payouts)

    def handle(self, trx_code: str, partner_id: str, req_sn: str, body: ET.Element) -> Result:
        handler = HANDLERS.get(trx_code)
        if handler is None:
            raise BcbError(RetCode.MALFORMED, f"TRX_CODE {trx_code} is not offered")
        if not req_sn or self.books.query("SELECT 1 FROM bcb_requests WHERE req_sn = ?", (req_sn,)):
            raise BcbError(RetCode.DUPLICATE_REQ_SN)
        return handler(self, partner_id, req_sn, body)

    # Mandates (the BCB extension, docs/banks/bcb.md)

    def mandate_apply(self, partner_id: str, req_sn: str, body: ET.Element) -> Result:
        fields = _fields(body, "MANDATE_REQ", "ACCOUNT_NO", "ACCOUNT_NAME", "ID", "TEL", "MAX_AMOUNT",
                         "MAX_MONTH_AMOUNT", "END_DATE")
        holder = cardholder(self.books, BANK_CODE, fields["ACCOUNT_NO"])
        if holder is None:
            raise BcbError(RetCode.CARD_INVALID)
        if not elements_match(holder, name=fields["ACCOUNT_NAME"], id_number=fields["ID"], phone=fields["TEL"]):
            raise BcbError(RetCode.ELEMENTS_MISMATCH)
        if holder.is_frozen:
            raise BcbError(RetCode.ACCOUNT_FROZEN)
        per_debit, per_month = _fen(fields["MAX_AMOUNT"]), _fen(fields["MAX_MONTH_AMOUNT"])
        try:
            until = date.fromisoformat(fields["END_DATE"])
        except ValueError as exc:
            raise BcbError(RetCode.MALFORMED, "END_DATE must be YYYYMMDD") from exc
        if len(fields["END_DATE"]) != 8:
            raise BcbError(RetCode.MALFORMED, "END_DATE must be YYYYMMDD")
        if until < self.context.clock.business_date() or per_debit > per_month:
            raise BcbError(RetCode.MALFORMED, "END_DATE has passed or MAX_AMOUNT exceeds MAX_MONTH_AMOUNT")
        token = secrets.token_hex(16)
        now = self.context.clock.now()
        with self.books.tx() as conn:
            conn.execute(
                "INSERT INTO bcb_mandates(token, partner_id, card_no, phone, max_per_debit_minor, max_per_month_minor,"
                " valid_until, status, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (token, partner_id, holder.card_no, holder.phone, per_debit, per_month, until.isoformat(), "APPLIED",
                 now.isoformat()),
            )
        self._record(req_sn, partner_id, "100010", RetCode.SUCCESS)
        self.context.sms.issue_code(
            ref=f"bcb-mandate:{token}", phone=holder.phone, purpose="bcb-mandate-sign",
            template=SMS_TEMPLATE.format(last4=holder.card_no[-4:], per_debit=f"{per_debit / 100:.2f}"),
        )
        return Result(RetCode.SUCCESS, _body("MANDATE_RSP", {"TOKEN": token}))

    def mandate_confirm(self, partner_id: str, req_sn: str, body: ET.Element) -> Result:
        fields = _fields(body, "MANDATE_REQ", "TOKEN", "VERIFY_CODE")
        rows = self.books.query("SELECT * FROM bcb_mandates WHERE token = ? AND partner_id = ?",
                                (fields["TOKEN"], partner_id))
        if not rows:
            raise BcbError(RetCode.MANDATE_INVALID)
        mandate_no = rows[0]["mandate_no"]
        if not mandate_no:
            check = self.context.sms.check_code(ref=f"bcb-mandate:{fields['TOKEN']}", code=fields["VERIFY_CODE"])
            if check is not CodeCheck.OK:
                raise BcbError(RetCode.SMS_WRONG)
            mandate_no = f"BCBM{self.books.next_sequence('bcb_mandate'):012d}"
            with self.books.tx() as conn:
                conn.execute("UPDATE bcb_mandates SET mandate_no = ?, status = 'ACTIVE' WHERE token = ?",
                             (mandate_no, fields["TOKEN"]))
        self._record(req_sn, partner_id, "100011", RetCode.SUCCESS)
        return Result(RetCode.SUCCESS, _body("MANDATE_RSP", {"MANDATE_NO": mandate_no, "STATUS": "ACTIVE"}))

    def mandate_revoke(self, partner_id: str, req_sn: str, body: ET.Element) -> Result:
        mandate_no = _fields(body, "MANDATE_REQ", "MANDATE_NO")["MANDATE_NO"]
        self._mandate(partner_id, mandate_no)
        with self.books.tx() as conn:
            conn.execute("UPDATE bcb_mandates SET status = 'REVOKED' WHERE mandate_no = ?", (mandate_no,))
        self._record(req_sn, partner_id, "100012", RetCode.SUCCESS)
        return Result(RetCode.SUCCESS, _body("MANDATE_RSP", {"MANDATE_NO": mandate_no, "STATUS": "REVOKED"}))

    # 100002 direct debit (代收)

    def debit(self, partner_id: str, req_sn: str, body: ET.Element) -> Result:
        fields = _fields(body, "TRANS", "MANDATE_NO", "SN", "ACCOUNT_NO", "ACCOUNT_NAME", "AMOUNT")
        amount = _fen(fields["AMOUNT"])
        magic = magic_for(amount)
        if self.context.faults.refuses_new_order(magic):
            # Refused before anything is recorded: a query will say "no such request" (BANKS.md).
            raise BcbError(RetCode.BANK_UNAVAILABLE)
        if magic is Magic.LOST_ANSWER_UNPROCESSED:
            return Result(RetCode.PROCESSING, ET.Element("BODY"), withhold=True)
        mandate = self._mandate(partner_id, fields["MANDATE_NO"])
        month = f"{self.context.clock.business_date():%Y-%m}"
        code = self._refusal(mandate, fields, amount, month)
        if code is None:
            code = self._settle(req_sn, str(mandate["card_no"]), amount, magic)
        self._record(req_sn, partner_id, "100002", code, sn=fields["SN"], amount=amount,
                     account_no=str(mandate["card_no"]), mandate_no=str(mandate["mandate_no"]), month=month)
        return Result(code, self._trans_ret(fields["SN"], code, amount), withhold=magic is Magic.LOST_ANSWER_PROCESSED)

    def _refusal(self, mandate: dict[str, object], fields: dict[str, str], amount: int, month: str) -> RetCode | None:
        if fields["ACCOUNT_NO"] != mandate["card_no"]:
            return RetCode.OUT_OF_MANDATE
        holder = cardholder(self.books, BANK_CODE, fields["ACCOUNT_NO"])
        if holder is None:
            return RetCode.ACCOUNT_CLOSED
        if not same_name(holder.name, fields["ACCOUNT_NAME"]):
            return RetCode.NAME_MISMATCH
        if mandate["status"] != "ACTIVE" or self.context.clock.business_date() > date.fromisoformat(
            str(mandate["valid_until"])
        ):
            return RetCode.OUT_OF_MANDATE
        used = self.books.query(
            "SELECT COALESCE(SUM(amount_minor), 0) AS total FROM bcb_requests WHERE mandate_no = ? AND month = ?"
            " AND trx_code = '100002' AND ret_code IN ('0000', '2000')",
            (mandate["mandate_no"], month),
        )[0]["total"]
        if amount > int(str(mandate["max_per_debit_minor"])) or int(used) + amount > int(
            str(mandate["max_per_month_minor"])
        ):
            return RetCode.OUT_OF_MANDATE
        return None

    def _settle(self, req_sn: str, card_no: str, amount: int, magic: Magic) -> RetCode:
        if magic is Magic.INSUFFICIENT_FUNDS:
            return RetCode.INSUFFICIENT_FUNDS
        if magic is Magic.OVER_LIMIT:
            return RetCode.OVER_LIMIT
        if magic is Magic.SLOW_SUCCESS:
            return RetCode.PROCESSING
        return self._move(req_sn, card_no, amount, magic)

    def _move(self, req_sn: str, card_no: str, amount: int, magic: Magic = Magic.NONE) -> RetCode:
        try:
            # Magic 93 is booked now but on the next day's statement (a day-cut item).
            self.books.transfer(bank_ref=f"BCB{req_sn}", kind="direct_debit", debit_acc=card_no,
                                credit_acc=self.context.profile.reserve_acc_no, amount_minor=amount,
                                at=self.context.clock.now(), memo="代收",
                                statement_date=statement_date_for(magic, self.context.clock.business_date()))
        except Declined as declined:
            return _DECLINES[declined.reason]
        return RetCode.SUCCESS

    # 200004 query

    def query(self, partner_id: str, req_sn: str, body: ET.Element) -> Result:
        query_sn = _fields(body, "QTRANSREQ", "QUERY_SN")["QUERY_SN"]
        rows = self.books.query("SELECT * FROM bcb_requests WHERE req_sn = ? AND partner_id = ?",
                                (query_sn, partner_id))
        if not rows:
            return Result(RetCode.NO_SUCH_REQUEST, ET.Element("BODY"))
        row = dict(rows[0])
        if row["trx_code"] == "100001":
            return Result(RetCode.SUCCESS, self.payouts.query(partner_id, query_sn))
        code = str(row["ret_code"])
        if code == RetCode.PROCESSING.value:
            seen = int(row["queries_seen"]) + 1
            if seen > QUERIES_BEFORE_SUCCESS:
                code = self._move(query_sn, str(row["account_no"]), int(row["amount_minor"])).value
            with self.books.tx() as conn:
                conn.execute("UPDATE bcb_requests SET queries_seen = ?, ret_code = ? WHERE req_sn = ?",
                             (seen, code, query_sn))
        detail = {"QUERY_SN": query_sn, "SN": str(row["sn"]), "AMOUNT": str(row["amount_minor"]),
                  "RET_CODE": code, "ERR_MSG": MESSAGES.get(code, "")}
        body_el = ET.Element("BODY")
        rsp = ET.SubElement(body_el, "QTRANSRSP")
        rsp.append(wire.element("QTDETAIL", detail))
        return Result(RetCode.SUCCESS, body_el)

    # 100001 batch payout and 200005 statement (banksim.bcb.payout, banksim.bcb.statement)

    def payout(self, partner_id: str, req_sn: str, body: ET.Element) -> Result:
        reply = self.payouts.submit(partner_id, req_sn, body)
        if reply.recorded:
            total = sum(int(wire.text(d, "AMOUNT")) for d in body.iterfind("TRANS_DETAILS/TRANS_DETAIL"))
            self._record(req_sn, partner_id, "100001", reply.code, amount=total)
        return Result(reply.code, reply.body, withhold=reply.withhold)

    def statement(self, partner_id: str, req_sn: str, body: ET.Element) -> Result:
        try:
            answer = self.statements.download(partner_id, body)
        except BcbError as error:
            self._record(req_sn, partner_id, "200005", error.code)
            raise
        self._record(req_sn, partner_id, "200005", RetCode.SUCCESS)
        return Result(RetCode.SUCCESS, answer)

    # Helpers

    def _mandate(self, partner_id: str, mandate_no: str) -> dict[str, object]:
        rows = self.books.query("SELECT * FROM bcb_mandates WHERE mandate_no = ? AND partner_id = ?",
                                (mandate_no, partner_id))
        if not rows:
            raise BcbError(RetCode.MANDATE_INVALID)
        return dict(rows[0])

    def _record(self, req_sn: str, partner_id: str, trx_code: str, code: RetCode, *, sn: str = "",
                amount: int = 0, account_no: str = "", mandate_no: str = "", month: str = "") -> None:
        with self.books.tx() as conn:
            conn.execute(
                "INSERT INTO bcb_requests(req_sn, partner_id, trx_code, ret_code, sn, amount_minor, account_no,"
                " mandate_no, month, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (req_sn, partner_id, trx_code, code.value, sn, amount, account_no, mandate_no, month,
                 self.context.clock.now().isoformat()),
            )

    @staticmethod
    def _trans_ret(sn: str, code: RetCode, amount: int) -> ET.Element:
        return _body("TRANSRET", {"SN": sn, "AMOUNT": str(amount), "RET_CODE": code.value,
                                  "ERR_MSG": MESSAGES[code.value]})


HANDLERS: dict[str, Handler] = {
    "100002": BcbService.debit,
    "100010": BcbService.mandate_apply,
    "100011": BcbService.mandate_confirm,
    "100012": BcbService.mandate_revoke,
    "200004": BcbService.query,
    "100001": BcbService.payout,
    "200005": BcbService.statement,
}


def _fields(body: ET.Element, section: str, *names: str) -> dict[str, str]:
    found = body.find(section)
    if found is None:
        raise BcbError(RetCode.MALFORMED, f"BODY/{section} is missing")
    values = {name: wire.text(found, name) for name in names}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise BcbError(RetCode.MALFORMED, f"{section} lacks {', '.join(missing)}")
    return values


def _fen(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise BcbError(RetCode.MALFORMED, "amounts are positive integers in fen")
    return int(value)


def _body(tag: str, fields: dict[str, str]) -> ET.Element:
    body = ET.Element("BODY")
    body.append(wire.element(tag, fields))
    return body
