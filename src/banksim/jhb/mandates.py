"""JHB direct-debit mandates (代扣协议): `mandate.apply` → SMS → `mandate.confirm` → `mandate_no`,
`mandate.revoke`, and `mandate.debit`, which takes money with no payer step (BANKS.md, JHB).

Modelled on LianLian's withholding sign and Alipay's 商户代扣 (research/protocols.md §3.3): the payer
consents once, with the four elements and an SMS code, to a mandate with a per-debit limit, a
per-month limit (Beijing calendar month) and a validity end. A debit outside the mandate (over a
limit, expired, revoked) is refused with `1071` before anything moves. Debits are orders in
`jhb_payments` (service `mandate.debit`), so `pay.query`, `refund` and the notifier treat them
like every other payment; magic amounts apply exactly as for quick pay.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from banksim.core.bank import BankContext
from banksim.core.books import Books
from banksim.core.cardholders import cardholder, elements_match, mask_phone
from banksim.core.cards import mask
from banksim.core.magic import Magic, magic_for
from banksim.core.sms import CODE_LIFETIME_S, CodeCheck
from banksim.jhb import wire
from banksim.jhb.codes import JhbError, RetCode
from banksim.jhb.notices import Notices, fail_msg
from banksim.jhb.service import MANDATE_DEBIT_SERVICE, Answer, JhbService
from banksim.jhb.store import JhbStore, Payment, PaymentStatus

BANK_CODE = "JHB"
SMS_PURPOSE = "jhb-mandate-sign"
SMS_TEMPLATE = (
    "您正在签约津海银行代扣协议，尾号{last4}的银行卡，单笔限额{per_debit}元，每月限额{per_month}元，"
    "验证码{{code}}，5分钟内有效。"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jhb_mandates (
    token TEXT PRIMARY KEY,
    mandate_no TEXT UNIQUE,
    partner_id TEXT NOT NULL,
    card_no TEXT NOT NULL,
    bind_mob TEXT NOT NULL,
    user_id TEXT NOT NULL,
    max_per_debit_minor INTEGER NOT NULL,
    max_per_month_minor INTEGER NOT NULL,
    valid_until TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sign_time TEXT NOT NULL DEFAULT '',
    revoke_time TEXT NOT NULL DEFAULT '',
    out_mandate_no TEXT NOT NULL DEFAULT '',
    notify_url TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS jhb_mandate_debits (
    jhb_trade_no TEXT PRIMARY KEY,
    mandate_no TEXT NOT NULL,
    month TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jhb_mandate_debits_by_month ON jhb_mandate_debits(mandate_no, month);
"""

_VALID_UNTIL = "%Y%m%d"
_RET_BY_STATUS = {PaymentStatus.SUCCESS: RetCode.SUCCESS, PaymentStatus.PROCESSING: RetCode.PROCESSING}


class MandateStatus(StrEnum):
    APPLIED = "APPLIED"
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"


@dataclass(frozen=True, slots=True)
class MandateApply:
    card_no: str
    acct_name: str
    id_no: str
    bind_mob: str
    user_id: str
    max_per_debit_fen: int
    max_per_month_fen: int
    valid_until: date
    purpose: str
    out_mandate_no: str = ""
    notify_url: str = ""

    def __repr__(self) -> str:
        # The four elements never reach logs.
        return f"MandateApply(card=…{self.card_no[-4:]})"


@dataclass(frozen=True, slots=True)
class MandateDebit:
    mandate_no: str
    out_trade_no: str
    amount_fen: int
    subject: str
    notify_url: str


@dataclass(frozen=True, slots=True)
class Mandate:
    token: str
    mandate_no: str
    partner_id: str
    card_no: str
    bind_mob: str
    user_id: str
    max_per_debit_minor: int
    max_per_month_minor: int
    valid_until: date
    purpose: str
    status: MandateStatus
    created_at: datetime
    sign_time: str
    revoke_time: str
    out_mandate_no: str = ""
    notify_url: str = ""

    @property
    def sms_ref(self) -> str:
        return f"jhb-mandate:{self.token}"


def read_mandate_apply(body: Mapping[str, Any]) -> MandateApply:
    bind = wire.read_bind_apply(body)
    valid_until = body.get("valid_until")
    try:
        until = datetime.strptime(str(valid_until), _VALID_UNTIL).replace(tzinfo=wire.BEIJING).date()
    except ValueError as exc:
        raise JhbError(RetCode.MESSAGE_MALFORMED, "valid_until must be YYYYMMDD") from exc
    purpose = body.get("purpose") or ""
    if not isinstance(purpose, str) or len(purpose) > 64:
        raise JhbError(RetCode.MESSAGE_MALFORMED, "purpose must be a string of at most 64")
    # Optional: the partner's own mandate reference and where `mandate.revoke.notify` goes.
    out_mandate_no, notify_url = (body.get(name) or "" for name in ("out_mandate_no", "notify_url"))
    if not isinstance(out_mandate_no, str) or len(out_mandate_no) > 64:
        raise JhbError(RetCode.MESSAGE_MALFORMED, "out_mandate_no must be a string of at most 64")
    if not isinstance(notify_url, str) or len(notify_url) > 256:
        raise JhbError(RetCode.MESSAGE_MALFORMED, "notify_url must be a string of at most 256")
    return MandateApply(
        card_no=bind.card_no,
        acct_name=bind.acct_name,
        id_no=bind.id_no,
        bind_mob=bind.bind_mob,
        user_id=bind.user_id,
        max_per_debit_fen=wire.parse_yuan(body.get("max_amount_per_debit")),
        max_per_month_fen=wire.parse_yuan(body.get("max_amount_per_month")),
        valid_until=until,
        purpose=purpose,
        out_mandate_no=out_mandate_no,
        notify_url=notify_url,
    )


def read_mandate_debit(body: Mapping[str, Any]) -> MandateDebit:
    quick = wire.read_quick_pay({**body, "no_agree": body.get("mandate_no"), "subject": body.get("subject") or "代扣"})
    return MandateDebit(quick.no_agree, quick.out_trade_no, quick.amount_fen, quick.subject, quick.notify_url)


class Mandates:
    """JHB's mandate services over its books; one short database transaction per write."""

    def __init__(self, context: BankContext, store: JhbStore, service: JhbService, notices: Notices) -> None:
        self._context = context
        self._notices = notices
        self._books: Books = context.books
        self._store = store
        self._service = service

    # Signing

    def apply(self, partner_id: str, request: MandateApply) -> Answer:
        holder = cardholder(self._books, BANK_CODE, request.card_no)
        if holder is None:
            raise JhbError(RetCode.CARD_INVALID)
        if not elements_match(holder, name=request.acct_name, id_number=request.id_no, phone=request.bind_mob):
            raise JhbError(RetCode.ELEMENTS_MISMATCH)
        if holder.is_frozen:
            raise JhbError(RetCode.CARD_FROZEN)
        now = self._context.clock.now()
        if request.valid_until < self._context.clock.business_date():
            raise JhbError(RetCode.MESSAGE_MALFORMED, "valid_until has already passed")
        if request.max_per_debit_fen > request.max_per_month_fen:
            raise JhbError(RetCode.MESSAGE_MALFORMED, "max_amount_per_debit exceeds max_amount_per_month")
        token = secrets.token_hex(16)
        with self._books.tx() as conn:
            conn.execute(
                "INSERT INTO jhb_mandates(token, partner_id, card_no, bind_mob, user_id, max_per_debit_minor,"
                " max_per_month_minor, valid_until, purpose, status, created_at, out_mandate_no, notify_url)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    token, partner_id, holder.card_no, holder.phone, request.user_id, request.max_per_debit_fen,
                    request.max_per_month_fen, request.valid_until.isoformat(), request.purpose,
                    MandateStatus.APPLIED.value, now.isoformat(), request.out_mandate_no, request.notify_url,
                ),
            )
        mandate = self._by_token(token)
        assert mandate is not None
        self._context.sms.issue_code(
            ref=mandate.sms_ref,
            phone=holder.phone,
            purpose=SMS_PURPOSE,
            template=SMS_TEMPLATE.format(
                last4=holder.card_no[-4:],
                per_debit=wire.format_yuan(request.max_per_debit_fen),
                per_month=wire.format_yuan(request.max_per_month_fen),
            ),
        )
        view = self._view(mandate, "验证码已发送")
        view["token_expire_time"] = wire.format_time(now + timedelta(seconds=CODE_LIFETIME_S))
        return Answer(view)

    def confirm(self, partner_id: str, token: str, verify_code: str) -> Answer:
        mandate = self._by_token(token)
        if mandate is None or mandate.partner_id != partner_id:
            raise JhbError(RetCode.BIND_TOKEN_INVALID)
        if mandate.mandate_no:
            # A retried confirm (the first answer was lost) gets the same mandate again.
            return Answer(self._view(mandate, "签约成功"))
        self._check_code(mandate, verify_code)
        number = self._service.new_number("JHM", "jhb_mandate")
        with self._books.tx() as conn:
            conn.execute(
                "UPDATE jhb_mandates SET mandate_no = ?, status = ?, sign_time = ? WHERE token = ? AND status = ?",
                (number, MandateStatus.ACTIVE.value, wire.format_time(self._context.clock.now()), token,
                 MandateStatus.APPLIED.value),
            )
        signed = self._by_token(token)
        assert signed is not None
        return Answer(self._view(signed, "签约成功"))

    def query(self, partner_id: str, mandate_no: str) -> Answer:
        return Answer(self._view(self._own(partner_id, mandate_no), "查询成功"))

    def revoke(self, partner_id: str, mandate_no: str) -> Answer:
        mandate = self._own(partner_id, mandate_no)
        with self._books.tx() as conn:
            conn.execute(
                "UPDATE jhb_mandates SET status = ?, revoke_time = ? WHERE token = ? AND status = ?",
                (MandateStatus.REVOKED.value, wire.format_time(self._context.clock.now()), mandate.token,
                 MandateStatus.ACTIVE.value),
            )
        revoked = self._by_token(mandate.token)
        assert revoked is not None
        return Answer(self._view(revoked, "解约成功"))

    def revoke_by_payer(self, mandate_no: str) -> dict[str, str] | None:
        """The payer revokes in JHB's app (`POST /_sim/mandates/{mandate_no}/revoke`); None if unknown.

        The partner learns it by `mandate.revoke.notify` to the `notify_url` given at `mandate.apply`
        (docs/banks/jhb.md). Only the change from ACTIVE notifies: revoking again changes nothing.
        """
        rows = self._books.query("SELECT * FROM jhb_mandates WHERE mandate_no = ?", (mandate_no,))
        if not mandate_no or not rows:
            return None
        mandate = _mandate(rows[0])
        with self._books.tx() as conn:
            changed = conn.execute(
                "UPDATE jhb_mandates SET status = ?, revoke_time = ? WHERE token = ? AND status = ?",
                (MandateStatus.REVOKED.value, wire.format_time(self._context.clock.now()), mandate.token,
                 MandateStatus.ACTIVE.value),
            ).rowcount
        revoked = self._by_token(mandate.token)
        assert revoked is not None
        if changed == 1 and revoked.notify_url:
            self._notices.mandate_revoked(
                partner_id=revoked.partner_id, url=revoked.notify_url, body=mandate_notice_body(revoked)
            )
        return self._view(revoked, "解约成功")

    # Debiting

    def debit(self, partner_id: str, request: MandateDebit) -> Answer:
        magic = magic_for(request.amount_fen)
        if self._context.faults.refuses_new_order(magic):
            raise JhbError(RetCode.BANK_UNAVAILABLE)
        if magic is Magic.LOST_ANSWER_UNPROCESSED:
            return Answer({}, withhold=True)
        mandate = self._own(partner_id, request.mandate_no)
        existing = self._store.payment_by_out_no(partner_id, request.out_trade_no)
        if existing is not None:
            return Answer(self._repeat(existing, request))
        self._check_within(mandate, request.amount_fen)
        now = self._context.clock.now()
        candidate = Payment(
            jhb_trade_no=self._service.new_number("JHB", "jhb_trade"),
            partner_id=partner_id,
            out_trade_no=request.out_trade_no,
            service=MANDATE_DEBIT_SERVICE,
            amount_minor=request.amount_fen,
            subject=request.subject,
            notify_url=request.notify_url,
            return_url="",
            expire_at=now,
            status=PaymentStatus.PROCESSING,
            fail_code="",
            card_no=mandate.card_no,
            page_token="md-" + secrets.token_urlsafe(24),
            session_token="",
            queries_seen=0,
            created_at=now,
            finish_time="",
        )
        stored = self._store.insert_payment(candidate)
        if stored.jhb_trade_no != candidate.jhb_trade_no:
            return Answer(self._repeat(stored, request))
        with self._books.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO jhb_mandate_debits(jhb_trade_no, mandate_no, month) VALUES (?,?,?)",
                (stored.jhb_trade_no, mandate.mandate_no, self._month()),
            )
        paid = self._settle(stored, magic)
        return Answer(self._debit_view(paid, mandate.mandate_no), withhold=magic is Magic.LOST_ANSWER_PROCESSED)

    def _check_within(self, mandate: Mandate, amount_fen: int) -> None:
        """The mandate's own limits: refused with 1071 before any order exists (BANKS.md, JHB)."""
        if mandate.status is not MandateStatus.ACTIVE:
            raise JhbError(RetCode.OUT_OF_MANDATE, "代扣协议已解约")
        if self._context.clock.business_date() > mandate.valid_until:
            raise JhbError(RetCode.OUT_OF_MANDATE, "代扣协议已过期")
        if amount_fen > mandate.max_per_debit_minor:
            raise JhbError(RetCode.OUT_OF_MANDATE, "超过代扣协议单笔限额")
        if self._month_total(mandate.mandate_no) + amount_fen > mandate.max_per_month_minor:
            raise JhbError(RetCode.OUT_OF_MANDATE, "超过代扣协议每月限额")

    def _month_total(self, mandate_no: str) -> int:
        # Succeeded and still-processing debits count: a processing one may yet take the money.
        rows = self._books.query(
            "SELECT COALESCE(SUM(p.amount_minor), 0) AS total FROM jhb_mandate_debits d"
            " JOIN jhb_payments p ON p.jhb_trade_no = d.jhb_trade_no"
            " WHERE d.mandate_no = ? AND d.month = ? AND p.status IN (?, ?)",
            (mandate_no, self._month(), PaymentStatus.SUCCESS.value, PaymentStatus.PROCESSING.value),
        )
        return int(rows[0]["total"])

    def _month(self) -> str:
        return f"{self._context.clock.business_date():%Y-%m}"

    def _settle(self, payment: Payment, magic: Magic) -> Payment:
        if magic is Magic.INSUFFICIENT_FUNDS:
            return self._service.fail_payment(payment, RetCode.INSUFFICIENT_FUNDS, PaymentStatus.PROCESSING)
        if magic is Magic.OVER_LIMIT:
            return self._service.fail_payment(payment, RetCode.OVER_LIMIT, PaymentStatus.PROCESSING)
        if magic is Magic.SLOW_SUCCESS:
            return payment
        return self._service.settle_payment(payment, PaymentStatus.PROCESSING)

    def _repeat(self, stored: Payment, request: MandateDebit) -> dict[str, str]:
        """The same `out_trade_no` again: the same debit answers again, anything else is 1010."""
        rows = self._books.query(
            "SELECT mandate_no FROM jhb_mandate_debits WHERE jhb_trade_no = ?", (stored.jhb_trade_no,)
        )
        mandate_no = str(rows[0]["mandate_no"]) if rows else ""
        same = (stored.service, mandate_no, stored.amount_minor, stored.notify_url) == (
            MANDATE_DEBIT_SERVICE, request.mandate_no, request.amount_fen, request.notify_url
        )
        if not same:
            raise JhbError(RetCode.ORDER_DUPLICATE)
        return self._debit_view(stored, mandate_no)

    # Views and look-ups

    def _check_code(self, mandate: Mandate, code: str) -> None:
        sms = self._context.sms
        check = sms.check_code(ref=mandate.sms_ref, code=code)
        if check is CodeCheck.OK:
            return
        if check is CodeCheck.EXHAUSTED or (check is CodeCheck.WRONG and sms.tries_left(mandate.sms_ref) == 0):
            raise JhbError(RetCode.SMS_TRIES_EXCEEDED)
        if check is CodeCheck.UNKNOWN:
            raise JhbError(RetCode.BIND_TOKEN_INVALID)
        raise JhbError(RetCode.SMS_WRONG)

    def _own(self, partner_id: str, mandate_no: str) -> Mandate:
        rows = self._books.query("SELECT * FROM jhb_mandates WHERE mandate_no = ?", (mandate_no,))
        mandate = _mandate(rows[0]) if rows else None
        if mandate is None or mandate.partner_id != partner_id:
            raise JhbError(RetCode.AGREEMENT_INVALID, "代扣协议号不存在")
        return mandate

    def _by_token(self, token: str) -> Mandate | None:
        rows = self._books.query("SELECT * FROM jhb_mandates WHERE token = ?", (token,))
        return _mandate(rows[0]) if rows else None

    def _view(self, mandate: Mandate, ret_msg: str) -> dict[str, str]:
        return {
            "ret_code": RetCode.SUCCESS.value,
            "ret_msg": ret_msg,
            "token": mandate.token if mandate.status is MandateStatus.APPLIED else "",
            "mandate_no": mandate.mandate_no,
            "status": mandate.status.value,
            "card_no": mask(mandate.card_no),
            "bind_mob": mask_phone(mandate.bind_mob),
            "max_amount_per_debit": wire.format_yuan(mandate.max_per_debit_minor),
            "max_amount_per_month": wire.format_yuan(mandate.max_per_month_minor),
            "valid_until": f"{mandate.valid_until:%Y%m%d}",
            "purpose": mandate.purpose,
            "sign_time": mandate.sign_time,
            "revoke_time": mandate.revoke_time,
        }

    def _debit_view(self, payment: Payment, mandate_no: str) -> dict[str, str]:
        code = _RET_BY_STATUS.get(payment.status) or RetCode(payment.fail_code)
        return {
            "ret_code": code.value,
            "ret_msg": "扣款成功" if code is RetCode.SUCCESS else fail_msg(code.value),
            "out_trade_no": payment.out_trade_no,
            "jhb_trade_no": payment.jhb_trade_no,
            "mandate_no": mandate_no,
            "amount": wire.format_yuan(payment.amount_minor),
            "status": payment.status.value,
            "fail_code": payment.fail_code,
            "fail_msg": fail_msg(payment.fail_code) if payment.fail_code else "",
            "finish_time": payment.finish_time,
        }


def _mandate(row: sqlite3.Row) -> Mandate:
    return Mandate(
        token=row["token"],
        mandate_no=row["mandate_no"] or "",
        partner_id=row["partner_id"],
        card_no=row["card_no"],
        bind_mob=row["bind_mob"],
        user_id=row["user_id"],
        max_per_debit_minor=row["max_per_debit_minor"],
        max_per_month_minor=row["max_per_month_minor"],
        valid_until=date.fromisoformat(row["valid_until"]),
        purpose=row["purpose"],
        status=MandateStatus(row["status"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        sign_time=row["sign_time"],
        revoke_time=row["revoke_time"],
        out_mandate_no=row["out_mandate_no"],
        notify_url=row["notify_url"],
    )


def mandate_notice_body(mandate: Mandate) -> dict[str, str]:
    """`mandate.revoke.notify`'s body: the mandate as `mandate.query` shows it, with the partner's ref."""
    return {
        "mandate_no": mandate.mandate_no,
        "out_mandate_no": mandate.out_mandate_no,
        "user_id": mandate.user_id,
        "status": mandate.status.value,
        "card_no": mask(mandate.card_no),
        "revoke_time": mandate.revoke_time,
        "revoke_channel": "APP",
    }
