"""The idempotency port: first responses to merchant writes, stored under the merchant's own key.

A record is claimed and completed inside the unit of work that creates the resource, so the
resource and its stored response are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The first answer to a write: which request it was (by hash) and what was returned."""

    merchant_id: str
    scope: str
    key: str
    request_hash: str
    status_code: int
    response_body: str


class IdempotencyRepository(Protocol):
    def get(self, merchant_id: str, scope: str, key: str) -> IdempotencyRecord | None:
        """The committed record for the key, or None."""
        ...

    def claim(self, merchant_id: str, scope: str, key: str, request_hash: str) -> bool:
        """Inserts a placeholder for the key; False when another transaction already holds it.

        On PostgreSQL a concurrent claim of the same key waits for the first transaction to end, so
        once this returns False, ``get`` sees the winner's committed record.
        """
        ...

    def complete(self, merchant_id: str, scope: str, key: str, status_code: int, response_body: str) -> None:
        """Stores the response in the placeholder this unit of work claimed."""
        ...
