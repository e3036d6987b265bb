"""Merchant API route for statistics: ``GET /v1/statistics``, the merchant's daily aggregates.

The figures come from ``daily_payment_stats`` (kept current by the worker's aggregation job), read
from the replica when one is configured; a page view never scans payments. Days are Asia/Shanghai
business dates; amounts are integers of fen; success rates are in basis points (9,512 = 95.12 %).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tianpay.domain.payment import PaymentMethod
from tianpay.domain.statistics import DailyStats, Totals, business_date_of, success_rate_bps
from tianpay.services import statistics

from .deps import AuthenticatedMerchant, ContainerDep
from .query_dates import IsoDate

router = APIRouter(prefix="/v1", tags=["statistics"])


class FiguresOut(BaseModel):
    payment_count: int = Field(description="Payments created (whatever became of them).")
    succeeded_count: int
    success_rate_bps: int | None = Field(description="succeeded / created in basis points; null when none.")
    volume: int = Field(description="Sum of the succeeded payments' amounts, in fen.")
    fee_amount: int = Field(description="The platform's fees on them, in fen.")
    refund_count: int = Field(description="Refunds that succeeded on the day.")
    refunded_amount: int
    fee_returned_amount: int = Field(description="Fees given back with those refunds.")
    net_amount: int = Field(description="volume − fee_amount − refunded_amount + fee_returned_amount.")


class DayOut(FiguresOut):
    date: date


class MethodOut(FiguresOut):
    method: str


class BankOut(FiguresOut):
    bank: str = Field(description='The bank that took the money ("" for payments that reached none).')


class RowOut(FiguresOut):
    date: date
    method: str
    bank: str
    currency: str


class StatisticsOut(BaseModel):
    object: Literal["statistics"] = "statistics"
    merchant_id: str
    date_from: date
    date_to: date
    timezone: Literal["Asia/Shanghai"] = "Asia/Shanghai"
    totals: FiguresOut
    days: list[DayOut] = Field(description="Every day of the range, oldest first, zeros included.")
    by_method: list[MethodOut]
    by_bank: list[BankOut]
    data: list[RowOut] = Field(description="The stored aggregates: one per date, method, bank and currency.")


@router.get("/statistics", response_model=StatisticsOut, summary="Daily payment statistics of a date range")
def get_statistics(
    merchant: AuthenticatedMerchant,
    container: ContainerDep,
    date_from: Annotated[
        IsoDate | None, Query(description="First business date, YYYY-MM-DD (default: 29 days earlier).")
    ] = None,
    date_to: Annotated[
        IsoDate | None, Query(description="Last business date, YYYY-MM-DD, included (default: today).")
    ] = None,
    method: Annotated[PaymentMethod | None, Query()] = None,
    bank: Annotated[str | None, Query(max_length=10)] = None,
) -> StatisticsOut:
    today = business_date_of(container.clock.now())
    first, last = statistics.date_range(date_from, date_to, today)
    found = statistics.merchant_statistics(
        container.read_uow, merchant.merchant_id, first, last,
        method=None if method is None else method.value, bank=bank,
    )
    return StatisticsOut(
        merchant_id=merchant.merchant_id,
        date_from=first,
        date_to=last,
        totals=FiguresOut.model_validate(_figures(found.totals)),
        days=[DayOut.model_validate({"date": day, **_figures(totals)}) for day, totals in found.by_day().items()],
        by_method=[MethodOut.model_validate({"method": k, **_figures(v)}) for k, v in found.by_method().items()],
        by_bank=[BankOut.model_validate({"bank": k, **_figures(v)}) for k, v in found.by_bank().items()],
        data=[_row(row) for row in found.rows],
    )


def _figures(totals: Totals | DailyStats) -> dict[str, object]:
    return {
        "payment_count": totals.payment_count,
        "succeeded_count": totals.succeeded_count,
        "success_rate_bps": success_rate_bps(totals.succeeded_count, totals.payment_count),
        "volume": totals.succeeded_minor,
        "fee_amount": totals.fee_minor,
        "refund_count": totals.refund_count,
        "refunded_amount": totals.refunded_minor,
        "fee_returned_amount": totals.fee_returned_minor,
        "net_amount": totals.net_minor,
    }


def _row(row: DailyStats) -> RowOut:
    key = row.key
    return RowOut.model_validate(
        {"date": key.business_date, "method": key.method, "bank": key.bank, "currency": key.currency, **_figures(row)}
    )
