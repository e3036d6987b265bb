"""JHB's quick-pay tables: pending bind tokens, the agreements (协议号) they become, and which
agreement paid each quick-pay order.

A bind token lives from `bind.apply` until its SMS code is confirmed (or expires); confirming it
makes, or finds, the partner's one active agreement for the card. Unbinding is a one-way status
change, so an old `no_agree` never pays again. Payments themselves stay in `jhb_payments`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from banksim.core.books import Books

SCHEMA = """
CREATE TABLE IF NOT EXISTS jhb_bind_tokens (
    token TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    card_no TEXT NOT NULL,
    bind_mob TEXT NOT NULL,
    user_id TEXT NOT NULL,
    expire_at TEXT NOT NULL,
    no_agree TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jhb_agreements (
    no_agree TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    card_no TEXT NOT NULL,
    bind_mob TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    bind_time TEXT NOT NULL,
    unbind_time TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS jhb_agreements_one_active
    ON jhb_agreements(partner_id, card_no) WHERE status = 'ACTIVE';
CREATE TABLE IF NOT EXISTS jhb_quick_payments (
    jhb_trade_no TEXT PRIMARY KEY,
    no_agree TEXT NOT NULL
);
"""


class AgreementStatus(StrEnum):
    ACTIVE = "ACTIVE"
    UNBOUND = "UNBOUND"


@dataclass(frozen=True, slots=True)
class BindToken:
    token: str
    partner_id: str
    card_no: str
    bind_mob: str
    user_id: str
    expire_at: datetime
    no_agree: str

    @property
    def sms_ref(self) -> str:
        return f"jhb-bind:{self.token}"


@dataclass(frozen=True, slots=True)
class Agreement:
    no_agree: str
    partner_id: str
    card_no: str
    bind_mob: str
    user_id: str
    status: AgreementStatus
    bind_time: str
    unbind_time: str

    @property
    def is_active(self) -> bool:
        return self.status is AgreementStatus.ACTIVE


class Agreements:
    def __init__(self, books: Books) -> None:
        self._books = books

    def add_bind_token(self, token: BindToken, at: datetime) -> None:
        with self._books.tx() as conn:
            conn.execute(
                "INSERT INTO jhb_bind_tokens(token, partner_id, card_no, bind_mob, user_id, expire_at, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    token.token,
                    token.partner_id,
                    token.card_no,
                    token.bind_mob,
                    token.user_id,
                    token.expire_at.isoformat(),
                    at.isoformat(),
                ),
            )

    def bind_token(self, token: str) -> BindToken | None:
        rows = self._books.query("SELECT * FROM jhb_bind_tokens WHERE token = ?", (token,))
        if not rows:
            return None
        r = rows[0]
        return BindToken(
            r["token"],
            r["partner_id"],
            r["card_no"],
            r["bind_mob"],
            r["user_id"],
            datetime.fromisoformat(r["expire_at"]),
            r["no_agree"],
        )

    def confirm(self, token: BindToken, new_no_agree: str, bind_time: str) -> Agreement:
        """Turn a confirmed token into the partner's active agreement for the card (new or existing)."""
        with self._books.tx() as conn:
            row = conn.execute(
                "SELECT no_agree FROM jhb_agreements WHERE partner_id = ? AND card_no = ? AND status = ?",
                (token.partner_id, token.card_no, AgreementStatus.ACTIVE.value),
            ).fetchone()
            no_agree = str(row["no_agree"]) if row is not None else new_no_agree
            if row is None:
                conn.execute(
                    "INSERT INTO jhb_agreements(no_agree, partner_id, card_no, bind_mob, user_id, status, bind_time)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (
                        no_agree,
                        token.partner_id,
                        token.card_no,
                        token.bind_mob,
                        token.user_id,
                        AgreementStatus.ACTIVE.value,
                        bind_time,
                    ),
                )
            conn.execute("UPDATE jhb_bind_tokens SET no_agree = ? WHERE token = ?", (no_agree, token.token))
            found = _agreement_in(conn, no_agree)
        assert found is not None
        return found

    def agreement(self, no_agree: str) -> Agreement | None:
        rows = self._books.query("SELECT * FROM jhb_agreements WHERE no_agree = ?", (no_agree,))
        return _agreement(rows[0]) if rows else None

    def unbind(self, no_agree: str, unbind_time: str) -> Agreement | None:
        with self._books.tx() as conn:
            conn.execute(
                "UPDATE jhb_agreements SET status = ?, unbind_time = ? WHERE no_agree = ? AND status = ?",
                (AgreementStatus.UNBOUND.value, unbind_time, no_agree, AgreementStatus.ACTIVE.value),
            )
            return _agreement_in(conn, no_agree)

    def link_payment(self, jhb_trade_no: str, no_agree: str) -> None:
        with self._books.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO jhb_quick_payments(jhb_trade_no, no_agree) VALUES (?, ?)",
                (jhb_trade_no, no_agree),
            )

    def agreement_of_payment(self, jhb_trade_no: str) -> str:
        rows = self._books.query("SELECT no_agree FROM jhb_quick_payments WHERE jhb_trade_no = ?", (jhb_trade_no,))
        return str(rows[0]["no_agree"]) if rows else ""


def _agreement_in(conn: sqlite3.Connection, no_agree: str) -> Agreement | None:
    row = conn.execute("SELECT * FROM jhb_agreements WHERE no_agree = ?", (no_agree,)).fetchone()
    return _agreement(row) if row is not None else None


def _agreement(row: sqlite3.Row) -> Agreement:
    return Agreement(
        row["no_agree"],
        row["partner_id"],
        row["card_no"],
        row["bind_mob"],
        row["user_id"],
        AgreementStatus(row["status"]),
        row["bind_time"],
        row["unbind_time"],
    )
