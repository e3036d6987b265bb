"""BCB result codes → the platform's outcomes, in BCB's three classes (BANKS.md "BCB",
research/protocols.md §6): success ``0000``/``4000``; intermediate ``2000``/``2001``/``2003``/
``2005``/``2007``/``2008`` → PENDING (query, never resend); everything else FAILED — except the few
codes that say nothing about our debit (a duplicate ``REQ_SN`` means the first one was taken; a
bad signature or a malformed message means it was never processed)."""

from __future__ import annotations

from typing import Final

from tianpay.domain.money import Money
from tianpay.ports.channels import ChannelResult, Outcome

SUCCESS: Final = frozenset({"0000", "4000"})
INTERMEDIATE: Final = frozenset({"2000", "2001", "2003", "2005", "2007", "2008"})
# We never resend a REQ_SN, so 1102 can only mean an earlier send of this one was recorded: query.
UNCLEAR: Final = frozenset({"1102", ""})
# Refused before processing: nothing happened, and no query will ever find it.
NOT_PROCESSED: Final = frozenset({"1001", "1106", "3999"})
NO_SUCH_REQUEST: Final = "1002"


def outcome_of(code: str) -> Outcome:
    """Exhaustive by construction: the three classes, with unclear codes kept away from FAILED."""
    if code in SUCCESS:
        return Outcome.SUCCEEDED
    if code in INTERMEDIATE:
        return Outcome.PENDING
    if code in UNCLEAR:
        return Outcome.UNKNOWN
    if code in NOT_PROCESSED:
        return Outcome.NOT_SUBMITTED
    return Outcome.FAILED


def amount_of(fen: str) -> Money | None:
    """BCB amounts are integer fen (BANKS.md); anything else is no amount."""
    return Money.cny(int(fen)) if fen.isdigit() else None


def debit_result(code: str, message: str, bank_ref: str, amount_fen: str) -> ChannelResult:
    return ChannelResult(outcome_of(code), bank_reference=bank_ref, amount=amount_of(amount_fen),
                         bank_code=code or None, bank_message=message)


def query_result(info_code: str, detail_code: str, message: str, bank_ref: str, amount_fen: str) -> ChannelResult:
    """``1002`` (no such request) is UNKNOWN: only 30 minutes of it means never accepted (the
    gateway's absent-order rule decides that, via ORDER_NOT_FOUND_CODES)."""
    if info_code == NO_SUCH_REQUEST:
        return ChannelResult(Outcome.UNKNOWN, bank_code=NO_SUCH_REQUEST, bank_message=message)
    if info_code not in SUCCESS:
        return ChannelResult(Outcome.UNKNOWN, bank_code=info_code or None, bank_message=message)
    outcome = outcome_of(detail_code)
    # A query never proves "not submitted": it found the request, so the debit was processed.
    if outcome is Outcome.NOT_SUBMITTED:
        outcome = Outcome.FAILED
    return ChannelResult(outcome, bank_reference=bank_ref, amount=amount_of(amount_fen), bank_code=detail_code or None,
                         bank_message=message)


# Payouts (100001 items, 200004 on a batch). The payout port asks for UNKNOWN, not PENDING, for an
# intermediate code: either way the item is queried by its SN and never sent again.


def payout_outcome(code: str, *, queried: bool) -> Outcome:
    """An item's code in the three classes; a code seen by a query never means NOT_SUBMITTED (the
    request was found, so BCB processed it: its refusal is final)."""
    outcome = outcome_of(code)
    if outcome is Outcome.PENDING:
        return Outcome.UNKNOWN
    if outcome is Outcome.NOT_SUBMITTED and queried:
        return Outcome.FAILED
    return outcome


def payout_result(code: str, message: str, payout_id: str, amount_fen: str, *, queried: bool) -> ChannelResult:
    return ChannelResult(payout_outcome(code, queried=queried), bank_reference=payout_id, amount=amount_of(amount_fen),
                         bank_code=code or None, bank_message=message)


# Batch-level codes BCB answers before recording anything: the batch was never accepted (BCB
# documents 1103/1104 as "totals do not match the details", checked before any item is touched).
BATCH_NOT_RECORDED: Final = frozenset({"1001", "1103", "1104", "1106", "3999"})


def batch_outcome(code: str) -> Outcome:
    """What a batch-level RET_CODE says about an item the answer does not list."""
    if code in BATCH_NOT_RECORDED:
        return Outcome.NOT_SUBMITTED
    if code in SUCCESS or code in INTERMEDIATE or code in UNCLEAR:
        # Accepted (or maybe accepted) but silent about this item: only a query can tell.
        return Outcome.UNKNOWN
    return Outcome.FAILED
