"""The replay port: fingerprints of request signatures (and nonces) already accepted.

A fingerprint is remembered until the signature could no longer pass the freshness check anyway,
after which it may be purged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol


class ReplayRepository(Protocol):
    def remember(self, fingerprints: Sequence[str], expires_at: datetime) -> bool:
        """Inserts every fingerprint; False when any was already there.

        The insert itself is the check (a primary key), so two concurrent replays cannot both pass.
        After False the other fingerprints of the call may be inserted in the transaction: the caller
        must roll the unit of work back, never commit it (services/authentication.py does).
        """
        ...

    def purge_expired(self, now: datetime, limit: int) -> int:
        """Deletes up to ``limit`` fingerprints that expired before ``now``; returns how many."""
        ...
