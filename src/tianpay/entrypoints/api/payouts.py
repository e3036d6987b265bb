"""Merchant API routes for payouts (代付): pay from the available balance, read one, list them.

Routes translate JSON to the services' values and back; the rules live in the domain and services.
A repeated request answers with the first payout as it is now (``Idempotent-Replayed``); the payee's
account number is answered masked only, and never logged.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool, StrictStr, model_validator

from tianpay.bootstrap import Container
from tianpay.domain.money import Currency, Money
from tianpay.domain.payout import PayeeAccount, Payout, PayoutRequest
from tianpay.services import payouts
from tianpay.services.payouts import LIST_LIMIT_MAX

from .deps import IDEMPOTENT_REPLAYED_HEADER, AuthenticatedMerchant, ContainerDep
from .schemas import AmountMinor, CurrencyCode, RequestModel

router = APIRouter(prefix="/v1", tags=["payouts"])


class PayeeAccountIn(RequestModel):
    bank: StrictStr = Field(description="The payee's bank: HBB, JHB or BCB.", examples=["BCB"])
    account_no: StrictStr = Field(description="8–32 digits; stored encrypted, answered masked.")
    account_name: StrictStr = Field(description="The account holder's name as the bank knows it.")

    def __repr__(self) -> str:
        return f"PayeeAccountIn(bank={self.bank!r}, account_no=<hidden>)"


class PayoutCreateIn(RequestModel):
    out_payout_no: StrictStr = Field(
        description="Your payout number: 1–64 of A–Z a–z 0–9 _ -, unique per merchant; the idempotency key.",
        examples=["20261127-P-0001"],
    )
    amount: AmountMinor
    currency: CurrencyCode = "CNY"
    purpose: StrictStr = Field(description="What the payee sees on the statement: 1–60 characters.")
    account: PayeeAccountIn | None = Field(default=None, description="The payee account; or to_settlement_account.")
    to_settlement_account: StrictBool = Field(
        default=False, description="Pay your own settlement account (set in your settlement settings)."
    )

    @model_validator(mode="after")
    def _one_payee(self) -> PayoutCreateIn:
        if (self.account is None) == (not self.to_settlement_account):
            raise ValueError("send either account or to_settlement_account: true")
        return self


class PayoutAccountOut(BaseModel):
    bank: str
    account_no_masked: str
    account_name: str


class PayoutOut(BaseModel):
    id: str
    object: Literal["payout"] = "payout"
    out_payout_no: str | None
    amount: int = Field(description="Minor units (fen).")
    currency: str
    purpose: str
    status: Literal["pending_review", "created", "processing", "succeeded", "failed", "returned"] = Field(
        description="pending_review: held for the platform's review (money reserved); see docs/payouts.md."
    )
    account: PayoutAccountOut
    bank: str = Field(description="The bank whose reserve pays (the payee's own bank, or BCB via clearing).")
    batch_id: str | None
    settlement_id: str | None
    failure_code: str | None = Field(description="The bank's reason when the payout failed.")
    failure_message: str | None
    created_at: str
    succeeded_at: str | None
    failed_at: str | None
    returned_at: str | None


class PayoutListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[PayoutOut]
    has_more: bool = False


@router.post(
    "/payouts",
    response_model=PayoutOut,
    status_code=201,
    summary="Pay out of your available balance to a bank account (idempotent by out_payout_no)",
)
def create_payout(body: PayoutCreateIn, merchant: AuthenticatedMerchant, container: ContainerDep) -> JSONResponse:
    account = None
    if body.account is not None:
        account = PayeeAccount(body.account.bank, body.account.account_no, body.account.account_name)
    amount = Money(body.amount, Currency.parse(body.currency))
    request = PayoutRequest(body.out_payout_no, amount, body.purpose, account)
    created = payouts.create_payout(
        container.uow,
        container.clock,
        container.ids,
        container.channels,
        container.member_tools.cipher,
        merchant.merchant_id,
        request,
        settlement_account=settlement_account(container, merchant.merchant_id) if account is None else None,
    )
    headers = {IDEMPOTENT_REPLAYED_HEADER: "true"} if created.replayed else None
    return JSONResponse(payout_out(created.payout).model_dump(mode="json"), status_code=201, headers=headers)


@router.get("/payouts/{payout_id}", response_model=PayoutOut, summary="Retrieve a payout")
def get_payout(payout_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> PayoutOut:
    return payout_out(payouts.get_payout(container.uow, merchant.merchant_id, payout_id))


@router.get("/payouts", response_model=PayoutListOut, summary="List your payouts, newest first")
def list_payouts(
    merchant: AuthenticatedMerchant,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 20,
    starting_after: Annotated[str | None, Query(description="A payout id: the page after it.")] = None,
) -> PayoutListOut:
    found, has_more = payouts.list_payouts(
        container.uow, merchant.merchant_id, limit=limit, starting_after=starting_after
    )
    return PayoutListOut(data=[payout_out(payout) for payout in found], has_more=has_more)


def payout_out(payout: Payout) -> PayoutOut:
    return PayoutOut.model_validate(payouts.payout_view(payout))


def settlement_account(container: Container, merchant_id: str) -> PayeeAccount | None:
    """The merchant's settlement account, as its settlement settings keep it (None when unset)."""
    return payouts.settlement_account_of(container.uow, container.member_tools.cipher, merchant_id)
