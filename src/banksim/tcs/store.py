"""TCS's own records: onboarded acquirers with their zone keys, every 0200 it handled, PIN tries.

One SQLite file (`<data-dir>/banks/tcs/switch.sqlite`). TCS holds no money — card and reserve
balances live in the banks' books — but this table is its record of what it switched, from which
the batch totals and the POS clearing file are computed.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS acquirers (
    acquirer_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    zpk_hex TEXT NOT NULL,
    zak_hex TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
    txn_id INTEGER PRIMARY KEY AUTOINCREMENT,
    acquirer_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    business_date TEXT NOT NULL,
    stan TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    response_code TEXT NOT NULL,
    pan TEXT NOT NULL,
    issuer TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    rrn TEXT NOT NULL,
    auth_code TEXT NOT NULL,
    f7 TEXT NOT NULL,
    batch_no TEXT NOT NULL,
    orig_txn_id INTEGER,
    clear_date TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (acquirer_id, terminal_id, business_date, stan)
);
CREATE INDEX IF NOT EXISTS transactions_by_rrn ON transactions(acquirer_id, rrn);
CREATE TABLE IF NOT EXISTS pin_tries (
    pan TEXT NOT NULL,
    business_date TEXT NOT NULL,
    wrong INTEGER NOT NULL,
    PRIMARY KEY (pan, business_date)
);
CREATE TABLE IF NOT EXISTS settled_batches (
    acquirer_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    batch_no TEXT NOT NULL,
    settled_at TEXT NOT NULL,
    PRIMARY KEY (acquirer_id, terminal_id, merchant_id, batch_no)
);
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Acquirer:
    acquirer_id: str
    name: str
    zpk: bytes
    zak: bytes


@dataclass(frozen=True, slots=True)
class Txn:
    txn_id: int
    acquirer_id: str
    terminal_id: str
    merchant_id: str
    business_date: date
    stan: str
    kind: str
    status: str
    response_code: str
    pan: str
    issuer: str
    amount_minor: int
    rrn: str
    auth_code: str
    f7: str
    batch_no: str
    orig_txn_id: int | None
    clear_date: date
    created_at: str


@dataclass(frozen=True, slots=True)
class BatchTotals:
    purchase_count: int
    purchase_minor: int
    void_count: int
    void_minor: int

    def as_field(self) -> str:
        """The 36-digit F48 layout (docs/banks/tcs.md §5)."""
        return f"{self.purchase_count:06d}{self.purchase_minor:012d}{self.void_count:06d}{self.void_minor:012d}"


class SwitchStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            cursor = self._conn.execute(sql, params)
            return int(cursor.lastrowid or 0)

    def next_sequence(self, name: str) -> int:
        with self._lock:
            self._conn.execute(
                "INSERT INTO sequences(name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (name,),
            )
            return int(self._conn.execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()[0])

    # Acquirers

    def acquirer(self, acquirer_id: str | None) -> Acquirer | None:
        if not acquirer_id:
            return None
        rows = self._rows("SELECT * FROM acquirers WHERE acquirer_id = ?", (acquirer_id,))
        if not rows:
            return None
        row = rows[0]
        return Acquirer(row["acquirer_id"], row["name"], bytes.fromhex(row["zpk_hex"]), bytes.fromhex(row["zak_hex"]))

    def acquirers(self) -> list[Acquirer]:
        ids = [r["acquirer_id"] for r in self._rows("SELECT acquirer_id FROM acquirers ORDER BY acquirer_id")]
        return [a for a in (self.acquirer(i) for i in ids) if a is not None]

    def save_acquirer(self, acquirer: Acquirer, created_at: str) -> None:
        self._write(
            "INSERT INTO acquirers(acquirer_id, name, zpk_hex, zak_hex, created_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT(acquirer_id) DO UPDATE SET name = excluded.name, zpk_hex = excluded.zpk_hex,"
            " zak_hex = excluded.zak_hex",
            (acquirer.acquirer_id, acquirer.name, acquirer.zpk.hex().upper(), acquirer.zak.hex().upper(), created_at),
        )

    # Transactions

    def find(self, acquirer_id: str, terminal_id: str, business_date: date, stan: str) -> Txn | None:
        rows = self._rows(
            "SELECT * FROM transactions WHERE acquirer_id = ? AND terminal_id = ? AND business_date = ? AND stan = ?",
            (acquirer_id, terminal_id, business_date.isoformat(), stan),
        )
        return _txn(rows[0]) if rows else None

    def find_by_rrn(self, acquirer_id: str, rrn: str) -> Txn | None:
        rows = self._rows("SELECT * FROM transactions WHERE acquirer_id = ? AND rrn = ?", (acquirer_id, rrn))
        return _txn(rows[0]) if rows else None

    def get(self, txn_id: int) -> Txn:
        return _txn(self._rows("SELECT * FROM transactions WHERE txn_id = ?", (txn_id,))[0])

    def record(self, txn: Txn) -> Txn:
        txn_id = self._write(
            "INSERT INTO transactions(acquirer_id, terminal_id, merchant_id, business_date, stan, kind, status,"
            " response_code, pan, issuer, amount_minor, rrn, auth_code, f7, batch_no, orig_txn_id, clear_date,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                txn.acquirer_id,
                txn.terminal_id,
                txn.merchant_id,
                txn.business_date.isoformat(),
                txn.stan,
                txn.kind,
                txn.status,
                txn.response_code,
                txn.pan,
                txn.issuer,
                txn.amount_minor,
                txn.rrn,
                txn.auth_code,
                txn.f7,
                txn.batch_no,
                txn.orig_txn_id,
                txn.clear_date.isoformat(),
                txn.created_at,
            ),
        )
        return self.get(txn_id)

    def set_status(self, txn_id: int, status: str) -> None:
        self._write("UPDATE transactions SET status = ? WHERE txn_id = ?", (status, txn_id))

    def transactions(self, limit: int = 200) -> list[Txn]:
        return [_txn(r) for r in self._rows("SELECT * FROM transactions ORDER BY txn_id DESC LIMIT ?", (limit,))]

    def cleared(self, clear_date: date, acquirer_id: str | None) -> list[Txn]:
        """Approved purchases and voids (reversed ones excluded) that clear on `clear_date`."""
        rows = self._rows(
            "SELECT * FROM transactions WHERE clear_date = ? AND kind IN ('purchase', 'void')"
            " AND status IN ('approved', 'voided') AND (? IS NULL OR acquirer_id = ?) ORDER BY txn_id",
            (clear_date.isoformat(), acquirer_id, acquirer_id),
        )
        return [_txn(r) for r in rows]

    def batch_totals(self, acquirer_id: str, terminal_id: str, merchant_id: str, batch_no: str) -> BatchTotals:
        rows = self._rows(
            "SELECT kind, COUNT(*) AS n, COALESCE(SUM(amount_minor), 0) AS total FROM transactions"
            " WHERE acquirer_id = ? AND terminal_id = ? AND merchant_id = ? AND batch_no = ?"
            " AND kind IN ('purchase', 'void') AND status IN ('approved', 'voided') GROUP BY kind",
            (acquirer_id, terminal_id, merchant_id, batch_no),
        )
        by_kind = {r["kind"]: (int(r["n"]), int(r["total"])) for r in rows}
        purchases, voids = by_kind.get("purchase", (0, 0)), by_kind.get("void", (0, 0))
        return BatchTotals(purchases[0], purchases[1], voids[0], voids[1])

    def settle_batch(self, acquirer_id: str, terminal_id: str, merchant_id: str, batch_no: str, at: str) -> None:
        self._write(
            "INSERT OR IGNORE INTO settled_batches(acquirer_id, terminal_id, merchant_id, batch_no, settled_at)"
            " VALUES (?,?,?,?,?)",
            (acquirer_id, terminal_id, merchant_id, batch_no, at),
        )

    # PIN tries (kept per card per business day; the issuer's rule, enforced at the switch)

    def wrong_pins(self, pan: str, business_date: date) -> int:
        rows = self._rows(
            "SELECT wrong FROM pin_tries WHERE pan = ? AND business_date = ?", (pan, business_date.isoformat())
        )
        return int(rows[0]["wrong"]) if rows else 0

    def count_wrong_pin(self, pan: str, business_date: date) -> int:
        self._write(
            "INSERT INTO pin_tries(pan, business_date, wrong) VALUES (?, ?, 1)"
            " ON CONFLICT(pan, business_date) DO UPDATE SET wrong = wrong + 1",
            (pan, business_date.isoformat()),
        )
        return self.wrong_pins(pan, business_date)

    def clear_wrong_pins(self, pan: str, business_date: date) -> None:
        self._write("DELETE FROM pin_tries WHERE pan = ? AND business_date = ?", (pan, business_date.isoformat()))


def _txn(row: sqlite3.Row) -> Txn:
    return Txn(
        txn_id=row["txn_id"],
        acquirer_id=row["acquirer_id"],
        terminal_id=row["terminal_id"],
        merchant_id=row["merchant_id"],
        business_date=date.fromisoformat(row["business_date"]),
        stan=row["stan"],
        kind=row["kind"],
        status=row["status"],
        response_code=row["response_code"],
        pan=row["pan"],
        issuer=row["issuer"],
        amount_minor=row["amount_minor"],
        rrn=row["rrn"],
        auth_code=row["auth_code"],
        f7=row["f7"],
        batch_no=row["batch_no"],
        orig_txn_id=row["orig_txn_id"],
        clear_date=date.fromisoformat(row["clear_date"]),
        created_at=row["created_at"],
    )
