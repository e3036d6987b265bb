"""Merchant API routes for refunds: request one on a payment (idempotent by out_refund_no), read them.

Routes translate JSON to the services' values and back; the rules (only succeeded payments, never
more than what is left, the pro-rata fee return) live in the domain and the services. A repeated
request answers with the first refund as it is now, marked by the ``Idempotent-Replayed`` header.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictStr

from tianpay.bootstrap import Container
from tianpay.domain.money import Currency, Money
from tianpay.domain.refund import Refund, RefundRequest
from tianpay.services import refunds
from tianpay.services.refunds import RequeryPolicy

from .deps import IDEMPOTENT_REPLAYED_HEADER, AuthenticatedMerchant, ContainerDep
from .schemas import AmountMinor, RequestModel

router = APIRouter(prefix="/v1", tags=["refunds"])


class RefundCreateIn(RequestModel):
    out_refund_no: StrictStr = Field(
        description="Your refund number: 1–64 of A–Z a–z 0–9 _ -, unique per merchant; the idempotency key.",
        examples=["20261127-0001-R1"],
    )
    amount: AmountMinor
    reason: StrictStr | None = Field(default=None, description="Why, for your records: up to 256 characters.")


class RefundOut(BaseModel):
    id: str
    object: Literal["refund"] = "refund"
    payment_id: str
    out_refund_no: str | None
    amount: int = Field(description="Minor units (fen), in the payment's currency.")
    currency: str
    fee_returned: int = Field(description="The share of the payment's fee returned to you with this refund (fen).")
    status: Literal["created", "processing", "succeeded", "failed"]
    failure_code: str | None = Field(description="The bank's reason when the refund failed.")
    created_at: str
    succeeded_at: str | None


class RefundListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[RefundOut]
    has_more: bool = False


@router.post(
    "/payments/{payment_id}/refunds",
    response_model=RefundOut,
    status_code=201,
    summary="Refund a succeeded payment, in part or in whole (idempotent by out_refund_no)",
)
def create_refund(
    payment_id: str, body: RefundCreateIn, merchant: AuthenticatedMerchant, container: ContainerDep
) -> JSONResponse:
    # A refund is always in the payment's currency; the platform books CNY only.
    request = RefundRequest(body.out_refund_no, Money(body.amount, Currency.CNY), body.reason)
    created = refunds.create_refund(
        container.uow,
        container.clock,
        container.ids,
        container.channels,
        merchant.merchant_id,
        payment_id,
        request,
        notify_base_url=container.settings.base_url,
        policy=requery_policy(container),
    )
    headers = {IDEMPOTENT_REPLAYED_HEADER: "true"} if created.replayed else None
    return JSONResponse(refund_out(created.refund).model_dump(mode="json"), status_code=201, headers=headers)


@router.get("/refunds/{refund_id}", response_model=RefundOut, summary="Retrieve a refund")
def get_refund(refund_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> RefundOut:
    return refund_out(refunds.get_refund(container.uow, merchant.merchant_id, refund_id))


@router.get("/payments/{payment_id}/refunds", response_model=RefundListOut, summary="List a payment's refunds")
def list_refunds(payment_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> RefundListOut:
    found = refunds.list_refunds_for_payment(container.uow, merchant.merchant_id, payment_id)
    return RefundListOut(data=[refund_out(refund) for refund in found])


def refund_out(refund: Refund) -> RefundOut:
    return RefundOut.model_validate(refunds.refund_view(refund))


def requery_policy(container: Container) -> RequeryPolicy:
    settings = container.settings
    return RequeryPolicy(settings.requery_first_after_s, settings.requery_max_interval_s)
