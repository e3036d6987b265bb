"""What the hosted cashier shows: the payment to pay and the banks that can take it, or its result.

Read models only, from the platform's own records: a bank's redirect parameters are never shown as a
result (they are not signed, or are applied first by the gateway service). Paying is
``services.gateway.pay_at_bank``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tianpay.domain.errors import NotFound
from tianpay.domain.payment import Payment, PaymentStatus
from tianpay.ports.channels import ChannelDirectory
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import routing
from tianpay.services.quick_pay import CARD_PAYABLE_METHODS


class PageState(enum.StrEnum):
    """Where the payer stands, as the cashier pages tell it."""

    PAYABLE = "payable"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class CashierView:
    payment: Payment
    merchant_name: str
    state: PageState
    # Banks the payer may choose now (empty unless the payment can take an attempt).
    banks: tuple[str, ...]
    seconds_left: int
    # Where the "back to the merchant" button goes (with payment_id and out_trade_no), if anywhere.
    merchant_return_url: str | None

    @property
    def offers_quick_pay(self) -> bool:
        """Whether a signed-in member may pay with a bound card now (not once an attempt is out)."""
        return self.state is PageState.PAYABLE and self.payment.method in CARD_PAYABLE_METHODS

    @property
    def offers_banks(self) -> bool:
        return self.state in (PageState.PAYABLE, PageState.PROCESSING) and bool(self.banks)


def cashier_view(
    uow_factory: UnitOfWorkFactory, channels: ChannelDirectory, payment_id: str, now: datetime
) -> CashierView:
    """The payment as the payer sees it; NotFound for an unknown id or one not paid at the cashier."""
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id)
        shown = payment is not None and (payment.method.uses_cashier_page or payment.method in CARD_PAYABLE_METHODS)
        if payment is None or not shown:
            raise NotFound(f"no payment {payment_id} to pay here", param="payment_id")
        merchant = uow.merchants.get(payment.merchant_id)
    state = page_state(payment, now)
    seconds_left = max(0, int((payment.expires_at - now).total_seconds()))
    banks: tuple[str, ...] = ()
    # A quick-pay payment is paid with a bound card only; the bank choice is online banking's.
    if state in (PageState.PAYABLE, PageState.PROCESSING) and payment.method.uses_cashier_page:
        # A bank an operator switched off in the console is not offered (docs/console.md).
        switched_off = routing.disabled_banks(uow_factory)
        offered = [bank for bank in channels.online_banking_banks() if bank not in switched_off]
        banks = tuple(bank for bank in offered if payment.bank is None or bank == payment.bank)
    return CashierView(
        payment=payment,
        merchant_name=merchant.name if merchant is not None else payment.merchant_id,
        state=state,
        banks=banks,
        seconds_left=seconds_left,
        merchant_return_url=merchant_return_url(payment),
    )


def page_state(payment: Payment, now: datetime) -> PageState:
    """The payment's state for the payer; an expired payment nobody is paying reads as closed."""
    if payment.status is PaymentStatus.SUCCEEDED:
        return PageState.SUCCEEDED
    if payment.status is PaymentStatus.FAILED:
        return PageState.FAILED
    if payment.status is PaymentStatus.CLOSED:
        return PageState.CLOSED
    if payment.is_expired_at(now):
        # The expiry job may not have run yet; a processing one may still succeed at its bank.
        return PageState.PROCESSING if payment.status is PaymentStatus.PROCESSING else PageState.CLOSED
    if payment.status is PaymentStatus.PROCESSING:
        return PageState.PROCESSING
    return PageState.PAYABLE


def merchant_return_url(payment: Payment) -> str | None:
    """The merchant's ``return_url`` with ``payment_id`` and ``out_trade_no`` added to its query."""
    if payment.return_url is None:
        return None
    parts = urlsplit(payment.return_url)
    kept = parse_qsl(parts.query, keep_blank_values=True)
    query = [(key, value) for key, value in kept if key not in ("payment_id", "out_trade_no")]
    query += [("payment_id", payment.id), ("out_trade_no", payment.out_trade_no)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
