"""HBB's quick-pay records: the SMS requests (`txnType=77`) and the card tokens bound by `79`.

A 77 ties an SMS code to `merId + orderId + txnTime` and the card, so the 79 that follows must
carry the same three (research/protocols.md §3.1). A token stands for one card at one merchant;
each merchant holds at most one active token per card, and an unbound token never pays again.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from banksim.core.books import Books

SCHEMA = """
CREATE TABLE IF NOT EXISTS hbb_bind_requests (
    mer_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    txn_time TEXT NOT NULL,
    order_date TEXT NOT NULL,
    acc_no TEXT NOT NULL,
    token TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    PRIMARY KEY (mer_id, order_id, txn_time)
);
CREATE TABLE IF NOT EXISTS hbb_tokens (
    token TEXT PRIMARY KEY,
    mer_id TEXT NOT NULL,
    acc_no TEXT NOT NULL,
    status TEXT NOT NULL,
    bind_order_id TEXT NOT NULL,
    bind_txn_time TEXT NOT NULL,
    created_at TEXT NOT NULL,
    unbound_at TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS hbb_tokens_one_active ON hbb_tokens(mer_id, acc_no) WHERE status = 'active';
"""


class TokenStatus(StrEnum):
    """Stored status; on the wire `tokenStatus` is `01` (active) or `02` (unbound)."""

    ACTIVE = "active"
    UNBOUND = "unbound"

    @property
    def wire_code(self) -> str:
        return "01" if self is TokenStatus.ACTIVE else "02"


class OrderIdTaken(Exception):
    """The merchant already used this orderId that day for another SMS request."""


@dataclass(frozen=True, slots=True)
class BindRequest:
    mer_id: str
    order_id: str
    txn_time: str
    acc_no: str
    token: str

    @property
    def sms_ref(self) -> str:
        return sms_ref(self.mer_id, self.order_id, self.txn_time)


@dataclass(frozen=True, slots=True)
class CardToken:
    token: str
    mer_id: str
    acc_no: str
    status: TokenStatus

    @property
    def is_active(self) -> bool:
        return self.status is TokenStatus.ACTIVE


def sms_ref(mer_id: str, order_id: str, txn_time: str) -> str:
    """The key of the SMS code a 77 issues and the matching 79 checks."""
    return f"hbb-bind:{mer_id}:{order_id}:{txn_time}"


def new_token() -> str:
    return "HT" + secrets.token_hex(12).upper()


class Tokens:
    def __init__(self, books: Books) -> None:
        self._books = books

    def record_sms_request(self, mer_id: str, order_id: str, txn_time: str, acc_no: str, at: datetime) -> None:
        """Remember which card a 77 was for; a repeat of the same 77 (a resend) may change nothing else."""
        with self._books.tx() as conn:
            taken = conn.execute(
                "SELECT 1 FROM hbb_bind_requests WHERE mer_id = ? AND order_id = ? AND order_date = ?"
                " AND txn_time != ?",
                (mer_id, order_id, txn_time[:8], txn_time),
            ).fetchone()
            if taken is not None:
                raise OrderIdTaken(order_id)
            conn.execute(
                "INSERT INTO hbb_bind_requests(mer_id, order_id, txn_time, order_date, acc_no, created_at)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT(mer_id, order_id, txn_time) DO UPDATE SET acc_no = excluded.acc_no"
                " WHERE hbb_bind_requests.token = ''",
                (mer_id, order_id, txn_time, txn_time[:8], acc_no, at.isoformat()),
            )

    def bind_request(self, mer_id: str, order_id: str, txn_time: str) -> BindRequest | None:
        rows = self._books.query(
            "SELECT * FROM hbb_bind_requests WHERE mer_id = ? AND order_id = ? AND txn_time = ?",
            (mer_id, order_id, txn_time),
        )
        if not rows:
            return None
        r = rows[0]
        return BindRequest(r["mer_id"], r["order_id"], r["txn_time"], r["acc_no"], r["token"])

    def bind(self, request: BindRequest, at: datetime) -> CardToken:
        """The merchant's active token for the card (a new one unless it holds one already)."""
        with self._books.tx() as conn:
            row = conn.execute(
                "SELECT * FROM hbb_tokens WHERE mer_id = ? AND acc_no = ? AND status = ?",
                (request.mer_id, request.acc_no, TokenStatus.ACTIVE.value),
            ).fetchone()
            token = str(row["token"]) if row is not None else new_token()
            if row is None:
                conn.execute(
                    "INSERT INTO hbb_tokens(token, mer_id, acc_no, status, bind_order_id, bind_txn_time, created_at)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (
                        token,
                        request.mer_id,
                        request.acc_no,
                        TokenStatus.ACTIVE.value,
                        request.order_id,
                        request.txn_time,
                        at.isoformat(),
                    ),
                )
            conn.execute(
                "UPDATE hbb_bind_requests SET token = ? WHERE mer_id = ? AND order_id = ? AND txn_time = ?",
                (token, request.mer_id, request.order_id, request.txn_time),
            )
            found = _token_in(conn, token)
        assert found is not None
        return found

    def token(self, token: str) -> CardToken | None:
        rows = self._books.query("SELECT * FROM hbb_tokens WHERE token = ?", (token,))
        return _card_token(rows[0]) if rows else None

    def unbind(self, token: str, at: datetime) -> CardToken | None:
        with self._books.tx() as conn:
            conn.execute(
                "UPDATE hbb_tokens SET status = ?, unbound_at = ? WHERE token = ? AND status = ?",
                (TokenStatus.UNBOUND.value, at.isoformat(), token, TokenStatus.ACTIVE.value),
            )
            return _token_in(conn, token)


def _token_in(conn: sqlite3.Connection, token: str) -> CardToken | None:
    row = conn.execute("SELECT * FROM hbb_tokens WHERE token = ?", (token,)).fetchone()
    return _card_token(row) if row is not None else None


def _card_token(row: sqlite3.Row) -> CardToken:
    return CardToken(row["token"], row["mer_id"], row["acc_no"], TokenStatus(row["status"]))
