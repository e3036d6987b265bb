"""Each bank's SMS outbox and its store of one-time codes.

Real banks text codes to the reserved phone; the simulator writes them to an outbox that people
read at `GET /sms` and tests read at `GET /_sim/sms?phone=`. Codes are random 6 digits, live
5 minutes and allow 5 tries (BANKS.md, DESIGN.md §10).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from banksim.core.books import Books
from banksim.core.clock import SimClock

CODE_LIFETIME_S = 300
CODE_TRIES = 5


class CodeCheck(Enum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SmsMessage:
    sms_id: int
    phone: str
    text: str
    sent_at: datetime


class Sms:
    def __init__(self, books: Books, clock: SimClock, bank_name: str) -> None:
        self._books = books
        self._clock = clock
        self._bank_name = bank_name

    def send(self, phone: str, text: str) -> SmsMessage:
        sent_at = self._clock.now()
        with self._books.tx() as conn:
            cursor = conn.execute(
                "INSERT INTO sms_outbox(phone, text, sent_at) VALUES (?, ?, ?)",
                (phone, f"【{self._bank_name}】{text}", sent_at.isoformat()),
            )
            sms_id = int(cursor.lastrowid or 0)
        return SmsMessage(sms_id, phone, f"【{self._bank_name}】{text}", sent_at)

    def messages(self, phone: str | None = None, limit: int = 100) -> list[SmsMessage]:
        """Newest first."""
        if phone:
            rows = self._books.query(
                "SELECT * FROM sms_outbox WHERE phone = ? ORDER BY sms_id DESC LIMIT ?", (phone, limit)
            )
        else:
            rows = self._books.query("SELECT * FROM sms_outbox ORDER BY sms_id DESC LIMIT ?", (limit,))
        return [SmsMessage(r["sms_id"], r["phone"], r["text"], datetime.fromisoformat(r["sent_at"])) for r in rows]

    def issue_code(self, *, ref: str, phone: str, purpose: str, template: str) -> str:
        """Create (or replace) the code for `ref` and text it; `template` holds `{code}`."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        expires_at = self._clock.timestamp() + CODE_LIFETIME_S
        with self._books.tx() as conn:
            conn.execute(
                "INSERT INTO sms_codes(ref, phone, purpose, code, expires_at, tries_left, used)"
                " VALUES (?,?,?,?,?,?,0) ON CONFLICT(ref) DO UPDATE SET phone=excluded.phone,"
                " purpose=excluded.purpose, code=excluded.code, expires_at=excluded.expires_at,"
                " tries_left=excluded.tries_left, used=0",
                (ref, phone, purpose, code, expires_at, CODE_TRIES),
            )
        self.send(phone, template.format(code=code))
        return code

    def tries_left(self, ref: str) -> int:
        """Wrong tries still allowed for the code of `ref` (0 when there is none)."""
        rows = self._books.query("SELECT tries_left FROM sms_codes WHERE ref = ?", (ref,))
        return int(rows[0]["tries_left"]) if rows else 0

    def check_code(self, *, ref: str, code: str) -> CodeCheck:
        """Consume one try; a correct code is single-use."""
        with self._books.tx() as conn:
            row = conn.execute("SELECT * FROM sms_codes WHERE ref = ?", (ref,)).fetchone()
            if row is None or row["used"]:
                return CodeCheck.UNKNOWN
            if row["tries_left"] <= 0:
                return CodeCheck.EXHAUSTED
            if self._clock.timestamp() > row["expires_at"]:
                return CodeCheck.EXPIRED
            if not secrets.compare_digest(row["code"], code):
                conn.execute("UPDATE sms_codes SET tries_left = tries_left - 1 WHERE ref = ?", (ref,))
                return CodeCheck.WRONG
            conn.execute("UPDATE sms_codes SET used = 1 WHERE ref = ?", (ref,))
            return CodeCheck.OK
