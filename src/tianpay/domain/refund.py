"""Refunds: money a succeeded payment returns to the payer, in part or in whole, once or many times.

The lifecycle is a transition table (``created → processing → succeeded | failed``, with ``unknown``
resolved by querying the bank, never by submitting again). Creation rules, the remaining refundable
amount and the pro-rata fee return live here as pure functions with named errors.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from tianpay.domain.errors import DomainError, IllegalTransition
from tianpay.domain.money import Money, fee_to_return, pro_rata
from tianpay.domain.payment import Payment, PaymentStatus, check_amount


class RefundKind(enum.StrEnum):
    """Who asked for the refund, which decides whose money it returns."""

    # The merchant asked (POST /v1/payments/{id}/refunds): its pending balance pays the payer back.
    MERCHANT = "merchant"
    # A second attempt of a payment also took the payer's money; the platform returns it from
    # platform:suspense. The merchant never saw that attempt and is never told.
    LATE_SUCCESS = "late_success"


class RefundStatus(enum.StrEnum):
    # The intent is persisted; the bank may or may not have been called yet (DESIGN.md §7).
    CREATED = "created"
    # The bank accepted the refund and will answer later (notification or query).
    PROCESSING = "processing"
    # We do not know whether the bank moved money (a timeout, an unclear answer): query it.
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_in_flight(self) -> bool:
        """Whether the bank may still move this refund's money (the re-query job looks at these)."""
        return self in (RefundStatus.CREATED, RefundStatus.PROCESSING, RefundStatus.UNKNOWN)

    @property
    def public(self) -> str:
        """The status merchants see: ``unknown`` is ours to resolve, so they see ``processing``."""
        return RefundStatus.PROCESSING.value if self is RefundStatus.UNKNOWN else self.value


class RefundEvent(enum.StrEnum):
    """A bank's answer about one refund, in the platform's outcome vocabulary."""

    PENDING = "pending"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    # Declined, or certainly never submitted (NOT_SUBMITTED): no money moved either way.
    FAILED = "failed"


# Only an explicit answer is final. ``unknown`` and ``processing`` wait for a query or a
# notification; a repeated or late PENDING/UNKNOWN is no news and has no row here, so recording it
# is a no-op. A final refund never changes its mind (a bank that does is a reconciliation case).
TRANSITIONS: Final[Mapping[tuple[RefundStatus, RefundEvent], RefundStatus]] = {
    (RefundStatus.CREATED, RefundEvent.PENDING): RefundStatus.PROCESSING,
    (RefundStatus.CREATED, RefundEvent.UNKNOWN): RefundStatus.UNKNOWN,
    (RefundStatus.CREATED, RefundEvent.SUCCEEDED): RefundStatus.SUCCEEDED,
    (RefundStatus.CREATED, RefundEvent.FAILED): RefundStatus.FAILED,
    (RefundStatus.PROCESSING, RefundEvent.SUCCEEDED): RefundStatus.SUCCEEDED,
    (RefundStatus.PROCESSING, RefundEvent.FAILED): RefundStatus.FAILED,
    (RefundStatus.UNKNOWN, RefundEvent.PENDING): RefundStatus.PROCESSING,
    (RefundStatus.UNKNOWN, RefundEvent.SUCCEEDED): RefundStatus.SUCCEEDED,
    (RefundStatus.UNKNOWN, RefundEvent.FAILED): RefundStatus.FAILED,
}


def next_state(status: RefundStatus, event: RefundEvent) -> RefundStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(
            f"a refund that is {status.value} cannot take the event {event.value}", param="status"
        ) from None


# ---- errors -------------------------------------------------------------------------------------------

OUT_REFUND_NO_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_REASON_CHARS: Final = 256


class InvalidRefund(DomainError):
    """A refund request breaks a creation rule; ``param`` names the offending field."""

    code = "refund_invalid"


class InvalidOutRefundNo(InvalidRefund):
    code = "out_refund_no_invalid"


class InvalidReason(InvalidRefund):
    code = "reason_invalid"


class PaymentNotRefundable(InvalidRefund):
    """Only a succeeded payment has money to give back."""

    code = "payment_not_refundable"


class RefundExceedsPayment(InvalidRefund):
    """The refund is more than what is left of the payment after its other (non-failed) refunds."""

    code = "refund_exceeds_payment"


class RefundNotSupported(InvalidRefund):
    """The bank that carried the payment takes no refunds through this platform."""

    code = "refund_not_supported"


# ---- values -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """What a merchant asks for: ``out_refund_no`` is its own number and the idempotency key."""

    out_refund_no: str
    amount: Money
    reason: str | None = None

    def fingerprint(self, payment_id: str) -> str:
        """A hash of the request with its payment: the same number for another body is a conflict."""
        canonical = {
            "payment_id": payment_id,
            "amount": self.amount.minor,
            "currency": self.amount.currency.code,
            "reason": self.reason,
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    kind: RefundKind
    payment_id: str
    merchant_id: str
    # None for a late-success refund: the merchant never asked for it.
    out_refund_no: str | None
    amount: Money
    fee_returned: Money
    reason: str | None
    status: RefundStatus
    bank: str
    # The attempt whose money goes back: the payment's succeeded attempt, or the late one.
    attempt_id: str
    created_at: datetime
    updated_at: datetime
    next_query_at: datetime | None
    query_count: int = 0
    bank_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    succeeded_at: datetime | None = None

    def moved_to(self, event: RefundEvent, now: datetime) -> Refund:
        """This refund after ``event``; raises IllegalTransition when the table forbids it."""
        status = next_state(self.status, event)
        return replace(
            self,
            status=status,
            updated_at=now,
            succeeded_at=now if status is RefundStatus.SUCCEEDED else self.succeeded_at,
            # A final refund is never queried again.
            next_query_at=self.next_query_at if status.is_in_flight else None,
        )


# ---- rules --------------------------------------------------------------------------------------------


def check_request(request: RefundRequest) -> None:
    """Raises the named error of the first creation rule the request breaks (payment aside)."""
    check_amount(request.amount)
    if OUT_REFUND_NO_PATTERN.fullmatch(request.out_refund_no) is None:
        raise InvalidOutRefundNo(
            "out_refund_no is 1–64 characters of A–Z, a–z, 0–9, '_' and '-'", param="out_refund_no"
        )
    if request.reason is not None and len(request.reason) > MAX_REASON_CHARS:
        raise InvalidReason(f"reason is at most {MAX_REASON_CHARS} characters", param="reason")


def check_refundable(payment: Payment, amount: Money) -> None:
    """Raises unless ``amount`` fits in what is left of the succeeded payment.

    The payment's refunded amount counts every refund that has not failed (requested, in flight or
    succeeded), so two refunds in flight can never together exceed the payment.
    """
    if payment.status is not PaymentStatus.SUCCEEDED:
        raise PaymentNotRefundable(
            f"payment {payment.id} is {payment.status.value}; only succeeded payments can be refunded",
            param="payment_id",
        )
    if amount.currency is not payment.amount.currency:
        raise RefundExceedsPayment("a refund is in the payment's currency", param="currency")
    remaining = payment.amount - payment.refunded_amount
    if amount.minor > remaining.minor:
        raise RefundExceedsPayment(
            f"the refund of {amount} exceeds the {remaining} left to refund on payment {payment.id}",
            param="amount",
        )


def fee_returned_with(payment: Payment, fee_returned_before: Money, refund: Money) -> Money:
    """The share of the payment's fee returned with ``refund`` (DESIGN.md §4, pro rata).

    ``fee_to_return`` makes the returns telescope: with refunds r1…rn their fee returns add up to
    ``pro_rata(fee, r1+…+rn)``, and the refund that completes the payment takes what is left. A
    refund that failed in between breaks the telescope (its return was reversed, but the refunds
    requested after it were computed on top of it), so the drift between what pro rata says should
    have been returned by now and what was actually returned is added back. Without failures the
    correction is zero; with them, the returns still sum to exactly the fee once fully refunded.
    """
    fee, amount, before = payment.fee_amount, payment.amount, payment.refunded_amount
    drift = pro_rata(fee, before, amount) - fee_returned_before
    returned = fee_to_return(fee, amount, before, refund) + drift
    ceiling = fee - fee_returned_before
    return Money(min(max(returned.minor, 0), ceiling.minor), fee.currency)


def new_refund(
    payment: Payment,
    request: RefundRequest,
    *,
    refund_id: str,
    bank: str,
    attempt_id: str,
    fee_returned: Money,
    now: datetime,
    next_query_at: datetime,
) -> Refund:
    """Validates a merchant's refund against its payment and returns it in ``created``."""
    check_request(request)
    check_refundable(payment, request.amount)
    return Refund(
        id=refund_id,
        kind=RefundKind.MERCHANT,
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        out_refund_no=request.out_refund_no,
        amount=request.amount,
        fee_returned=fee_returned,
        reason=request.reason,
        status=RefundStatus.CREATED,
        bank=bank,
        attempt_id=attempt_id,
        created_at=now,
        updated_at=now,
        next_query_at=next_query_at,
    )
