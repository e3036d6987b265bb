"""The bank's register of onboarded partners (the platform) and the keys they sign with.

Onboarding is out of band at a real bank; the simulator takes it at `POST /_sim/partners`
(docs/banks/onboarding.md). How a key is named (`key_id`) is the dialect's business; this
register only keeps keys idempotently and finds them again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from banksim.core.books import Books
from banksim.core.clock import SimClock


class PartnerConflict(Exception):
    """The key is already registered to another partner."""


@dataclass(frozen=True, slots=True)
class PartnerKey:
    key_id: str
    partner_id: str
    public_key_pem: str
    certificate_pem: str | None


class Partners:
    def __init__(self, books: Books, clock: SimClock) -> None:
        self._books = books
        self._clock = clock

    def register(
        self,
        *,
        partner_id: str | None,
        key: PartnerKey,
        name: str,
        assign_id: Callable[[int], str],
    ) -> str:
        """Register `key` for `partner_id` (or a bank-assigned id); idempotent.

        Registering the same key again returns the same partner. A new key for an existing
        partner is added alongside the old ones, which is how a partner rotates keys.
        """
        existing = self.key(key.key_id)
        if existing is not None:
            if partner_id is not None and partner_id != existing.partner_id:
                raise PartnerConflict(f"key {key.key_id} belongs to partner {existing.partner_id}")
            return existing.partner_id
        now = self._clock.now().isoformat()
        with self._books.tx() as conn:
            if partner_id is None:
                partner_id = _free_id(conn, assign_id)
            conn.execute(
                "INSERT OR IGNORE INTO partners(partner_id, name, created_at) VALUES (?, ?, ?)",
                (partner_id, name, now),
            )
            conn.execute(
                "INSERT INTO partner_keys(key_id, partner_id, public_key_pem, certificate_pem, created_at)"
                " VALUES (?,?,?,?,?)",
                (key.key_id, partner_id, key.public_key_pem, key.certificate_pem, now),
            )
        return partner_id

    def key(self, key_id: str) -> PartnerKey | None:
        rows = self._books.query("SELECT * FROM partner_keys WHERE key_id = ?", (key_id,))
        if not rows:
            return None
        row = rows[0]
        return PartnerKey(row["key_id"], row["partner_id"], row["public_key_pem"], row["certificate_pem"])

    def key_of(self, partner_id: str, key_id: str) -> PartnerKey | None:
        found = self.key(key_id)
        return found if found is not None and found.partner_id == partner_id else None

    def name(self, partner_id: str) -> str | None:
        rows = self._books.query("SELECT name FROM partners WHERE partner_id = ?", (partner_id,))
        return str(rows[0]["name"]) if rows else None

    def exists(self, partner_id: str) -> bool:
        return self.name(partner_id) is not None


def _free_id(conn: sqlite3.Connection, assign_id: Callable[[int], str]) -> str:
    """The first bank-assigned id not yet taken (partners may also choose their own ids)."""
    number = int(conn.execute("SELECT COUNT(*) FROM partners").fetchone()[0]) + 1
    while conn.execute("SELECT 1 FROM partners WHERE partner_id = ?", (assign_id(number),)).fetchone():
        number += 1
    return assign_id(number)
