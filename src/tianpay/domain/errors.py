"""The domain's error tree: every rule the domain refuses has a named error with a stable code.

Entry points map these to their own envelopes (the merchant API's ``{"error": …}``); the domain never
knows about HTTP.
"""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused an operation. ``code`` is stable and documented for merchants."""

    code = "domain_error"
    kind = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class NotFound(DomainError):
    code = "resource_missing"


class Conflict(DomainError):
    code = "conflict"


class IllegalTransition(DomainError):
    """A lifecycle was asked to take a step its transition table does not allow."""

    code = "illegal_state_transition"


class UnbalancedEntry(DomainError):
    """A journal entry whose postings do not sum to zero per currency."""

    code = "unbalanced_entry"
    kind = "api_error"


class InsufficientBalance(DomainError):
    code = "insufficient_balance"


class IdempotencyConflict(Conflict):
    """The merchant reused an idempotency key (``out_trade_no`` …) with a different request body."""

    code = "idempotency_conflict"
    kind = "idempotency_error"


class IdempotencyRecordExpired(IdempotencyConflict):
    """The key already names a resource whose stored first answer housekeeping has since deleted.

    Without the stored request there is no telling a repeat from a changed request, so the request is
    neither replayed nor carried out; the message names the resource for the merchant to read instead.
    """

    code = "idempotency_record_expired"
