"""A bank's books: one SQLite file per bank holding customers, accounts and every money movement.

Money moves only through `Books.transfer`, which debits one account and credits another in one
database transaction, refuses to take a customer account below zero, and is idempotent on the
bank's own reference (`bank_ref`). Each bank adds its protocol's tables through `extra_schema`
and uses `tx()` for its own writes. Amounts are integer fen.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path

from banksim.core.clock import shanghai_date
from banksim.core.secrets_hash import verify_secret

CORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id_number TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    phone TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    acc_no TEXT PRIMARY KEY,
    holder_name TEXT NOT NULL,
    id_number TEXT REFERENCES customers(id_number),
    kind TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    balance_minor INTEGER NOT NULL,
    per_txn_limit_minor INTEGER,
    login_hash TEXT,
    pin_hash TEXT,
    opened_at TEXT NOT NULL,
    CHECK (kind = 'clearing' OR balance_minor >= 0)
);
CREATE TABLE IF NOT EXISTS transfers (
    bank_ref TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    debit_acc TEXT NOT NULL REFERENCES accounts(acc_no),
    credit_acc TEXT NOT NULL REFERENCES accounts(acc_no),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    business_date TEXT NOT NULL,
    statement_date TEXT NOT NULL,
    created_at TEXT NOT NULL,
    memo TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS movements (
    movement_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bank_ref TEXT NOT NULL REFERENCES transfers(bank_ref),
    acc_no TEXT NOT NULL REFERENCES accounts(acc_no),
    amount_minor INTEGER NOT NULL,
    balance_after_minor INTEGER NOT NULL,
    statement_date TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS movements_by_account ON movements(acc_no, statement_date);
CREATE TABLE IF NOT EXISTS sequences (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sms_outbox (
    sms_id INTEGER PRIMARY KEY AUTOINCREMENT,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sms_codes (
    ref TEXT PRIMARY KEY,
    phone TEXT NOT NULL,
    purpose TEXT NOT NULL,
    code TEXT NOT NULL,
    expires_at REAL NOT NULL,
    tries_left INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS notifications (
    notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_ref TEXT NOT NULL,
    url TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(status, next_at);
CREATE TABLE IF NOT EXISTS partners (
    partner_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS partner_keys (
    key_id TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL REFERENCES partners(partner_id),
    public_key_pem TEXT NOT NULL,
    certificate_pem TEXT,
    created_at TEXT NOT NULL
);
"""


class AccountKind(StrEnum):
    CARD = "card"
    RESERVE = "reserve"
    CORPORATE = "corporate"
    CLEARING = "clearing"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class DeclineReason(StrEnum):
    NO_SUCH_ACCOUNT = "no_such_account"
    ACCOUNT_CLOSED = "account_closed"
    ACCOUNT_FROZEN = "account_frozen"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    OVER_LIMIT = "over_limit"


class Declined(Exception):
    """The books refused a transfer; nothing moved."""

    def __init__(self, reason: DeclineReason, acc_no: str) -> None:
        super().__init__(f"{reason.value} on account ending {acc_no[-4:]}")
        self.reason = reason
        self.acc_no = acc_no


class TransferConflict(Exception):
    """A `bank_ref` was reused for a different transfer (a bug in the caller)."""


@dataclass(frozen=True, slots=True)
class Customer:
    id_number: str
    name: str
    phone: str


@dataclass(frozen=True, slots=True)
class Account:
    acc_no: str
    holder_name: str
    id_number: str | None
    kind: AccountKind
    status: AccountStatus
    balance_minor: int
    per_txn_limit_minor: int | None


@dataclass(frozen=True, slots=True)
class Transfer:
    bank_ref: str
    kind: str
    debit_acc: str
    credit_acc: str
    amount_minor: int
    business_date: date
    statement_date: date
    created_at: datetime
    memo: str


@dataclass(frozen=True, slots=True)
class Movement:
    bank_ref: str
    acc_no: str
    amount_minor: int
    balance_after_minor: int
    statement_date: date
    created_at: datetime


class Books:
    """One bank's SQLite books; safe to share between the event loop and test threads."""

    def __init__(self, path: Path, extra_schema: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(CORE_SCHEMA + extra_schema)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def ensure_schema(self, schema: str) -> None:
        """Create a bank's own tables (idempotent `CREATE ... IF NOT EXISTS` statements)."""
        with self._lock:
            self._conn.executescript(schema)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that commits on success and rolls back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def next_sequence(self, name: str) -> int:
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO sequences(name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (name,),
            )
            row = conn.execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()
        return int(row["value"])

    # Customers and accounts

    def add_customer(self, customer: Customer) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO customers(id_number, name, phone) VALUES (?, ?, ?)",
                (customer.id_number, customer.name, customer.phone),
            )

    def open_account(
        self,
        account: Account,
        *,
        opened_at: datetime,
        login_hash: str | None = None,
        pin_hash: str | None = None,
    ) -> bool:
        """Open an account unless it exists; returns whether it was created."""
        with self.tx() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO accounts(acc_no, holder_name, id_number, kind, status, balance_minor,"
                " per_txn_limit_minor, login_hash, pin_hash, opened_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    account.acc_no,
                    account.holder_name,
                    account.id_number,
                    account.kind.value,
                    account.status.value,
                    account.balance_minor,
                    account.per_txn_limit_minor,
                    login_hash,
                    pin_hash,
                    opened_at.isoformat(),
                ),
            )
            return cursor.rowcount == 1

    def customer(self, id_number: str) -> Customer | None:
        rows = self.query("SELECT * FROM customers WHERE id_number = ?", (id_number,))
        return Customer(rows[0]["id_number"], rows[0]["name"], rows[0]["phone"]) if rows else None

    def customers(self) -> list[Customer]:
        rows = self.query("SELECT * FROM customers ORDER BY id_number")
        return [Customer(r["id_number"], r["name"], r["phone"]) for r in rows]

    def account(self, acc_no: str) -> Account | None:
        rows = self.query("SELECT * FROM accounts WHERE acc_no = ?", (acc_no,))
        return _account(rows[0]) if rows else None

    def accounts(self) -> list[Account]:
        return [_account(r) for r in self.query("SELECT * FROM accounts ORDER BY acc_no")]

    def set_status(self, acc_no: str, status: AccountStatus) -> None:
        with self.tx() as conn:
            conn.execute("UPDATE accounts SET status = ? WHERE acc_no = ?", (status.value, acc_no))

    def check_login(self, acc_no: str, password: str) -> bool:
        return self._check_secret(acc_no, "login_hash", password)

    def check_pin(self, acc_no: str, pin: str) -> bool:
        return self._check_secret(acc_no, "pin_hash", pin)

    def _check_secret(self, acc_no: str, column: str, secret: str) -> bool:
        rows = self.query(f"SELECT {column} AS stored FROM accounts WHERE acc_no = ?", (acc_no,))
        if not rows or rows[0]["stored"] is None:
            return False
        return verify_secret(secret, rows[0]["stored"])

    def total_minor(self) -> int:
        """Sum of every balance in these books, clearing position included (conservation checks)."""
        rows = self.query("SELECT COALESCE(SUM(balance_minor), 0) AS total FROM accounts")
        return int(rows[0]["total"])

    # Money

    def debit_refusal(self, acc_no: str, amount_minor: int, *, enforce_limit: bool) -> DeclineReason | None:
        """Why a debit of `amount_minor` would be refused right now, or None if it would pass."""
        account = self.account(acc_no)
        return _debit_refusal(account, amount_minor, enforce_limit=enforce_limit)

    def transfer(
        self,
        *,
        bank_ref: str,
        kind: str,
        debit_acc: str,
        credit_acc: str,
        amount_minor: int,
        at: datetime,
        statement_date: date | None = None,
        enforce_limit: bool = False,
        memo: str = "",
    ) -> Transfer:
        """Move money inside this bank, atomically and at most once per `bank_ref`.

        Raises `Declined` when the debit account cannot pay (frozen, insufficient funds, over its
        per-transaction limit when `enforce_limit`) or either account is missing or closed.
        """
        if amount_minor <= 0:
            raise ValueError("a transfer moves a positive amount")
        business_date = shanghai_date(at)
        booked_on = statement_date or business_date
        with self.tx() as conn:
            existing = conn.execute("SELECT * FROM transfers WHERE bank_ref = ?", (bank_ref,)).fetchone()
            if existing is not None:
                return _same_transfer(_transfer(existing), debit_acc, credit_acc, amount_minor)
            debit = _account_in(conn, debit_acc)
            credit = _account_in(conn, credit_acc)
            refusal = _debit_refusal(debit, amount_minor, enforce_limit=enforce_limit)
            if refusal is not None:
                raise Declined(refusal, debit_acc)
            if credit is None:
                raise Declined(DeclineReason.NO_SUCH_ACCOUNT, credit_acc)
            if credit.status is AccountStatus.CLOSED:
                raise Declined(DeclineReason.ACCOUNT_CLOSED, credit_acc)
            conn.execute(
                "INSERT INTO transfers(bank_ref, kind, debit_acc, credit_acc, amount_minor, business_date,"
                " statement_date, created_at, memo) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    bank_ref,
                    kind,
                    debit_acc,
                    credit_acc,
                    amount_minor,
                    business_date.isoformat(),
                    booked_on.isoformat(),
                    at.isoformat(),
                    memo,
                ),
            )
            _move(conn, bank_ref, debit_acc, -amount_minor, booked_on, at)
            _move(conn, bank_ref, credit_acc, amount_minor, booked_on, at)
            row = conn.execute("SELECT * FROM transfers WHERE bank_ref = ?", (bank_ref,)).fetchone()
        return _transfer(row)

    def find_transfer(self, bank_ref: str) -> Transfer | None:
        rows = self.query("SELECT * FROM transfers WHERE bank_ref = ?", (bank_ref,))
        return _transfer(rows[0]) if rows else None

    def transfers(self, limit: int = 200) -> list[Transfer]:
        rows = self.query("SELECT * FROM transfers ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
        return [_transfer(r) for r in rows]

    def movements(self, acc_no: str, statement_date: date | None = None) -> list[Movement]:
        """Movements on one account in booking order, optionally for one statement date only."""
        if statement_date is None:
            rows = self.query("SELECT * FROM movements WHERE acc_no = ? ORDER BY movement_id", (acc_no,))
        else:
            rows = self.query(
                "SELECT * FROM movements WHERE acc_no = ? AND statement_date = ? ORDER BY movement_id",
                (acc_no, statement_date.isoformat()),
            )
        return [
            Movement(
                r["bank_ref"],
                r["acc_no"],
                r["amount_minor"],
                r["balance_after_minor"],
                date.fromisoformat(r["statement_date"]),
                datetime.fromisoformat(r["created_at"]),
            )
            for r in rows
        ]


def _account(row: sqlite3.Row) -> Account:
    return Account(
        acc_no=row["acc_no"],
        holder_name=row["holder_name"],
        id_number=row["id_number"],
        kind=AccountKind(row["kind"]),
        status=AccountStatus(row["status"]),
        balance_minor=row["balance_minor"],
        per_txn_limit_minor=row["per_txn_limit_minor"],
    )


def _account_in(conn: sqlite3.Connection, acc_no: str) -> Account | None:
    row = conn.execute("SELECT * FROM accounts WHERE acc_no = ?", (acc_no,)).fetchone()
    return _account(row) if row is not None else None


def _debit_refusal(account: Account | None, amount_minor: int, *, enforce_limit: bool) -> DeclineReason | None:
    if account is None:
        return DeclineReason.NO_SUCH_ACCOUNT
    if account.status is AccountStatus.CLOSED:
        return DeclineReason.ACCOUNT_CLOSED
    if account.status is AccountStatus.FROZEN:
        return DeclineReason.ACCOUNT_FROZEN
    if enforce_limit and account.per_txn_limit_minor is not None and amount_minor > account.per_txn_limit_minor:
        return DeclineReason.OVER_LIMIT
    # The interbank clearing position is the only account allowed below zero: it is a net
    # claim between banks, not anyone's money.
    if account.kind is not AccountKind.CLEARING and account.balance_minor < amount_minor:
        return DeclineReason.INSUFFICIENT_FUNDS
    return None


def _move(
    conn: sqlite3.Connection, bank_ref: str, acc_no: str, amount_minor: int, booked_on: date, at: datetime
) -> None:
    conn.execute("UPDATE accounts SET balance_minor = balance_minor + ? WHERE acc_no = ?", (amount_minor, acc_no))
    balance = conn.execute("SELECT balance_minor FROM accounts WHERE acc_no = ?", (acc_no,)).fetchone()[0]
    conn.execute(
        "INSERT INTO movements(bank_ref, acc_no, amount_minor, balance_after_minor, statement_date, created_at)"
        " VALUES (?,?,?,?,?,?)",
        (bank_ref, acc_no, amount_minor, balance, booked_on.isoformat(), at.isoformat()),
    )


def _transfer(row: sqlite3.Row) -> Transfer:
    return Transfer(
        bank_ref=row["bank_ref"],
        kind=row["kind"],
        debit_acc=row["debit_acc"],
        credit_acc=row["credit_acc"],
        amount_minor=row["amount_minor"],
        business_date=date.fromisoformat(row["business_date"]),
        statement_date=date.fromisoformat(row["statement_date"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        memo=row["memo"],
    )


def _same_transfer(existing: Transfer, debit_acc: str, credit_acc: str, amount_minor: int) -> Transfer:
    if (existing.debit_acc, existing.credit_acc, existing.amount_minor) != (debit_acc, credit_acc, amount_minor):
        raise TransferConflict(f"bank_ref {existing.bank_ref} already names a different transfer")
    return existing
