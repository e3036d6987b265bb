"""JHB's own tables in its books: its SM2 key, the partners' SM4 data keys, payments and refunds.

The core books keep customers, accounts and money; these tables keep what the JSON dialect adds.
Writes that race (two confirm clicks, a query racing a confirm) are compare-and-set on `status`,
so a payment or refund changes state once; money moves only through `Books.transfer`, which is
idempotent on JHB's trade or refund number.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from banksim.core.books import Books

SCHEMA = """
CREATE TABLE IF NOT EXISTS jhb_bank_keys (
    name TEXT PRIMARY KEY,
    private_key_pem TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jhb_partner_profiles (
    partner_id TEXT PRIMARY KEY,
    reserve_acc_no TEXT NOT NULL,
    last_key_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS jhb_data_keys (
    key_id TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    key_hex TEXT NOT NULL,
    created_at TEXT NOT NULL,
    valid_until_ts REAL
);
CREATE TABLE IF NOT EXISTS jhb_payments (
    jhb_trade_no TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    out_trade_no TEXT NOT NULL,
    service TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    subject TEXT NOT NULL,
    notify_url TEXT NOT NULL,
    return_url TEXT NOT NULL,
    expire_at TEXT NOT NULL,
    status TEXT NOT NULL,
    fail_code TEXT NOT NULL DEFAULT '',
    card_no TEXT NOT NULL DEFAULT '',
    page_token TEXT NOT NULL,
    session_token TEXT NOT NULL DEFAULT '',
    queries_seen INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    finish_time TEXT NOT NULL DEFAULT '',
    UNIQUE (partner_id, out_trade_no)
);
CREATE UNIQUE INDEX IF NOT EXISTS jhb_payments_by_page ON jhb_payments(page_token);
CREATE TABLE IF NOT EXISTS jhb_refunds (
    jhb_refund_no TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    out_refund_no TEXT NOT NULL,
    jhb_trade_no TEXT NOT NULL REFERENCES jhb_payments(jhb_trade_no),
    amount_minor INTEGER NOT NULL,
    reason TEXT NOT NULL,
    notify_url TEXT NOT NULL,
    status TEXT NOT NULL,
    fail_code TEXT NOT NULL DEFAULT '',
    queries_seen INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    finish_time TEXT NOT NULL DEFAULT '',
    UNIQUE (partner_id, out_refund_no)
);
CREATE INDEX IF NOT EXISTS jhb_refunds_by_trade ON jhb_refunds(jhb_trade_no);
"""


class PaymentStatus(StrEnum):
    WAIT_PAY = "WAIT_PAY"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CLOSED = "CLOSED"


class RefundStatus(StrEnum):
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


FINAL_PAYMENT_STATUSES = frozenset({PaymentStatus.SUCCESS, PaymentStatus.FAILED, PaymentStatus.CLOSED})


@dataclass(frozen=True, slots=True)
class StoredDataKey:
    key_id: str
    partner_id: str
    key: bytes
    created_at: datetime
    valid_until_ts: float | None

    def is_accepted_at(self, timestamp: float) -> bool:
        return self.valid_until_ts is None or timestamp <= self.valid_until_ts

    def __repr__(self) -> str:
        return f"StoredDataKey(key_id={self.key_id!r}, partner_id={self.partner_id!r}, key=<redacted>)"


@dataclass(frozen=True, slots=True)
class Payment:
    jhb_trade_no: str
    partner_id: str
    out_trade_no: str
    service: str
    amount_minor: int
    subject: str
    notify_url: str
    return_url: str
    expire_at: datetime
    status: PaymentStatus
    fail_code: str
    card_no: str
    page_token: str
    session_token: str
    queries_seen: int
    created_at: datetime
    finish_time: str


@dataclass(frozen=True, slots=True)
class Refund:
    jhb_refund_no: str
    partner_id: str
    out_refund_no: str
    jhb_trade_no: str
    amount_minor: int
    reason: str
    notify_url: str
    status: RefundStatus
    fail_code: str
    queries_seen: int
    created_at: datetime
    finish_time: str


class JhbStore:
    """Typed access to JHB's tables; every method is one short database transaction."""

    def __init__(self, books: Books) -> None:
        self.books = books

    # JHB's own signing key

    def bank_key_pem(self, name: str) -> str | None:
        rows = self.books.query("SELECT private_key_pem FROM jhb_bank_keys WHERE name = ?", (name,))
        return str(rows[0]["private_key_pem"]) if rows else None

    def save_bank_key_pem(self, name: str, pem: str, at: datetime) -> str:
        """Store the key unless one exists already; returns the one that is stored."""
        with self.books.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO jhb_bank_keys(name, private_key_pem, created_at) VALUES (?,?,?)",
                (name, pem, at.isoformat()),
            )
            row = conn.execute("SELECT private_key_pem FROM jhb_bank_keys WHERE name = ?", (name,)).fetchone()
        return str(row["private_key_pem"])

    # Partner profiles and data keys

    def save_profile(self, partner_id: str, reserve_acc_no: str) -> None:
        with self.books.tx() as conn:
            conn.execute(
                "INSERT INTO jhb_partner_profiles(partner_id, reserve_acc_no) VALUES (?, ?)"
                " ON CONFLICT(partner_id) DO UPDATE SET reserve_acc_no = excluded.reserve_acc_no",
                (partner_id, reserve_acc_no),
            )

    def reserve_acc_no(self, partner_id: str) -> str | None:
        rows = self.books.query("SELECT reserve_acc_no FROM jhb_partner_profiles WHERE partner_id = ?", (partner_id,))
        return str(rows[0]["reserve_acc_no"]) if rows else None

    def last_key_id(self, partner_id: str) -> str:
        rows = self.books.query("SELECT last_key_id FROM jhb_partner_profiles WHERE partner_id = ?", (partner_id,))
        return str(rows[0]["last_key_id"]) if rows else ""

    def note_key_used(self, partner_id: str, key_id: str) -> None:
        with self.books.tx() as conn:
            conn.execute(
                "UPDATE jhb_partner_profiles SET last_key_id = ? WHERE partner_id = ? AND last_key_id != ?",
                (key_id, partner_id, key_id),
            )

    def add_data_key(self, partner_id: str, key_id: str, key: bytes, at: datetime, retire_others_at_ts: float) -> None:
        """Make `key` the partner's current key; keys still open get `retire_others_at_ts` as their end."""
        with self.books.tx() as conn:
            conn.execute(
                "UPDATE jhb_data_keys SET valid_until_ts = ?"
                " WHERE partner_id = ? AND (valid_until_ts IS NULL OR valid_until_ts > ?)",
                (retire_others_at_ts, partner_id, retire_others_at_ts),
            )
            conn.execute(
                "INSERT INTO jhb_data_keys(key_id, partner_id, key_hex, created_at, valid_until_ts)"
                " VALUES (?,?,?,?,NULL)",
                (key_id, partner_id, key.hex(), at.isoformat()),
            )

    def data_key(self, key_id: str) -> StoredDataKey | None:
        rows = self.books.query("SELECT * FROM jhb_data_keys WHERE key_id = ?", (key_id,))
        return _data_key(rows[0]) if rows else None

    def data_keys(self, partner_id: str) -> list[StoredDataKey]:
        """Newest first."""
        rows = self.books.query(
            "SELECT * FROM jhb_data_keys WHERE partner_id = ? ORDER BY created_at DESC, rowid DESC", (partner_id,)
        )
        return [_data_key(r) for r in rows]

    # Payments

    def insert_payment(self, payment: Payment) -> Payment:
        """Insert unless the partner already used `out_trade_no`; returns the stored payment."""
        with self.books.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO jhb_payments(jhb_trade_no, partner_id, out_trade_no, service, amount_minor,"
                " subject, notify_url, return_url, expire_at, status, fail_code, card_no, page_token,"
                " session_token, queries_seen, created_at, finish_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    payment.jhb_trade_no,
                    payment.partner_id,
                    payment.out_trade_no,
                    payment.service,
                    payment.amount_minor,
                    payment.subject,
                    payment.notify_url,
                    payment.return_url,
                    payment.expire_at.isoformat(),
                    payment.status.value,
                    payment.fail_code,
                    payment.card_no,
                    payment.page_token,
                    payment.session_token,
                    payment.queries_seen,
                    payment.created_at.isoformat(),
                    payment.finish_time,
                ),
            )
            row = conn.execute(
                "SELECT * FROM jhb_payments WHERE partner_id = ? AND out_trade_no = ?",
                (payment.partner_id, payment.out_trade_no),
            ).fetchone()
        return _payment(row)

    def payment(self, jhb_trade_no: str) -> Payment | None:
        rows = self.books.query("SELECT * FROM jhb_payments WHERE jhb_trade_no = ?", (jhb_trade_no,))
        return _payment(rows[0]) if rows else None

    def payment_by_out_no(self, partner_id: str, out_trade_no: str) -> Payment | None:
        rows = self.books.query(
            "SELECT * FROM jhb_payments WHERE partner_id = ? AND out_trade_no = ?", (partner_id, out_trade_no)
        )
        return _payment(rows[0]) if rows else None

    def payment_by_page_token(self, page_token: str) -> Payment | None:
        rows = self.books.query("SELECT * FROM jhb_payments WHERE page_token = ?", (page_token,))
        return _payment(rows[0]) if rows else None

    def update_payment(self, jhb_trade_no: str, expected: PaymentStatus, **changes: Any) -> bool:
        """Compare-and-set: apply `changes` only if the payment is still in `expected`."""
        return _update(self.books, "jhb_payments", "jhb_trade_no", jhb_trade_no, expected.value, changes)

    def count_payment_query(self, jhb_trade_no: str) -> int:
        """Count one more query of this payment; returns the new count."""
        with self.books.tx() as conn:
            conn.execute(
                "UPDATE jhb_payments SET queries_seen = queries_seen + 1 WHERE jhb_trade_no = ?", (jhb_trade_no,)
            )
            row = conn.execute(
                "SELECT queries_seen FROM jhb_payments WHERE jhb_trade_no = ?", (jhb_trade_no,)
            ).fetchone()
        return int(row["queries_seen"])

    # Refunds

    def insert_refund_within(self, refund: Refund, original_minor: int) -> tuple[Refund, bool]:
        """Insert a refund if the partner has not used `out_refund_no` and the sum stays ≤ the payment.

        Returns (stored refund, created). Refunds that have not failed count against the original
        amount, so two racing refunds cannot together exceed it.
        """
        with self.books.tx() as conn:
            row = conn.execute(
                "SELECT * FROM jhb_refunds WHERE partner_id = ? AND out_refund_no = ?",
                (refund.partner_id, refund.out_refund_no),
            ).fetchone()
            if row is not None:
                return _refund(row), False
            used = conn.execute(
                "SELECT COALESCE(SUM(amount_minor), 0) FROM jhb_refunds WHERE jhb_trade_no = ? AND status != ?",
                (refund.jhb_trade_no, RefundStatus.FAILED.value),
            ).fetchone()[0]
            if int(used) + refund.amount_minor > original_minor:
                raise RefundExceedsPayment(original_minor - int(used))
            conn.execute(
                "INSERT INTO jhb_refunds(jhb_refund_no, partner_id, out_refund_no, jhb_trade_no, amount_minor,"
                " reason, notify_url, status, fail_code, queries_seen, created_at, finish_time)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    refund.jhb_refund_no,
                    refund.partner_id,
                    refund.out_refund_no,
                    refund.jhb_trade_no,
                    refund.amount_minor,
                    refund.reason,
                    refund.notify_url,
                    refund.status.value,
                    refund.fail_code,
                    refund.queries_seen,
                    refund.created_at.isoformat(),
                    refund.finish_time,
                ),
            )
        return refund, True

    def refund(self, jhb_refund_no: str) -> Refund | None:
        rows = self.books.query("SELECT * FROM jhb_refunds WHERE jhb_refund_no = ?", (jhb_refund_no,))
        return _refund(rows[0]) if rows else None

    def refund_by_out_no(self, partner_id: str, out_refund_no: str) -> Refund | None:
        rows = self.books.query(
            "SELECT * FROM jhb_refunds WHERE partner_id = ? AND out_refund_no = ?", (partner_id, out_refund_no)
        )
        return _refund(rows[0]) if rows else None

    def refunded_minor(self, jhb_trade_no: str) -> int:
        """Sum of the refunds of a payment that have succeeded."""
        rows = self.books.query(
            "SELECT COALESCE(SUM(amount_minor), 0) AS total FROM jhb_refunds WHERE jhb_trade_no = ? AND status = ?",
            (jhb_trade_no, RefundStatus.SUCCESS.value),
        )
        return int(rows[0]["total"])

    def update_refund(self, jhb_refund_no: str, expected: RefundStatus, **changes: Any) -> bool:
        return _update(self.books, "jhb_refunds", "jhb_refund_no", jhb_refund_no, expected.value, changes)

    def count_refund_query(self, jhb_refund_no: str) -> int:
        with self.books.tx() as conn:
            conn.execute(
                "UPDATE jhb_refunds SET queries_seen = queries_seen + 1 WHERE jhb_refund_no = ?", (jhb_refund_no,)
            )
            row = conn.execute(
                "SELECT queries_seen FROM jhb_refunds WHERE jhb_refund_no = ?", (jhb_refund_no,)
            ).fetchone()
        return int(row["queries_seen"])


class RefundExceedsPayment(Exception):
    def __init__(self, refundable_minor: int) -> None:
        super().__init__(f"only {refundable_minor} fen can still be refunded")
        self.refundable_minor = refundable_minor


_UPDATABLE = frozenset({"status", "fail_code", "card_no", "session_token", "finish_time"})


def _update(books: Books, table: str, key_column: str, key: str, expected: str, changes: dict[str, Any]) -> bool:
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    values = [v.value if isinstance(v, StrEnum) else v for v in changes.values()]
    assignments = ", ".join(f"{column} = ?" for column in changes)
    with books.tx() as conn:
        cursor = conn.execute(
            f"UPDATE {table} SET {assignments} WHERE {key_column} = ? AND status = ?",
            (*values, key, expected),
        )
        return cursor.rowcount == 1


def _data_key(row: sqlite3.Row) -> StoredDataKey:
    return StoredDataKey(
        key_id=row["key_id"],
        partner_id=row["partner_id"],
        key=bytes.fromhex(row["key_hex"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        valid_until_ts=row["valid_until_ts"],
    )


def _payment(row: sqlite3.Row) -> Payment:
    return Payment(
        jhb_trade_no=row["jhb_trade_no"],
        partner_id=row["partner_id"],
        out_trade_no=row["out_trade_no"],
        service=row["service"],
        amount_minor=row["amount_minor"],
        subject=row["subject"],
        notify_url=row["notify_url"],
        return_url=row["return_url"],
        expire_at=datetime.fromisoformat(row["expire_at"]),
        status=PaymentStatus(row["status"]),
        fail_code=row["fail_code"],
        card_no=row["card_no"],
        page_token=row["page_token"],
        session_token=row["session_token"],
        queries_seen=row["queries_seen"],
        created_at=datetime.fromisoformat(row["created_at"]),
        finish_time=row["finish_time"],
    )


def _refund(row: sqlite3.Row) -> Refund:
    return Refund(
        jhb_refund_no=row["jhb_refund_no"],
        partner_id=row["partner_id"],
        out_refund_no=row["out_refund_no"],
        jhb_trade_no=row["jhb_trade_no"],
        amount_minor=row["amount_minor"],
        reason=row["reason"],
        notify_url=row["notify_url"],
        status=RefundStatus(row["status"]),
        fail_code=row["fail_code"],
        queries_seen=row["queries_seen"],
        created_at=datetime.fromisoformat(row["created_at"]),
        finish_time=row["finish_time"],
    )
