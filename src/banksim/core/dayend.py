"""Day end: a bank closes a statement date by taking its charges from the platform's reserve.

Every simulated bank charges the platform per item and books the charges when the statement for
date D is first produced, after D is over in the bank's own clock (docs/clearing.md). The charges
are ordinary transfers (reserve → the bank's income account, statement date D) whose reference
derives from the charged item's, so closing a day again books nothing new and a statement rendered
twice is the same file. Each bank decides *what* it charges; this module only books and reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from banksim.core.books import Books, Transfer
from banksim.core.clock import SimClock

# The kind and the reference prefix of a day-end fee transfer; the rest of the reference is the
# charged item's own bank_ref, so `FEE<item_ref>` can be booked only once per item.
FEE_KIND = "day_end_fee"
FEE_REF_PREFIX = "FEE"


def day_is_over(clock: SimClock, statement_date: date) -> bool:
    """Whether `statement_date` has ended in the bank's (Asia/Shanghai) clock, so it may be closed."""
    return clock.business_date() > statement_date


def fee_ref(item_ref: str) -> str:
    """The bank_ref of the day-end fee transfer for one charged item."""
    return FEE_REF_PREFIX + item_ref


def bps_fee_minor(amount_minor: int, bps: int) -> int:
    """A charge of `bps` basis points of `amount_minor`, rounded half up, at least 1 fen."""
    return max(1, (amount_minor * bps + 5_000) // 10_000)


def close_day(
    books: Books,
    *,
    reserve_acc: str,
    income_acc: str,
    statement_date: date,
    charges: Iterable[tuple[str, int]],
    at: datetime,
) -> list[Transfer]:
    """Book one fee transfer per (item_ref, fee_minor) with statement date D; safe to run again.

    A zero charge books nothing (a transfer moves a positive amount). Raises `Declined` if the
    reserve cannot pay, which the world's opening balance makes a configuration error, not a case.
    """
    booked = []
    for item_ref, fee_minor in charges:
        if fee_minor <= 0:
            continue
        booked.append(
            books.transfer(
                bank_ref=fee_ref(item_ref),
                kind=FEE_KIND,
                debit_acc=reserve_acc,
                credit_acc=income_acc,
                amount_minor=fee_minor,
                at=at,
                statement_date=statement_date,
                memo=item_ref,
            )
        )
    return booked


def charged_fees(books: Books, statement_date: date) -> dict[str, int]:
    """The day-end charges booked for `statement_date`, by the charged item's bank_ref."""
    rows = books.query(
        "SELECT memo, amount_minor FROM transfers WHERE kind = ? AND statement_date = ?",
        (FEE_KIND, statement_date.isoformat()),
    )
    return {str(row["memo"]): int(row["amount_minor"]) for row in rows}
