"""Merchant API routes for card binding: apply (the bank texts a code), confirm with the code, list, unbind.

Only members the calling merchant registered are reachable (another merchant's member is a 404).
Card numbers, ID numbers, phones and codes go in; only a masked card number ever comes out.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictStr
from starlette.concurrency import run_in_threadpool

from tianpay.domain.card_binding import CardBinding
from tianpay.services import card_bindings, members

from .deps import AuthenticatedMerchant, ContainerDep
from .schemas import RequestModel

router = APIRouter(prefix="/v1", tags=["cards"])


class CardBindIn(RequestModel):
    card_number: StrictStr = Field(description="The debit card's number, 16–19 digits (Luhn-valid).")
    name: StrictStr = Field(description="The holder's name as the bank holds it.")
    id_number: StrictStr = Field(description="The holder's 18-character resident ID number.")
    phone: StrictStr = Field(description="The mobile number reserved at the bank (the code goes there).")
    bank: StrictStr | None = Field(
        default=None, description="HBB, JHB …; optional: the card's BIN names its bank (621799 HBB, 622799 JHB)."
    )


class CardConfirmIn(RequestModel):
    sms_code: StrictStr = Field(description="The 6-digit code the bank texted to the reserved phone.")


class PaymentPasswordIn(RequestModel):
    payment_password: StrictStr = Field(description="6 digits, not a run such as 123456 or 111111.")


class CardOut(BaseModel):
    id: str = Field(description="The card binding's id: the card_id of quick-pay payments.")
    object: Literal["card"] = "card"
    member_id: str
    bank: str
    card_number_masked: str = Field(description="e.g. 621799*********0014.")
    status: Literal["applied", "bound", "failed", "expired", "unbound"]
    failure_code: str | None
    sms_expires_at: str | None = Field(description="While applied: when the texted code stops working.")
    created_at: str
    bound_at: str | None


class CardConfirmedOut(CardOut):
    needs_payment_password: bool = Field(
        description="True after the member's first card: a payment password must be set before quick pay."
    )


class CardListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[CardOut]


@router.post(
    "/members/{member_id}/cards", response_model=CardOut, status_code=201,
    summary="Bind a card: the bank checks the four elements and texts a code",
)
async def bind_card(
    member_id: str, body: CardBindIn, merchant: AuthenticatedMerchant, container: ContainerDep
) -> JSONResponse:
    application = card_bindings.BindingApplication(
        member_id=member_id, card_number=body.card_number, name=body.name, id_number=body.id_number,
        phone=body.phone, bank=body.bank,
    )
    binding = await run_in_threadpool(
        card_bindings.apply_binding, container.uow, container.clock, container.ids, container.channels,
        container.member_tools.cipher, application, merchant_id=merchant.merchant_id,
    )
    return JSONResponse(card_out(binding).model_dump(mode="json"), status_code=201)


@router.post(
    "/card-bindings/{binding_id}/confirm", response_model=CardConfirmedOut,
    summary="Confirm a card binding with the texted code",
)
async def confirm_card(
    binding_id: str, body: CardConfirmIn, merchant: AuthenticatedMerchant, container: ContainerDep
) -> CardConfirmedOut:
    confirmed = await run_in_threadpool(
        card_bindings.confirm_binding, container.uow, container.clock, container.channels,
        container.member_tools.cipher, binding_id, body.sms_code, merchant_id=merchant.merchant_id,
    )
    out = card_out(confirmed.binding)
    return CardConfirmedOut(**out.model_dump(), needs_payment_password=confirmed.needs_payment_password)


@router.get("/members/{member_id}/cards", response_model=CardListOut, summary="List a member's bound cards")
def list_cards(member_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> CardListOut:
    found = card_bindings.cards_of(container.uow, member_id, merchant_id=merchant.merchant_id)
    return CardListOut(data=[card_out(binding) for binding in found])


@router.delete("/members/{member_id}/cards/{card_id}", response_model=CardOut, summary="Unbind a card")
async def unbind_card(
    member_id: str, card_id: str, merchant: AuthenticatedMerchant, container: ContainerDep
) -> CardOut:
    binding = await run_in_threadpool(
        card_bindings.unbind, container.uow, container.clock, container.channels, container.member_tools.cipher,
        card_id, merchant_id=merchant.merchant_id, member_id=member_id,
    )
    return card_out(binding)


class PaymentPasswordOut(BaseModel):
    object: Literal["payment_password"] = "payment_password"
    member_id: str
    is_set: bool


@router.post(
    "/members/{member_id}/payment-password", response_model=PaymentPasswordOut,
    summary="Set the member's first payment password (after the first card binding)",
)
async def set_payment_password(
    member_id: str, body: PaymentPasswordIn, merchant: AuthenticatedMerchant, container: ContainerDep
) -> PaymentPasswordOut:
    # An implicit member never sees a Tianpay page, so its merchant collects the password in its own
    # app and passes it on; changing it later needs an SMS code (the members service).
    members.member_for_merchant(container.uow, merchant.merchant_id, member_id)
    await run_in_threadpool(
        members.set_payment_password, container.uow, container.member_tools, member_id, body.payment_password
    )
    return PaymentPasswordOut(member_id=member_id, is_set=True)


def card_out(binding: CardBinding) -> CardOut:
    return CardOut.model_validate(card_bindings.binding_view(binding))
