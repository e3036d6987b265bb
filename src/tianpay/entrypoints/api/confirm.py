"""``POST /v1/payments/{id}/confirm``: a merchant's backend confirms a payment on the payer's behalf.

For ``wallet`` payments (and ``cashier`` ones the payer chose to pay from the wallet) the body names
the member and carries the payment password, plus an SMS code above the configured threshold.
``quick_pay`` payments name a bound card and carry the payment password (``services.quick_pay``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from fastapi import APIRouter
from pydantic import Field, StrictStr

from tianpay.bootstrap import Container
from tianpay.domain.errors import DomainError
from tianpay.domain.payment import Payment, PaymentMethod
from tianpay.entrypoints.quick_pay_wiring import quick_pay_settings
from tianpay.services import payments, quick_pay, wallet

from .deps import AuthenticatedMerchant, ContainerDep
from .payments import PaymentOut, payment_out
from .schemas import RequestModel

router = APIRouter(prefix="/v1", tags=["payments"])


class ConfirmationNotSupported(DomainError):
    code = "confirmation_not_supported"


class PaymentConfirmIn(RequestModel):
    member_id: StrictStr | None = Field(default=None, description="The paying member (wallet payments).")
    payment_password: StrictStr | None = Field(default=None, description="The member's 6-digit payment password.")
    card_id: StrictStr | None = Field(default=None, description="The bound card to charge (quick pay).")
    sms_code: StrictStr | None = Field(
        default=None, description="The SMS code, when a previous call answered sms_code_required (or for quick pay)."
    )


# The handler gets the payment the route read to choose it, so it need not read it again.
ConfirmHandler = Callable[[Container, str, Payment, PaymentConfirmIn], Payment]


def _confirm_from_wallet(container: Container, merchant_id: str, payment: Payment, body: PaymentConfirmIn) -> Payment:
    if body.member_id is None:
        raise ConfirmationNotSupported("member_id is required to pay from a wallet", param="member_id")
    if body.payment_password is None:
        raise ConfirmationNotSupported("payment_password is required to pay from a wallet", param="payment_password")
    return wallet.confirm_wallet_payment(
        container.uow,
        container.member_tools,
        payment.id,
        member_id=body.member_id,
        payment_password=body.payment_password,
        sms_code=body.sms_code,
        merchant_id=merchant_id,
        payment=payment,
    )


def _confirm_quick_pay(container: Container, merchant_id: str, payment: Payment, body: PaymentConfirmIn) -> Payment:
    if body.card_id is None:
        raise ConfirmationNotSupported("card_id is required for quick pay", param="card_id")
    if body.payment_password is None:
        raise ConfirmationNotSupported("payment_password is required for quick pay", param="payment_password")
    return quick_pay.confirm_quick_pay(
        container.uow,
        container.clock,
        container.ids,
        container.channels,
        container.member_tools,
        quick_pay_settings(container),
        merchant_id=merchant_id,
        payment_id=payment.id,
        card_id=body.card_id,
        payment_password=body.payment_password,
    )


# The handler per payment method: the payer's proof differs (wallet: payment password and maybe an
# SMS code; quick pay: a bound card and the payment password).
CONFIRM_HANDLERS: Final[dict[PaymentMethod, ConfirmHandler]] = {
    PaymentMethod.WALLET: _confirm_from_wallet,
    PaymentMethod.CASHIER: _confirm_from_wallet,
    PaymentMethod.QUICK_PAY: _confirm_quick_pay,
}


@router.post(
    "/payments/{payment_id}/confirm",
    response_model=PaymentOut,
    summary="Confirm a payment (wallet: payment password, and an SMS code above the threshold)",
)
def confirm_payment(
    payment_id: str, body: PaymentConfirmIn, merchant: AuthenticatedMerchant, container: ContainerDep
) -> PaymentOut:
    payment = payments.find_payment(container.uow, merchant.merchant_id, payment_id)
    handler = CONFIRM_HANDLERS.get(payment.method)
    if handler is None:
        raise ConfirmationNotSupported(f"a {payment.method.value} payment takes no confirmation", param="id")
    confirmed = handler(container, merchant.merchant_id, payment, body)
    return payment_out(confirmed, container.settings.base_url)
