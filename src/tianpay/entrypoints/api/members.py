"""Merchant API routes for members: implicit registration (idempotent by external_id) and retrieval.

A merchant's backend registers the payer it knows; the platform answers with masked data only. The
same person registered by two merchants is one member, and each merchant sees it only through its
own ``external_id`` (another merchant's member is a 404).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictStr

from tianpay.services import members

from .deps import IDEMPOTENT_REPLAYED_HEADER, AuthenticatedMerchant, ContainerDep
from .schemas import RequestModel

router = APIRouter(prefix="/v1", tags=["members"])


class MemberCreateIn(RequestModel):
    external_id: StrictStr = Field(
        description="Your id for this payer: 1–64 of A–Z a–z 0–9 _ . : -, unique per merchant; the idempotency key.",
        examples=["user-42"],
    )
    name: StrictStr = Field(description="The payer's legal name (2–30 characters; Chinese names may use ·).")
    id_number: StrictStr = Field(description="The 18-character resident ID number (GB 11643).")
    phone: StrictStr = Field(description="A mainland China mobile number, 11 digits.")


class MemberOut(BaseModel):
    id: str
    object: Literal["member"] = "member"
    external_ids: list[str] = Field(description="Your external ids for this member (usually one).")
    name: str | None
    id_number: str | None = Field(description="Masked, e.g. 1****************2.")
    phone: str | None = Field(description="Masked, e.g. 138****8001.")
    status: str
    is_real_name_verified: bool
    has_payment_password: bool
    created_at: str


@router.post("/members", response_model=MemberOut, status_code=201, summary="Register a payer (idempotent)")
def create_member(body: MemberCreateIn, merchant: AuthenticatedMerchant, container: ContainerDep) -> JSONResponse:
    registered = members.register_for_merchant(
        container.uow,
        container.member_tools,
        members.ImplicitRegistration(merchant.merchant_id, body.external_id, body.name, body.id_number, body.phone),
    )
    external_ids = members.external_ids_of(container.uow, merchant.merchant_id, registered.member.id)
    out = MemberOut.model_validate(members.member_view(registered.member, external_ids))
    headers = {IDEMPOTENT_REPLAYED_HEADER: "true"} if registered.replayed else None
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers=headers)


@router.get("/members/{member_id}", response_model=MemberOut, summary="Retrieve a member (masked)")
def get_member(member_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> MemberOut:
    member = members.member_for_merchant(container.uow, merchant.merchant_id, member_id)
    external_ids = members.external_ids_of(container.uow, merchant.merchant_id, member_id)
    return MemberOut.model_validate(members.member_view(member, external_ids))
