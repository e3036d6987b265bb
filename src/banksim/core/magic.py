"""The magic-amount table every simulated bank and every interface honours (BANKS.md).

The last two digits of an amount in fen pick a deterministic behaviour, so tests and demos can
force declines, unknown outcomes, lost answers and odd notifications without touching the
bank. Each dialect maps a `Magic` to its own codes; the timing knobs live here so all banks agree.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from enum import Enum


class Magic(Enum):
    NONE = "none"
    INSUFFICIENT_FUNDS = "51"
    OVER_LIMIT = "61"
    REFUSED = "91"
    SLOW_SUCCESS = "94"
    LOST_ANSWER_PROCESSED = "96"
    LOST_ANSWER_UNPROCESSED = "97"
    NO_NOTIFICATION = "98"
    DOUBLE_NOTIFICATION = "99"
    LATE_STATEMENT = "93"


_BY_SUFFIX: dict[int, Magic] = {int(m.value): m for m in Magic if m is not Magic.NONE}

# A 94 amount answers "processing" to this many queries and succeeds on the next one.
QUERIES_BEFORE_SUCCESS = 2


def magic_for(amount_minor: int) -> Magic:
    return _BY_SUFFIX.get(abs(amount_minor) % 100, Magic.NONE)


def is_declined(magic: Magic) -> bool:
    """Magic amounts that end as a confirmed failure before any money moves."""
    return magic in (Magic.INSUFFICIENT_FUNDS, Magic.OVER_LIMIT, Magic.REFUSED)


def moves_money(magic: Magic) -> bool:
    """Whether the bank books the money when it receives the request (94 books it later)."""
    return magic not in (
        Magic.INSUFFICIENT_FUNDS,
        Magic.OVER_LIMIT,
        Magic.REFUSED,
        Magic.LOST_ANSWER_UNPROCESSED,
        Magic.SLOW_SUCCESS,
    )


def withholds_answer(magic: Magic) -> bool:
    """96 and 97: the synchronous answer never reaches the client."""
    return magic in (Magic.LOST_ANSWER_PROCESSED, Magic.LOST_ANSWER_UNPROCESSED)


def statement_date_for(magic: Magic, business_date: date) -> date:
    """93 is processed today but booked on the next day's statement (a day-cut difference)."""
    if magic is Magic.LATE_STATEMENT:
        return business_date + timedelta(days=1)
    return business_date


async def withhold_answer(hang_s: float) -> None:
    """Hold the request far longer than any sane client timeout (`hang_s`, configurable).

    The caller then answers 504 with an empty body; a client that waited that long must still
    treat the outcome as unknown.
    """
    await asyncio.sleep(hang_s)
