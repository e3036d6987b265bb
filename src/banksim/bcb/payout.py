"""BCB batch payout (代付) ``100001``, its items' state through ``200004``, and the bounce ``300001``.

Money leaves the platform's BCB reserve: to a BCB account inside BCB's books, to another bank's
account through the interbank clearing. BCB cannot see another bank's account names, so a cross-bank
item naming someone other than the holder is answered ``0000`` and then bounces (退票): the receiving
bank returns the money to the reserve and BCB POSTs a signed ``300001`` to the batch's ``NOTIFY_URL``
(a BCB extension of ``TRANS_SUM``). Codes, magic amounts and the acknowledgement: docs/banks/bcb.md.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from banksim.bcb import wire
from banksim.bcb.codes import MESSAGES, BcbError, RetCode
from banksim.core.bank import PROFILES, BankContext
from banksim.core.books import AccountKind, AccountStatus, Declined, DeclineReason
from banksim.core.cardholders import same_name
from banksim.core.clearing import NAME_MISMATCH, ClearingStatus
from banksim.core.magic import QUERIES_BEFORE_SUCCESS, Magic, magic_for, statement_date_for

BANK_CODE = "BCB"
TRX_PAYOUT = "100001"
TRX_BOUNCE = "300001"
CONTENT_TYPE = "text/xml; charset=GBK"
# A bounce reaches BCB from the receiving bank minutes after the item was answered; the delay is
# scaled like every notification delay (BANKSIM_NOTIFY_SCALE), so tests see it in milliseconds.
BOUNCE_DELAY_S = 300.0
# Magic 99 sends the bounce notice a second time this much later (before scaling).
DUPLICATE_DELAY_S = 60.0
# Allinpay's request numbers are at most 40 characters; an item's SN is unique within its batch.
MAX_SN_LENGTH = 40

SCHEMA = """
CREATE TABLE IF NOT EXISTS bcb_payout_items (
    req_sn TEXT NOT NULL, sn TEXT NOT NULL, partner_id TEXT NOT NULL, account_no TEXT NOT NULL,
    account_name TEXT NOT NULL, bank_code TEXT NOT NULL, amount_minor INTEGER NOT NULL,
    remark TEXT NOT NULL DEFAULT '', ret_code TEXT NOT NULL, queries_seen INTEGER NOT NULL DEFAULT 0,
    money_ref TEXT NOT NULL DEFAULT '', return_ref TEXT NOT NULL DEFAULT '', return_code TEXT NOT NULL DEFAULT '',
    notify_url TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, fin_time TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (req_sn, sn)
);
CREATE INDEX IF NOT EXISTS bcb_payout_items_by_money_ref ON bcb_payout_items(money_ref);
CREATE INDEX IF NOT EXISTS bcb_payout_items_by_return_ref ON bcb_payout_items(return_ref);
"""

_OWN_DECLINES = {
    DeclineReason.INSUFFICIENT_FUNDS: RetCode.RESERVE_INSUFFICIENT,
    DeclineReason.ACCOUNT_FROZEN: RetCode.RESERVE_INSUFFICIENT,
    DeclineReason.OVER_LIMIT: RetCode.OVER_LIMIT,
    DeclineReason.ACCOUNT_CLOSED: RetCode.ACCOUNT_CLOSED,
    DeclineReason.NO_SUCH_ACCOUNT: RetCode.ACCOUNT_CLOSED,
}


@dataclass(frozen=True, slots=True)
class Item:
    """One ``TRANS_DETAIL``; the account number stays out of every repr."""

    sn: str
    account_no: str
    account_name: str
    bank_code: str
    amount_minor: int
    remark: str

    def __repr__(self) -> str:
        return f"Item(sn={self.sn!r}, account=…{self.account_no[-4:]}, amount_minor={self.amount_minor})"


@dataclass(frozen=True, slots=True)
class Batch:
    notify_url: str
    total_sum_minor: int
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a batch: INFO's RET_CODE, the BODY, whether BCB recorded the batch (its REQ_SN is
    then spent) and whether the answer is lost on the way (magic 96/97)."""

    code: RetCode
    body: ET.Element
    recorded: bool
    withhold: bool = False


@dataclass(frozen=True, slots=True)
class Moved:
    code: RetCode
    money_ref: str = ""
    return_ref: str = ""
    return_code: str = ""


def mask_account(account_no: str) -> str:
    """First 6 and last 4 digits, as BCB shows accounts in answers and statements."""
    if len(account_no) <= 10:
        return "*" * len(account_no)
    return account_no[:6] + "*" * (len(account_no) - 10) + account_no[-4:]


def clearing_ref(req_sn: str, sn: str) -> str:
    return f"BCB:{req_sn}:{sn}"


def own_payout_ref(req_sn: str, sn: str) -> str:
    return f"BCBP:{req_sn}:{sn}"


class Payouts:
    def __init__(self, context: BankContext, key: rsa.RSAPrivateKey | None) -> None:
        self.context = context
        self.books = context.books
        self.key = key
        context.books.ensure_schema(SCHEMA)

    # 100001

    def submit(self, partner_id: str, req_sn: str, body: ET.Element) -> Reply:
        batch = read_batch(body)
        magics = [magic_for(item.amount_minor) for item in batch.items]
        if self.context.faults.settings.refuse_new_orders:
            # Refused before anything is recorded: a query says "no such request" (BANKS.md).
            raise BcbError(RetCode.BANK_UNAVAILABLE)
        if Magic.LOST_ANSWER_UNPROCESSED in magics:
            return Reply(RetCode.PROCESSING, ET.Element("BODY"), recorded=False, withhold=True)
        reserve = self.books.account(self.context.profile.reserve_acc_no)
        if reserve is None or reserve.balance_minor < batch.total_sum_minor:
            for item in batch.items:
                self._record(partner_id, req_sn, batch.notify_url, item, Moved(RetCode.RESERVE_INSUFFICIENT))
            return Reply(RetCode.RESERVE_INSUFFICIENT, self._details(req_sn), recorded=True)
        for item, magic in zip(batch.items, magics, strict=True):
            moved = self._first_attempt(req_sn, item, magic)
            self._record(partner_id, req_sn, batch.notify_url, item, moved)
            if moved.return_ref:
                self._announce_bounce(req_sn, item.sn)
        return Reply(RetCode.SUCCESS, self._details(req_sn), recorded=True,
                     withhold=Magic.LOST_ANSWER_PROCESSED in magics)

    def _first_attempt(self, req_sn: str, item: Item, magic: Magic) -> Moved:
        if magic is Magic.REFUSED:
            return Moved(RetCode.BANK_UNAVAILABLE)
        refusal = self._payee_refusal(item)
        if refusal is not None:
            return Moved(refusal)
        if magic is Magic.INSUFFICIENT_FUNDS:
            return Moved(RetCode.INSUFFICIENT_FUNDS)
        if magic is Magic.OVER_LIMIT:
            return Moved(RetCode.OVER_LIMIT)
        if magic is Magic.SLOW_SUCCESS:
            return Moved(RetCode.PROCESSING)
        return self._move(req_sn, item, magic)

    def _payee_refusal(self, item: Item) -> RetCode | None:
        """What BCB can tell before moving money: its own accounts fully, another bank's not at all."""
        if item.bank_code != BANK_CODE:
            return None if item.bank_code in PROFILES else RetCode.CARD_INVALID
        account = self.books.account(item.account_no)
        if account is None or account.status is AccountStatus.CLOSED or account.kind not in (
            AccountKind.CARD, AccountKind.CORPORATE
        ):
            return RetCode.ACCOUNT_CLOSED
        if not same_name(account.holder_name, item.account_name):
            return RetCode.NAME_MISMATCH
        if account.status is AccountStatus.FROZEN:
            return RetCode.ACCOUNT_FROZEN
        return None

    def _move(self, req_sn: str, item: Item, magic: Magic) -> Moved:
        if item.bank_code == BANK_CODE:
            return self._move_inside(req_sn, item, magic)
        return self._move_through_clearing(req_sn, item)

    def _move_inside(self, req_sn: str, item: Item, magic: Magic) -> Moved:
        ref = own_payout_ref(req_sn, item.sn)
        now = self.context.clock.now()
        try:
            self.books.transfer(bank_ref=ref, kind="payout", debit_acc=self.context.profile.reserve_acc_no,
                                credit_acc=item.account_no, amount_minor=item.amount_minor, at=now,
                                statement_date=statement_date_for(magic, self.context.clock.business_date()),
                                memo="代付")
        except Declined as declined:
            return Moved(_OWN_DECLINES[declined.reason])
        return Moved(RetCode.SUCCESS, money_ref=ref)

    def _move_through_clearing(self, req_sn: str, item: Item) -> Moved:
        ref = clearing_ref(req_sn, item.sn)
        done = self.context.clearing.transfer(
            clearing_ref=ref, from_bank=BANK_CODE, from_acc=self.context.profile.reserve_acc_no,
            to_bank=item.bank_code, to_acc=item.account_no, amount_minor=item.amount_minor, memo="代付",
            to_name=item.account_name,
        )
        if done.status is ClearingStatus.REJECTED:
            return Moved(RetCode.RESERVE_INSUFFICIENT)
        if done.status is ClearingStatus.RETURNED:
            # The item was sent and is answered as such; the receiving bank's return is the bounce.
            code = RetCode.NAME_MISMATCH if done.reason == NAME_MISMATCH else RetCode.ACCOUNT_CLOSED
            return Moved(RetCode.SUCCESS, money_ref=f"CLR{ref}OUT", return_ref=f"CLR{ref}RET", return_code=code.value)
        return Moved(RetCode.SUCCESS, money_ref=f"CLR{ref}OUT")

    # 200004 on a batch's REQ_SN

    def query(self, partner_id: str, req_sn: str) -> ET.Element:
        """The batch's items as they stand now; a 94 item moves its money on the third query."""
        for row in self._rows(req_sn, partner_id):
            if row["ret_code"] != RetCode.PROCESSING.value:
                continue
            seen = int(str(row["queries_seen"])) + 1
            moved = Moved(RetCode.PROCESSING)
            if seen > QUERIES_BEFORE_SUCCESS:
                moved = self._move(req_sn, _item(row), Magic.NONE)
            self._update(req_sn, str(row["sn"]), seen, moved)
            if moved.return_ref:
                self._announce_bounce(req_sn, str(row["sn"]))
        body = ET.Element("BODY")
        rsp = ET.SubElement(body, "QTRANSRSP")
        for row in self._rows(req_sn, partner_id):
            code = str(row["ret_code"])
            rsp.append(wire.element("QTDETAIL", {
                "QUERY_SN": req_sn, "SN": str(row["sn"]), "ACCOUNT_NO": mask_account(str(row["account_no"])),
                "AMOUNT": str(row["amount_minor"]), "RET_CODE": code, "ERR_MSG": MESSAGES.get(code, ""),
                "FINTIME": str(row["fin_time"]),
            }))
        return body

    # 300001

    def _announce_bounce(self, req_sn: str, sn: str) -> None:
        rows = self.books.query("SELECT * FROM bcb_payout_items WHERE req_sn = ? AND sn = ?", (req_sn, sn))
        row = rows[0]
        if not row["notify_url"] or self.key is None:
            return
        magic = magic_for(int(row["amount_minor"]))
        info = {"TRX_CODE": TRX_BOUNCE, "VERSION": wire.VERSION, "DATA_TYPE": wire.DATA_TYPE, "LEVEL": wire.LEVEL,
                "USER_NAME": str(row["partner_id"]), "REQ_SN": req_sn, "RET_CODE": RetCode.SUCCESS.value,
                "ERR_MSG": "退票"}
        body = ET.Element("BODY")
        body.append(wire.element("RETURNTRANS", {
            "QUERY_SN": req_sn, "SN": sn, "ACCOUNT_NO": mask_account(str(row["account_no"])),
            "AMOUNT": str(row["amount_minor"]), "RETURN_CODE": str(row["return_code"]),
            "RETURN_MSG": MESSAGES.get(str(row["return_code"]), ""), "RETURN_SN": str(row["return_ref"]),
            "RETURN_TIME": self.context.clock.local_now().strftime("%Y%m%d%H%M%S"),
        }))
        document = wire.sign(wire.build(info, body), self.key)
        scale = self.context.config.notify_scale
        notifier = self.context.notifier
        event_ref = f"bcb-bounce:{req_sn}:{sn}"
        notifier.enqueue(event_ref=event_ref, url=str(row["notify_url"]), body=document, content_type=CONTENT_TYPE,
                         delay_s=BOUNCE_DELAY_S * scale, suppressed=magic is Magic.NO_NOTIFICATION)
        if magic is Magic.DOUBLE_NOTIFICATION:
            notifier.enqueue(event_ref=event_ref, url=str(row["notify_url"]), body=document,
                             content_type=CONTENT_TYPE, delay_s=(BOUNCE_DELAY_S + DUPLICATE_DELAY_S) * scale)

    def acknowledges(self, status_code: int, body: bytes) -> bool:
        """The platform acknowledges a notice with a signed AIPG answer whose RET_CODE is 0000."""
        if status_code != 200:
            return False
        try:
            root, document = wire.parse(body)
        except wire.WireError:
            return False
        if document.info.get("RET_CODE") != RetCode.SUCCESS.value:
            return False
        key = self._partner_key(document.info.get("USER_NAME", ""))
        return key is not None and wire.verify(root, key)

    # Rows

    def items_by_ref(self, bank_ref: str) -> tuple[str, dict[str, object]] | None:
        """The payout item a reserve movement belongs to, and whether it is the money out or its return."""
        rows = self.books.query("SELECT * FROM bcb_payout_items WHERE money_ref = ? OR return_ref = ?",
                                (bank_ref, bank_ref))
        if not rows:
            return None
        row = dict(rows[0])
        return ("return" if row["return_ref"] == bank_ref else "payout"), row

    def _details(self, req_sn: str) -> ET.Element:
        body = ET.Element("BODY")
        details = ET.SubElement(body, "RET_DETAILS")
        for row in self.books.query("SELECT * FROM bcb_payout_items WHERE req_sn = ? ORDER BY rowid", (req_sn,)):
            code = str(row["ret_code"])
            details.append(wire.element("RET_DETAIL", {"SN": str(row["sn"]), "AMOUNT": str(row["amount_minor"]),
                                                       "RET_CODE": code, "ERR_MSG": MESSAGES.get(code, "")}))
        return body

    def _rows(self, req_sn: str, partner_id: str) -> list[dict[str, object]]:
        rows = self.books.query("SELECT * FROM bcb_payout_items WHERE req_sn = ? AND partner_id = ? ORDER BY rowid",
                                (req_sn, partner_id))
        return [dict(row) for row in rows]

    def _record(self, partner_id: str, req_sn: str, notify_url: str, item: Item, moved: Moved) -> None:
        now = self.context.clock.now()
        fin_time = "" if moved.code is RetCode.PROCESSING else self.context.clock.local_now().strftime("%Y%m%d%H%M%S")
        with self.books.tx() as conn:
            conn.execute(
                "INSERT INTO bcb_payout_items(req_sn, sn, partner_id, account_no, account_name, bank_code,"
                " amount_minor, remark, ret_code, money_ref, return_ref, return_code, notify_url, created_at, fin_time)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (req_sn, item.sn, partner_id, item.account_no, item.account_name, item.bank_code, item.amount_minor,
                 item.remark, moved.code.value, moved.money_ref, moved.return_ref, moved.return_code, notify_url,
                 now.isoformat(), fin_time),
            )

    def _update(self, req_sn: str, sn: str, seen: int, moved: Moved) -> None:
        fin_time = "" if moved.code is RetCode.PROCESSING else self.context.clock.local_now().strftime("%Y%m%d%H%M%S")
        with self.books.tx() as conn:
            conn.execute(
                "UPDATE bcb_payout_items SET queries_seen = ?, ret_code = ?, money_ref = ?, return_ref = ?,"
                " return_code = ?, fin_time = ? WHERE req_sn = ? AND sn = ?",
                (seen, moved.code.value, moved.money_ref, moved.return_ref, moved.return_code, fin_time, req_sn, sn),
            )

    def _partner_key(self, partner_id: str) -> rsa.RSAPublicKey | None:
        rows = self.books.query(
            "SELECT public_key_pem FROM partner_keys WHERE partner_id = ? ORDER BY created_at DESC LIMIT 1",
            (partner_id,),
        )
        if not rows:
            return None
        public = serialization.load_pem_public_key(str(rows[0]["public_key_pem"]).encode())
        return public if isinstance(public, rsa.RSAPublicKey) else None


def read_batch(body: ET.Element) -> Batch:
    """``TRANS_SUM`` and ``TRANS_DETAILS`` checked against each other (``1001``, ``1103``, ``1104``)."""
    summary = body.find("TRANS_SUM")
    details = body.find("TRANS_DETAILS")
    if summary is None or details is None:
        raise BcbError(RetCode.MALFORMED, "BODY needs TRANS_SUM and TRANS_DETAILS")
    items = tuple(_read_item(detail) for detail in details.findall("TRANS_DETAIL"))
    if not items:
        raise BcbError(RetCode.MALFORMED, "TRANS_DETAILS has no TRANS_DETAIL")
    if len({item.sn for item in items}) != len(items):
        raise BcbError(RetCode.MALFORMED, "an SN appears twice in the batch")
    total_item, total_sum = wire.text(summary, "TOTAL_ITEM"), wire.text(summary, "TOTAL_SUM")
    if not total_item.isdigit() or not total_sum.isdigit():
        raise BcbError(RetCode.MALFORMED, "TOTAL_ITEM and TOTAL_SUM are integers (TOTAL_SUM in fen)")
    if int(total_item) != len(items):
        raise BcbError(RetCode.TOTAL_ITEM_MISMATCH)
    if int(total_sum) != sum(item.amount_minor for item in items):
        raise BcbError(RetCode.TOTAL_SUM_MISMATCH)
    return Batch(wire.text(summary, "NOTIFY_URL"), int(total_sum), items)


def _read_item(detail: ET.Element) -> Item:
    values = {name: wire.text(detail, name) for name in ("SN", "ACCOUNT_NO", "ACCOUNT_NAME", "BANK_CODE", "AMOUNT")}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise BcbError(RetCode.MALFORMED, f"TRANS_DETAIL lacks {', '.join(missing)}")
    if len(values["SN"]) > MAX_SN_LENGTH:
        raise BcbError(RetCode.MALFORMED, f"SN is at most {MAX_SN_LENGTH} characters")
    amount = values["AMOUNT"]
    if not amount.isdigit() or int(amount) <= 0:
        raise BcbError(RetCode.MALFORMED, "amounts are positive integers in fen")
    return Item(values["SN"], values["ACCOUNT_NO"], values["ACCOUNT_NAME"], values["BANK_CODE"].upper(), int(amount),
                wire.text(detail, "REMARK"))


def _item(row: dict[str, object]) -> Item:
    return Item(str(row["sn"]), str(row["account_no"]), str(row["account_name"]), str(row["bank_code"]),
                int(str(row["amount_minor"])), str(row["remark"]))

