"""Renders payments as CSV text in chunks, for the streamed export (``GET /v1/payments/export.csv``).

Rows are written as they arrive from the database and handed on in chunks of ``CHUNK_ROWS``, so the
response never holds more than one chunk. Amounts are integers of fen, as everywhere in the API;
times are ISO 8601 UTC. A text cell that a spreadsheet would run as a formula is defused.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from tianpay.domain.notifications import iso_utc
from tianpay.domain.payment import Payment

CHUNK_ROWS = 200
COLUMNS = (
    "id",
    "out_trade_no",
    "created_at",
    "status",
    "method",
    "bank",
    "amount",
    "currency",
    "fee_amount",
    "refunded_amount",
    "subject",
)
# A cell starting with one of these is a formula to Excel and LibreOffice (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render(payments: Iterable[Payment]) -> Iterator[str]:
    """The header line, then the payments' lines, in chunks of text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for written, payment in enumerate(payments, start=1):
        writer.writerow(_row(payment))
        if written % CHUNK_ROWS == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _row(payment: Payment) -> tuple[str | int, ...]:
    return (
        payment.id,
        payment.out_trade_no,
        iso_utc(payment.created_at),
        payment.status.value,
        payment.method.value,
        payment.bank or "",
        payment.amount.minor,
        payment.amount.currency.code,
        payment.fee_amount.minor,
        payment.refunded_amount.minor,
        _defused(payment.subject),
    )


def _defused(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate(0)
    return text
