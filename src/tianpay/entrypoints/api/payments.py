"""Merchant API routes for payments: create (idempotent by out_trade_no), list, export, retrieve, close.

Routes translate JSON to the services' values and back; every rule lives in the domain and the
services. A repeated create answers with the first payment as it is now, marked by the
``Idempotent-Replayed`` header; a changed body under the same out_trade_no is a 409.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, StrictStr

from tianpay.domain.money import Currency, Money
from tianpay.domain.notifications import iso_utc
from tianpay.domain.payment import (
    AttemptStatus,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    PaymentRequest,
    PaymentStatus,
)
from tianpay.ports.payments import PaymentFilter
from tianpay.services import payments, statistics

from . import csv_export
from .deps import IDEMPOTENT_REPLAYED_HEADER, AuthenticatedMerchant, ContainerDep
from .query_dates import IsoDateTime
from .schemas import AmountMinor, CurrencyCode, RequestModel
from .signing import STREAMED_RESPONSE_HEADER

router = APIRouter(prefix="/v1", tags=["payments"])

# POS payments are created by the POS front from a terminal, never through this API.
ApiPaymentMethod = Literal["cashier", "online_banking", "quick_pay", "wallet", "direct_debit"]


class PaymentCreateIn(RequestModel):
    out_trade_no: StrictStr = Field(
        description="Your order number: 1–64 of A–Z a–z 0–9 _ -, unique per merchant; the idempotency key.",
        examples=["20261127-0001"],
    )
    amount: AmountMinor
    currency: CurrencyCode
    method: ApiPaymentMethod = Field(
        description="cashier (the payer chooses on the hosted page), online_banking (needs bank), quick_pay, "
        "wallet or direct_debit."
    )
    bank: StrictStr | None = Field(default=None, description="The bank code (HBB, JHB …) for online_banking.")
    subject: StrictStr = Field(description="What is bought, shown to the payer: 1–128 characters.")
    description: StrictStr | None = Field(default=None, description="Up to 512 characters.")
    notify_url: StrictStr | None = Field(default=None, description="An http(s) URL.")
    return_url: StrictStr | None = Field(
        default=None, description="An http(s) URL the cashier sends the payer back to."
    )
    metadata: dict[StrictStr, StrictStr] = Field(
        default_factory=dict, description="Up to 20 string pairs (keys ≤ 40, values ≤ 500 characters)."
    )
    # Strict like the date-time query parameters: in its lax mode pydantic would read 0 or "1700000000"
    # as a Unix timestamp, a 1970 expiry that hides the merchant's mistake (query_dates.py).
    expires_at: IsoDateTime | None = Field(
        default=None, description="ISO 8601 with a time zone, 1 minute to 7 days ahead; default 30 minutes."
    )


class AttemptOut(BaseModel):
    id: str
    object: Literal["payment_attempt"] = "payment_attempt"
    bank: str
    status: AttemptStatus
    amount: int
    currency: str
    bank_reference: str | None
    failure_code: str | None
    failure_message: str | None
    created_at: str


class PaymentOut(BaseModel):
    id: str
    object: Literal["payment"] = "payment"
    merchant_id: str
    out_trade_no: str
    amount: int = Field(description="Minor units (fen).")
    currency: str
    method: PaymentMethod
    bank: str | None
    status: PaymentStatus
    subject: str
    description: str | None
    metadata: dict[str, str]
    fee_amount: int = Field(description="The platform's fee in fen, set when the payment succeeds.")
    refunded_amount: int
    expires_at: str
    created_at: str
    cashier_url: str | None = Field(description="The hosted cashier page, for cashier and online_banking payments.")


class PaymentDetailOut(PaymentOut):
    attempts: list[AttemptOut] = Field(description="Every try on a bank, oldest first.")


class PaymentListOut(BaseModel):
    object: Literal["list"] = "list"
    url: str = "/v1/payments"
    data: list[PaymentOut]
    has_more: bool


@router.post(
    "/payments",
    response_model=PaymentOut,
    status_code=201,
    summary="Create a payment (idempotent by out_trade_no)",
)
def create_payment(body: PaymentCreateIn, merchant: AuthenticatedMerchant, container: ContainerDep) -> JSONResponse:
    request = PaymentRequest(
        merchant_id=merchant.merchant_id,
        out_trade_no=body.out_trade_no,
        amount=Money(body.amount, Currency.parse(body.currency)),
        method=PaymentMethod(body.method),
        subject=body.subject,
        bank=body.bank,
        description=body.description,
        notify_url=body.notify_url,
        return_url=body.return_url,
        metadata=body.metadata,
        expires_at=body.expires_at,
    )
    created = payments.create_payment(container.uow, container.clock, container.ids, request)
    headers = {IDEMPOTENT_REPLAYED_HEADER: "true"} if created.replayed else None
    out = payment_out(created.payment, container.settings.base_url)
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers=headers)


def payment_filters(
    status: Annotated[PaymentStatus | None, Query()] = None,
    method: Annotated[PaymentMethod | None, Query()] = None,
    bank: Annotated[
        str | None, Query(max_length=10, description="The bank that took the money, or the one the payment named.")
    ] = None,
    amount_min: Annotated[int | None, Query(ge=1, description="At least this many fen.")] = None,
    amount_max: Annotated[int | None, Query(ge=1, description="At most this many fen.")] = None,
    created_from: Annotated[
        IsoDateTime | None, Query(description="Created at or after (ISO 8601 with a time zone).")
    ] = None,
    created_before: Annotated[
        IsoDateTime | None, Query(description="Created before (ISO 8601 with a time zone).")
    ] = None,
    out_trade_no: Annotated[str | None, Query()] = None,
) -> PaymentFilter:
    """The filters the list and the export share, from the query string."""
    return PaymentFilter(
        status, method, created_from, created_before, out_trade_no,
        bank=bank, amount_min_minor=amount_min, amount_max_minor=amount_max,
    )


PaymentFilters = Annotated[PaymentFilter, Depends(payment_filters)]


@router.get("/payments", response_model=PaymentListOut, summary="List payments, newest first")
def list_payments(
    merchant: AuthenticatedMerchant,
    container: ContainerDep,
    filters: PaymentFilters,
    limit: Annotated[int, Query(ge=1, le=payments.MAX_PAGE_SIZE)] = payments.DEFAULT_PAGE_SIZE,
    starting_after: Annotated[str | None, Query(description="A payment id: the page after it.")] = None,
) -> PaymentListOut:
    # Lists read from the replica when one is configured (docs/statistics.md, "Read replica").
    page = payments.list_payments(
        container.read_uow, merchant.merchant_id, filters, starting_after=starting_after, limit=limit
    )
    base_url = container.settings.base_url
    return PaymentListOut(data=[payment_out(p, base_url) for p in page.payments], has_more=page.has_more)


@router.get(
    "/payments/export.csv",
    response_class=StreamingResponse,
    summary="Export payments as CSV, streamed (same filters as the list)",
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV, newest payment first."}},
)
def export_payments(merchant: AuthenticatedMerchant, container: ContainerDep, filters: PaymentFilters) -> Response:
    # Declared before /payments/{payment_id}, which would otherwise take "export.csv" for an id.
    rows = statistics.export_payments(container.read_uow, merchant.merchant_id, filters)
    return StreamingResponse(
        csv_export.render(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="payments.csv"',
            STREAMED_RESPONSE_HEADER: "headers-only",
        },
    )


@router.get("/payments/{payment_id}", response_model=PaymentDetailOut, summary="Retrieve a payment and its attempts")
def get_payment(payment_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> PaymentDetailOut:
    detail = payments.get_payment(container.uow, merchant.merchant_id, payment_id)
    out = payment_out(detail.payment, container.settings.base_url)
    return PaymentDetailOut(**out.model_dump(), attempts=[attempt_out(a) for a in detail.attempts])


@router.post(
    "/payments/{payment_id}/close",
    response_model=PaymentOut,
    summary="Close a payment nobody is paying (only while it is created)",
)
def close_payment(payment_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> PaymentOut:
    closed = payments.close_payment(container.uow, container.clock, merchant.merchant_id, payment_id)
    return payment_out(closed, container.settings.base_url)


def payment_out(payment: Payment, base_url: str) -> PaymentOut:
    cashier_url = f"{base_url}/cashier/{payment.id}" if payment.method.uses_cashier_page else None
    return PaymentOut.model_validate(payments.payment_view(payment) | {"cashier_url": cashier_url})


def attempt_out(attempt: PaymentAttempt) -> AttemptOut:
    return AttemptOut(
        id=attempt.id,
        bank=attempt.bank,
        status=attempt.status,
        amount=attempt.amount.minor,
        currency=attempt.amount.currency.code,
        bank_reference=attempt.bank_reference,
        failure_code=attempt.failure_code,
        failure_message=attempt.failure_message,
        created_at=iso_utc(attempt.created_at),
    )
