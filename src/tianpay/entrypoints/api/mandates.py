"""Merchant API routes for direct debit (代扣): register a mandate (the bank texts the payer), confirm
it with the code, revoke it, and debit it with no payer step (DESIGN.md §6).

Card elements go in; only a masked card number comes out. Debits are idempotent on ``out_trade_no``
like every payment, and a debit outside the mandate is refused before any bank is asked.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from tianpay.domain.money import Money
from tianpay.entrypoints.gateway_wiring import gateway_settings
from tianpay.services import debit_schedules, mandates
from tianpay.services.payments import payment_view

from .deps import IDEMPOTENT_REPLAYED_HEADER, AuthenticatedMerchant, ContainerDep
from .query_dates import IsoDate
from .schemas import RequestModel

router = APIRouter(prefix="/v1", tags=["mandates"])


class MandateIn(RequestModel):
    member_id: StrictStr
    mandate_no: StrictStr = Field(description="The merchant's own mandate number (unique per merchant).")
    card_number: StrictStr
    name: StrictStr
    id_number: StrictStr
    phone: StrictStr = Field(description="The mobile number reserved at the bank (the code goes there).")
    max_amount_per_debit: StrictInt = Field(gt=0, description="Minor units.")
    max_amount_per_month: StrictInt = Field(gt=0, description="Minor units, per Beijing calendar month.")
    # Strict YYYY-MM-DD: in lax mode pydantic reads 0 as 1970-01-01 (entrypoints/api/query_dates.py).
    valid_until: IsoDate
    purpose: StrictStr = Field(description="e.g. utility:electricity")


class MandateConfirmIn(RequestModel):
    sms_code: StrictStr


class DebitIn(RequestModel):
    out_trade_no: StrictStr
    amount: StrictInt = Field(gt=0, description="Minor units.")
    subject: StrictStr = "代扣"
    notify_url: StrictStr | None = None


@router.post("/mandates", status_code=201, summary="Register a mandate: the bank texts the payer a code")
async def create_mandate(body: MandateIn, merchant: AuthenticatedMerchant, container: ContainerDep) -> JSONResponse:
    request = mandates.MandateRequest(
        member_id=body.member_id, merchant_mandate_no=body.mandate_no,
        max_per_debit=Money.cny(body.max_amount_per_debit), max_per_month=Money.cny(body.max_amount_per_month),
        valid_until=body.valid_until, purpose=body.purpose, card_number=body.card_number, name=body.name,
        id_number=body.id_number, phone=body.phone,
    )
    mandate = await run_in_threadpool(
        mandates.create_mandate, container.uow, container.clock, container.ids, container.channels,
        container.member_tools.cipher, request, merchant_id=merchant.merchant_id,
        settings=gateway_settings(container),
    )
    return JSONResponse(mandates.mandate_view(mandate), status_code=201)


@router.post("/mandates/{mandate_id}/confirm", summary="Confirm a mandate with the texted code")
async def confirm_mandate(
    mandate_id: str, body: MandateConfirmIn, merchant: AuthenticatedMerchant, container: ContainerDep
) -> JSONResponse:
    mandate = await run_in_threadpool(
        mandates.confirm_mandate, container.uow, container.clock, container.channels, container.member_tools.cipher,
        mandate_id, body.sms_code, merchant_id=merchant.merchant_id,
    )
    return JSONResponse(mandates.mandate_view(mandate))


@router.get("/mandates/{mandate_id}", summary="Read a mandate")
def get_mandate(mandate_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> JSONResponse:
    mandate = mandates.get_mandate(container.uow, mandate_id, merchant_id=merchant.merchant_id)
    return JSONResponse(mandates.mandate_view(mandate))


@router.post("/mandates/{mandate_id}/revoke", summary="Revoke a mandate (no debit passes afterwards)")
async def revoke_mandate(mandate_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> JSONResponse:
    mandate = await run_in_threadpool(
        mandates.revoke_mandate, container.uow, container.clock, container.channels, container.member_tools.cipher,
        mandate_id, merchant_id=merchant.merchant_id,
    )
    return JSONResponse(mandates.mandate_view(mandate))


@router.post("/mandates/{mandate_id}/debits", status_code=201, summary="Debit a mandate (no payer step)")
async def debit_mandate(
    mandate_id: str, body: DebitIn, merchant: AuthenticatedMerchant, container: ContainerDep
) -> JSONResponse:
    created = await run_in_threadpool(
        lambda: mandates.debit(
            container.uow, container.clock, container.ids, container.channels, container.member_tools.cipher,
            gateway_settings(container), merchant_id=merchant.merchant_id, mandate_id=mandate_id,
            out_trade_no=body.out_trade_no, amount=Money.cny(body.amount), subject=body.subject,
            notify_url=body.notify_url,
        )
    )
    headers = {IDEMPOTENT_REPLAYED_HEADER: "true"} if created.replayed else None
    return JSONResponse(payment_view(created.payment), status_code=200 if created.replayed else 201, headers=headers)


class ScheduleIn(RequestModel):
    day_of_month: StrictInt = Field(ge=1, le=28, description="Beijing day of the month the debit is due.")
    amount: StrictInt | None = Field(
        default=None, gt=0, description="Minor units; omit to take each month's amount from a bill."
    )
    subject: StrictStr = "代扣"


class BillIn(RequestModel):
    period: StrictStr = Field(description="The Beijing month the bill is for, e.g. 2025-03.")
    amount: StrictInt = Field(gt=0, description="Minor units.")


@router.post("/mandates/{mandate_id}/schedules", status_code=201,
             summary="Register a monthly debit: a fixed amount, or the amount of each month's bill")
def create_schedule(
    mandate_id: str, body: ScheduleIn, merchant: AuthenticatedMerchant, container: ContainerDep
) -> JSONResponse:
    schedule = debit_schedules.create_schedule(
        container.uow, container.clock, container.ids, merchant_id=merchant.merchant_id, mandate_id=mandate_id,
        day_of_month=body.day_of_month, amount=None if body.amount is None else Money.cny(body.amount),
        subject=body.subject,
    )
    return JSONResponse(debit_schedules.schedule_view(schedule), status_code=201)


@router.get("/mandates/{mandate_id}/schedules/{schedule_id}", summary="Read a debit schedule")
def get_schedule(
    mandate_id: str, schedule_id: str, merchant: AuthenticatedMerchant, container: ContainerDep
) -> JSONResponse:
    schedule = debit_schedules.get_schedule(container.uow, mandate_id, schedule_id, merchant_id=merchant.merchant_id)
    return JSONResponse(debit_schedules.schedule_view(schedule))


@router.post("/mandates/{mandate_id}/schedules/{schedule_id}/bills", status_code=201,
             summary="Post a month's bill on a bill schedule (debited on or after the schedule's day)")
def add_bill(
    mandate_id: str, schedule_id: str, body: BillIn, merchant: AuthenticatedMerchant, container: ContainerDep
) -> JSONResponse:
    amount = debit_schedules.add_bill(
        container.uow, container.clock, merchant_id=merchant.merchant_id, mandate_id=mandate_id,
        schedule_id=schedule_id, period=body.period, amount=Money.cny(body.amount),
    )
    view = {"object": "debit_bill", "schedule_id": schedule_id, "period": body.period, "amount": amount.minor,
            "currency": "CNY"}
    return JSONResponse(view, status_code=201)
