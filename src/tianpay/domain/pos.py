"""POS acquiring: terminals, the terminal's transactions, and batch totals (BANKS.md TCS).

A POS transaction is identified the way the terminal identifies it: (tid, batch number, STAN).
A reversal (0400) carries the original's STAN, so it is a state of the original, not a new row.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final


class PosKind(enum.StrEnum):
    PURCHASE = "purchase"
    VOID = "void"
    BALANCE = "balance"


class PosStatus(enum.StrEnum):
    # Sent to the switch, no answer yet (or none ever: a reversal is then owed).
    SUBMITTED = "submitted"
    APPROVED = "approved"
    DECLINED = "declined"
    # The purchase was voided the same day by a later void transaction.
    VOIDED = "voided"
    REVERSED = "reversed"


class ReversalStatus(enum.StrEnum):
    NONE = "none"
    # The switch has not yet acknowledged our 0400 (the worker keeps sending it).
    PENDING = "pending"
    DONE = "done"


class TerminalStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


PROCESSING_PURCHASE: Final = "000000"
PROCESSING_VOID: Final = "200000"
PROCESSING_BALANCE: Final = "310000"
TYPE_BALANCE: Final = "01"
TYPE_PURCHASE: Final = "22"
TYPE_VOID: Final = "23"


@dataclass(frozen=True, slots=True)
class Terminal:
    tid: str
    mid: str
    merchant_id: str
    batch_no: int
    status: TerminalStatus
    created_at: datetime
    signed_on_at: datetime | None = None

    def __post_init__(self) -> None:
        if len(self.tid) != 8 or len(self.mid) != 15:
            raise ValueError("a TID is 8 characters and a MID 15")


@dataclass(frozen=True, slots=True)
class PosTransaction:
    id: str
    tid: str
    batch_no: int
    stan: str
    kind: PosKind
    amount_minor: int
    card_masked: str
    status: PosStatus
    switch_stan: str
    transmitted_at: str
    created_at: datetime
    response_code: str | None = None
    rrn: str | None = None
    auth_code: str | None = None
    original_stan: str | None = None
    payment_id: str | None = None
    bank: str | None = None
    reversal_status: ReversalStatus = ReversalStatus.NONE
    reversal_tries: int = 0


@dataclass(frozen=True, slots=True)
class BatchTotals:
    """Counts and amounts of one batch: debits are purchases, credits are voids (CUP 0500 F48)."""

    debit_count: int
    debit_amount_minor: int
    credit_count: int
    credit_amount_minor: int

    def to_field(self) -> str:
        return (
            f"{self.debit_amount_minor:012d}{self.debit_count:03d}"
            f"{self.credit_amount_minor:012d}{self.credit_count:03d}"
        )

    @classmethod
    def from_field(cls, value: str) -> BatchTotals:
        if len(value) < 30 or not value[:30].isdigit():
            raise ValueError("batch totals are 30 digits")
        return cls(int(value[12:15]), int(value[0:12]), int(value[27:30]), int(value[15:27]))


def batch_totals(transactions: Iterable[PosTransaction]) -> BatchTotals:
    """What the platform recorded for a batch: a voided purchase still counts, and so does its void.

    This follows CUP practice: the terminal counts a sale and its void separately, so the host must
    too; reversed and declined transactions count nowhere.
    """
    debit_count = debit_amount = credit_count = credit_amount = 0
    for txn in transactions:
        if txn.kind is PosKind.PURCHASE and txn.status in (PosStatus.APPROVED, PosStatus.VOIDED):
            debit_count += 1
            debit_amount += txn.amount_minor
        elif txn.kind is PosKind.VOID and txn.status is PosStatus.APPROVED:
            credit_count += 1
            credit_amount += txn.amount_minor
    return BatchTotals(debit_count, debit_amount, credit_count, credit_amount)


def mask_pan(pan: str) -> str:
    """621799******0014: the first 6 and last 4 digits, as receipts and logs show a card."""
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
