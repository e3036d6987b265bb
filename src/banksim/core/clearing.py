"""The interbank clearing: how money moves between two simulated banks' books.

Each bank keeps a `CLEARING` account in its books: its net position towards the clearing house
(positive = it owes, negative = it is owed; the only account allowed below zero). A clearing
transfer from bank A's account X to bank B's account Y is a small saga recorded in the world's
`clearing.sqlite`:

    received --debit X, credit A:CLEARING--> debited --debit B:CLEARING, credit Y--> settled
    received --A refuses X's debit--> rejected
    debited  --B refuses Y (missing/closed)--> credit X back from A:CLEARING --> returned
    debited  --B finds Y's holder is not the name A sent (`to_name`)--> returned (reason name_mismatch)

Every step in a bank's books is idempotent on a reference derived from the clearing reference,
so `resume()` after a crash simply replays unfinished transfers. Invariants (tested): the
positions sum to zero, each bank's CLEARING balance equals its position here, and the sum of all
balances across all banks never changes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from banksim.core.books import Account, Books, Declined, DeclineReason
from banksim.core.cardholders import same_name
from banksim.core.clock import SimClock
from banksim.core.seed import CLEARING_ACC_NO

SCHEMA = """
CREATE TABLE IF NOT EXISTS clearing_transfers (
    clearing_ref TEXT PRIMARY KEY,
    from_bank TEXT NOT NULL,
    from_acc TEXT NOT NULL,
    to_bank TEXT NOT NULL,
    to_acc TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    memo TEXT NOT NULL DEFAULT '',
    to_name TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    bank TEXT PRIMARY KEY,
    net_minor INTEGER NOT NULL
);
"""


class ClearingStatus(StrEnum):
    RECEIVED = "received"
    DEBITED = "debited"
    SETTLED = "settled"
    REJECTED = "rejected"
    RETURNED = "returned"


FINAL = frozenset({ClearingStatus.SETTLED, ClearingStatus.REJECTED, ClearingStatus.RETURNED})
# Why a receiving bank returns a transfer whose payee name is not its account holder's (a bounce, 退票).
NAME_MISMATCH = "name_mismatch"


class ClearingConflict(Exception):
    """A clearing reference was reused for a different transfer."""


@dataclass(frozen=True, slots=True)
class ClearingTransfer:
    clearing_ref: str
    from_bank: str
    from_acc: str
    to_bank: str
    to_acc: str
    amount_minor: int
    status: ClearingStatus
    reason: str
    to_name: str = ""


class Clearing:
    """The world's clearing house; needs every bank's books to post both legs."""

    def __init__(self, path: Path, books_by_bank: Mapping[str, Books], clock: SimClock) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._books = dict(books_by_bank)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)
        # Worlds created before `to_name` existed get the column here (SQLite has no ADD COLUMN IF NOT EXISTS).
        columns = {row["name"] for row in self._conn.execute("PRAGMA table_info(clearing_transfers)")}
        if "to_name" not in columns:
            self._conn.execute("ALTER TABLE clearing_transfers ADD COLUMN to_name TEXT NOT NULL DEFAULT ''")

    def add_bank(self, code: str, books: Books) -> None:
        self._books[code] = books

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def transfer(
        self,
        *,
        clearing_ref: str,
        from_bank: str,
        from_acc: str,
        to_bank: str,
        to_acc: str,
        amount_minor: int,
        memo: str = "",
        to_name: str = "",
    ) -> ClearingTransfer:
        """Move `amount_minor` from one bank's account to another bank's; idempotent on the ref.

        With `to_name` (the payee's name as the sender was told it) the receiving bank also checks it
        against its account holder and returns the money when it differs: the sender cannot see
        another bank's names, so such a transfer is accepted first and bounces (退票).
        """
        if from_bank == to_bank:
            raise ValueError("a transfer inside one bank does not pass the clearing")
        if amount_minor <= 0:
            raise ValueError("a clearing transfer moves a positive amount")
        for code in (from_bank, to_bank):
            if code not in self._books:
                raise ValueError(f"unknown bank {code}")
        with self._lock:
            self._record(clearing_ref, from_bank, from_acc, to_bank, to_acc, amount_minor, memo, to_name)
            return self._advance(clearing_ref)

    def resume(self) -> list[ClearingTransfer]:
        """Finish every transfer a crash left half-done."""
        rows = self._rows(
            "SELECT clearing_ref FROM clearing_transfers WHERE status IN (?, ?)",
            (ClearingStatus.RECEIVED.value, ClearingStatus.DEBITED.value),
        )
        with self._lock:
            return [self._advance(r["clearing_ref"]) for r in rows]

    def find(self, clearing_ref: str) -> ClearingTransfer | None:
        rows = self._rows("SELECT * FROM clearing_transfers WHERE clearing_ref = ?", (clearing_ref,))
        return _clearing(rows[0]) if rows else None

    def account(self, bank: str, acc_no: str) -> Account | None:
        """An account at another bank, as the clearing knows it (a payout checks its payee first)."""
        books = self._books.get(bank)
        return books.account(acc_no) if books is not None else None

    def positions(self) -> dict[str, int]:
        rows = self._rows("SELECT bank, net_minor FROM positions ORDER BY bank", ())
        return {r["bank"]: r["net_minor"] for r in rows}

    def transfers(self, limit: int = 200) -> list[ClearingTransfer]:
        rows = self._rows("SELECT * FROM clearing_transfers ORDER BY rowid DESC LIMIT ?", (limit,))
        return [_clearing(r) for r in rows]

    # The saga

    def _advance(self, clearing_ref: str) -> ClearingTransfer:
        current = self.find(clearing_ref)
        assert current is not None
        if current.status is ClearingStatus.RECEIVED:
            current = self._debit_sender(current)
        if current.status is ClearingStatus.DEBITED:
            current = self._credit_receiver(current)
        return current

    def _debit_sender(self, item: ClearingTransfer) -> ClearingTransfer:
        try:
            self._books[item.from_bank].transfer(
                bank_ref=f"CLR{item.clearing_ref}OUT",
                kind="clearing_out",
                debit_acc=item.from_acc,
                credit_acc=CLEARING_ACC_NO,
                amount_minor=item.amount_minor,
                at=self._clock.now(),
                memo=f"to {item.to_bank}",
            )
        except Declined as declined:
            return self._settle_step(item, ClearingStatus.REJECTED, declined.reason, None, 0)
        return self._settle_step(item, ClearingStatus.DEBITED, None, item.from_bank, item.amount_minor)

    def _credit_receiver(self, item: ClearingTransfer) -> ClearingTransfer:
        if item.to_name:
            account = self._books[item.to_bank].account(item.to_acc)
            if account is not None and not same_name(account.holder_name, item.to_name):
                return self._return_to_sender(item, NAME_MISMATCH)
        try:
            self._books[item.to_bank].transfer(
                bank_ref=f"CLR{item.clearing_ref}IN",
                kind="clearing_in",
                debit_acc=CLEARING_ACC_NO,
                credit_acc=item.to_acc,
                amount_minor=item.amount_minor,
                at=self._clock.now(),
                memo=f"from {item.from_bank}",
            )
        except Declined as declined:
            return self._return_to_sender(item, declined.reason.value)
        return self._settle_step(item, ClearingStatus.SETTLED, None, item.to_bank, -item.amount_minor)

    def _return_to_sender(self, item: ClearingTransfer, reason: str) -> ClearingTransfer:
        # The receiving bank cannot take the money, so the sending bank gives it back to the
        # sender's account; its clearing position returns to where it was.
        self._books[item.from_bank].transfer(
            bank_ref=f"CLR{item.clearing_ref}RET",
            kind="clearing_return",
            debit_acc=CLEARING_ACC_NO,
            credit_acc=item.from_acc,
            amount_minor=item.amount_minor,
            at=self._clock.now(),
            memo=f"returned by {item.to_bank}: {reason}",
        )
        return self._settle_step(item, ClearingStatus.RETURNED, reason, item.from_bank, -item.amount_minor)

    def _settle_step(
        self,
        item: ClearingTransfer,
        status: ClearingStatus,
        reason: DeclineReason | str | None,
        bank: str | None,
        position_change_minor: int,
    ) -> ClearingTransfer:
        now = self._clock.now().isoformat()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "UPDATE clearing_transfers SET status = ?, reason = ?, updated_at = ? WHERE clearing_ref = ?",
                    (status.value, str(reason) if reason else "", now, item.clearing_ref),
                )
                if bank is not None:
                    self._conn.execute(
                        "INSERT INTO positions(bank, net_minor) VALUES (?, ?)"
                        " ON CONFLICT(bank) DO UPDATE SET net_minor = net_minor + excluded.net_minor",
                        (bank, position_change_minor),
                    )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        found = self.find(item.clearing_ref)
        assert found is not None
        return found

    def _record(
        self,
        clearing_ref: str,
        from_bank: str,
        from_acc: str,
        to_bank: str,
        to_acc: str,
        amount_minor: int,
        memo: str,
        to_name: str = "",
    ) -> None:
        existing = self.find(clearing_ref)
        if existing is not None:
            same = (existing.from_bank, existing.from_acc, existing.to_bank, existing.to_acc, existing.amount_minor)
            if same != (from_bank, from_acc, to_bank, to_acc, amount_minor):
                raise ClearingConflict(f"clearing ref {clearing_ref} already names a different transfer")
            return
        now = self._clock.now().isoformat()
        with self._lock:
            self._conn.execute(
                "INSERT INTO clearing_transfers(clearing_ref, from_bank, from_acc, to_bank, to_acc, amount_minor,"
                " status, memo, to_name, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    clearing_ref,
                    from_bank,
                    from_acc,
                    to_bank,
                    to_acc,
                    amount_minor,
                    ClearingStatus.RECEIVED.value,
                    memo,
                    to_name,
                    now,
                    now,
                ),
            )

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())


def _clearing(row: sqlite3.Row) -> ClearingTransfer:
    return ClearingTransfer(
        clearing_ref=row["clearing_ref"],
        from_bank=row["from_bank"],
        from_acc=row["from_acc"],
        to_bank=row["to_bank"],
        to_acc=row["to_acc"],
        amount_minor=row["amount_minor"],
        status=ClearingStatus(row["status"]),
        reason=row["reason"],
        to_name=row["to_name"],
    )
