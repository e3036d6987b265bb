"""The channel port: what services ask of a bank, and the one outcome vocabulary every bank maps to.

Only an explicit, verified bank answer is final: a timeout, a 5xx or a bad signature is UNKNOWN and
is resolved by querying, never by submitting again (DESIGN.md §7).
"""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"
    UNKNOWN = "unknown"
    NOT_SUBMITTED = "not_submitted"

    @property
    def is_final(self) -> bool:
        return self in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.NOT_SUBMITTED)

    @property
    def allows_failover(self) -> bool:
        """Another channel may be tried only when this one certainly moved no money."""
        return self in (Outcome.FAILED, Outcome.NOT_SUBMITTED)
