"""Merchant API routes for settlements (结算) and the daily CSV statement.

``GET /v1/settlements`` lists a merchant's settlements newest first (date range, cursor, limit);
``GET /v1/settlements/{id}`` shows one with its totals; ``GET /v1/statements/{date}`` is the CSV
statement of a settled business date: one row per line and a totals row. The CSV of one day is
small, so it is buffered and signed like every other response.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from tianpay.domain.settlement import SHANGHAI, Settlement
from tianpay.services import settlement as settlements
from tianpay.services.settlement import InvalidSettlementQuery, Statement

from .deps import AuthenticatedMerchant, ContainerDep
from .query_dates import parse_iso_date

router = APIRouter(prefix="/v1", tags=["settlements"])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
CSV_COLUMNS = ("row", "kind", "id", "reference", "time", "gross", "refunds", "fees", "net")


class SettlementOut(BaseModel):
    id: str
    object: Literal["settlement"] = "settlement"
    merchant_id: str
    business_date: str = Field(description="The Asia/Shanghai business date settled (YYYY-MM-DD).")
    status: Literal["carried", "settled", "paid", "payout_failed"] = Field(
        description="carried: a negative net waits for a later date; settled: moved to available; paid: paid out; "
        "payout_failed: its payout failed or bounced, the money is back in available and it will be paid again."
    )
    currency: str
    line_count: int
    gross: int = Field(description="Payments collected (fen).")
    refunds: int = Field(description="Refunds, voids and other money returned (fen).")
    fees: int = Field(description="Fees charged less fees returned (fen).")
    net: int = Field(description="gross − refunds − fees: what moved to your available balance (fen).")
    payout_id: str | None
    created_at: str
    settled_at: str | None
    paid_at: str | None


class SettlementListOut(BaseModel):
    object: Literal["list"] = "list"
    url: str = "/v1/settlements"
    data: list[SettlementOut]
    has_more: bool


@router.get("/settlements", response_model=SettlementListOut, summary="List settlements, newest business date first")
def list_settlements(
    merchant: AuthenticatedMerchant,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=settlements.MAX_PAGE_LIMIT)] = 10,
    starting_after: Annotated[str | None, Query(description="A settlement id: the page after it.")] = None,
    date_from: Annotated[str | None, Query(alias="from", description="First business date (YYYY-MM-DD).")] = None,
    date_to: Annotated[str | None, Query(alias="to", description="Last business date (YYYY-MM-DD).")] = None,
) -> SettlementListOut:
    page = settlements.list_settlements(
        container.uow,
        merchant.merchant_id,
        date_from=_date(date_from, "from"),
        date_to=_date(date_to, "to"),
        starting_after=starting_after,
        limit=limit,
    )
    return SettlementListOut(data=[settlement_out(found) for found in page.settlements], has_more=page.has_more)


@router.get("/settlements/{settlement_id}", response_model=SettlementOut, summary="Retrieve a settlement")
def get_settlement(settlement_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> SettlementOut:
    return settlement_out(settlements.get_settlement(container.uow, merchant.merchant_id, settlement_id))


@router.get(
    "/statements/{business_date}",
    summary="Download the CSV statement of a settled business date",
    response_class=Response,
    responses={200: {"content": {CSV_MEDIA_TYPE: {}}, "description": "One row per line, then a totals row."}},
)
def get_statement(business_date: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> Response:
    day = _date(business_date, "date")
    assert day is not None
    statement = settlements.statement_of(container.uow, merchant.merchant_id, day)
    filename = f"statement-{day.isoformat()}.csv"
    return Response(
        statement_csv(statement).encode("utf-8"),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def statement_csv(statement: Statement) -> str:
    """The statement as CSV: the line rows sum, column by column, to the totals row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in statement.lines:
        gross = max(line.amount_minor, 0)
        refunds = max(-line.amount_minor, 0)
        writer.writerow(
            (
                "line",
                line.kind.value,
                line.source_id,
                _cell(line.reference),
                line.occurred_at.astimezone(SHANGHAI).isoformat(timespec="seconds"),
                gross,
                refunds,
                line.fee_minor,
                line.net_minor,
            )
        )
    found = statement.settlement
    totals = found.totals
    writer.writerow(
        ("totals", found.status.value, found.id, "", found.business_date.isoformat(),
         totals.gross_minor, totals.refunds_minor, totals.fees_minor, totals.net_minor)
    )  # fmt: skip
    return buffer.getvalue()


def _cell(value: str | None) -> str:
    # A spreadsheet runs a cell that starts with = + - or @ as a formula; merchants' own numbers are
    # restricted to letters, digits, _ and -, and the quote keeps a leading - from ever being one.
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@" else value


def settlement_out(found: Settlement) -> SettlementOut:
    return SettlementOut.model_validate(settlements.settlement_view(found))


def _date(raw: str | None, param: str) -> date | None:
    if raw is None:
        return None
    # Only YYYY-MM-DD: date.fromisoformat would also take 20261127 and week dates (query_dates.py).
    day = parse_iso_date(raw)
    if day is None:
        raise InvalidSettlementQuery(f"{param} is a date as YYYY-MM-DD", param=param)
    return day
