"""The statement port: a bank's daily statement (对账单) as the platform downloads and reads it.

Each bank writes its statement in its own dialect (HBB fixed-width, JHB backtick CSV, BCB GBK CSV,
TCS's clearing file); each channel adapter downloads the raw file to disk unchanged (the platform
keeps it and its hash) and parses it *streaming* into `StatementLine`s, one normalised line per
movement on the platform's reserve account, so a million-line file never sits in memory.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Protocol


class StatementItemKind(enum.StrEnum):
    """What a statement line is, from the reserve account's point of view."""

    COLLECTION = "collection"  # money in from a payer: a payment, top-up, direct debit or POS purchase
    REFUND = "refund"  # money back to a payer (a refund, or a POS void)
    PAYOUT = "payout"  # money out to a payee (代付)
    PAYOUT_RETURN = "payout_return"  # a payout that bounced (退票) coming back
    FEE = "fee"  # a charge the bank took that is not attached to one item
    OTHER = "other"  # anything else the bank booked (the platform cannot attribute it: an exception)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One normalised statement line.

    ``amount_minor`` is signed as the reserve moved (money in > 0, money out < 0) and excludes the
    bank's charge; ``fee_minor`` (≥ 0) is what the bank charged the platform for this item, taken
    from the reserve as well, so the reserve moved by ``amount_minor - fee_minor`` in all. A FEE line
    has ``amount_minor < 0`` and ``fee_minor == 0``.

    ``platform_ref`` is the platform id the bank order was made from (``att_…``, ``rfd_…``,
    ``pyo_…``), recovered by the adapter from the bank's order number, or None when the bank order
    was not the platform's (a card-switch settlement line, a bank charge). ``switch_ref`` is the card
    switch's reference (TCS RRN) for POS money.
    """

    bank: str
    statement_date: date
    line_no: int
    kind: StatementItemKind
    bank_ref: str
    amount_minor: int
    fee_minor: int = 0
    platform_ref: str | None = None
    switch_ref: str | None = None
    occurred_at: datetime | None = None
    # For POS money: the switch reference of the item this line undoes (a void's purchase RRN in
    # TCS's clearing file; the reversed item's RRN on a reversal line of HBB's statement).
    original_ref: str | None = None

    @property
    def net_minor(self) -> int:
        """How much this line moved the reserve account in all."""
        return self.amount_minor - self.fee_minor


@dataclass(frozen=True, slots=True)
class StatementTotals:
    """The totals a statement declares about itself (its trailer or summary block), for checking."""

    count: int
    amount_minor: int
    fee_minor: int


@dataclass(frozen=True, slots=True)
class DownloadedStatement:
    """A raw statement file on disk, exactly as the bank's answer carried it (decoded from transport only)."""

    bank: str
    statement_date: date
    path: Path
    file_name: str


class StatementNotReady(Exception):
    """The bank has not published the statement for that date yet (the day is not over, or not cut)."""


class StatementUnavailable(Exception):
    """The download failed (timeout, 5xx, bad signature): try again later; nothing was learned."""


class StatementMalformed(Exception):
    """The file does not parse, or its lines do not add up to its own totals; it must not be used."""


class StatementChannel(Protocol):
    """A bank's statement interface."""

    code: str

    def download_statement(self, statement_date: date, into: Path) -> DownloadedStatement:
        """Fetch the statement for ``statement_date`` and write the raw file to ``into`` (a file path).

        Raises StatementNotReady or StatementUnavailable. Streams to disk where the transport allows.
        """
        ...

    def read_statement(self, path: Path, statement_date: date) -> Iterator[StatementLine]:
        """Parse a raw file line by line. Raises StatementMalformed (also when, at the end, the lines
        do not add up to the file's own totals: a consumer must not commit before the iterator ends)."""
        ...


class StatementDirectory(Protocol):
    def statements(self, bank: str) -> StatementChannel:
        """The bank's statement channel; raises NotFound for a bank that sends none."""
        ...

    def statement_banks(self) -> list[str]: ...
