"""Payments (the merchant's request to be paid) and payment attempts (one try on one channel).

Both lifecycles are transition tables; services look the next state up with ``next_state`` /
``next_attempt_state`` and write it with a compare-and-set. Creation rules (amounts, out_trade_no,
URLs, expiry …) live here as named errors so every entry point refuses bad input the same way.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

from tianpay.domain.errors import DomainError, IllegalTransition
from tianpay.domain.money import MAX_AMOUNT_MINOR, Currency, Money


class PaymentMethod(enum.StrEnum):
    """How the payer pays (DESIGN.md §6); the values match the fee plan's method names."""

    CASHIER = "cashier"
    ONLINE_BANKING = "online_banking"
    QUICK_PAY = "quick_pay"
    WALLET = "wallet"
    DIRECT_DEBIT = "direct_debit"
    POS = "pos"

    @property
    def requires_bank(self) -> bool:
        return self is PaymentMethod.ONLINE_BANKING

    @property
    def is_payer_present(self) -> bool:
        """Whether a payer at the cashier may try again (another bank) after an attempt fails.

        Backend-driven methods (quick pay, wallet, direct debit, POS) have nobody to choose again,
        so their last failed attempt fails the payment, unless the router is failing over.
        """
        return self in (PaymentMethod.CASHIER, PaymentMethod.ONLINE_BANKING)

    @property
    def uses_cashier_page(self) -> bool:
        return self.is_payer_present

    @property
    def is_created_by_merchant_api(self) -> bool:
        """POS payments are created by the POS front from a terminal, never by a merchant's call."""
        return self is not PaymentMethod.POS


class PaymentStatus(enum.StrEnum):
    CREATED = "created"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CLOSED = "closed"

    @property
    def is_final(self) -> bool:
        return self in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CLOSED)


class PaymentEvent(enum.StrEnum):
    """What can happen to a payment: the inputs of its transition table."""

    ATTEMPT_STARTED = "attempt_started"
    ATTEMPT_SUCCEEDED = "attempt_succeeded"
    # The last attempt in flight failed and the payer (or the router's failover) may try again.
    REOPENED = "reopened"
    # The last attempt in flight failed and nobody will try again.
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    CLOSED_BY_MERCHANT = "closed_by_merchant"
    EXPIRED = "expired"


# `processing` means "at least one attempt may still move money". A payment leaves it only when an
# attempt succeeds or the last attempt in flight fails, so a payment can never be closed while a
# bank might still take the payer's money. A payer who abandons bank A's page and picks bank B
# starts a second attempt while the first is unresolved (the processing → processing row); the
# first to succeed wins and any later success is refunded (see services/payments.py).
TRANSITIONS: Final[Mapping[tuple[PaymentStatus, PaymentEvent], PaymentStatus]] = {
    (PaymentStatus.CREATED, PaymentEvent.ATTEMPT_STARTED): PaymentStatus.PROCESSING,
    (PaymentStatus.CREATED, PaymentEvent.CLOSED_BY_MERCHANT): PaymentStatus.CLOSED,
    (PaymentStatus.CREATED, PaymentEvent.EXPIRED): PaymentStatus.CLOSED,
    (PaymentStatus.PROCESSING, PaymentEvent.ATTEMPT_STARTED): PaymentStatus.PROCESSING,
    (PaymentStatus.PROCESSING, PaymentEvent.ATTEMPT_SUCCEEDED): PaymentStatus.SUCCEEDED,
    (PaymentStatus.PROCESSING, PaymentEvent.REOPENED): PaymentStatus.CREATED,
    (PaymentStatus.PROCESSING, PaymentEvent.ATTEMPTS_EXHAUSTED): PaymentStatus.FAILED,
}


def next_state(status: PaymentStatus, event: PaymentEvent) -> PaymentStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(
            f"a payment that is {status.value} cannot take the event {event.value}", param="status"
        ) from None


class AttemptStatus(enum.StrEnum):
    # The intent is persisted and the bank may or may not have been called yet (DESIGN.md §7).
    CREATED = "created"
    # The bank accepted the order and will answer later (notification or query).
    PROCESSING = "processing"
    # We do not know whether the bank moved money (a timeout, a 5xx, a bad signature): query it.
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_in_flight(self) -> bool:
        """Whether this attempt may still move money."""
        return self in (AttemptStatus.CREATED, AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN)


class AttemptEvent(enum.StrEnum):
    """A bank's answer about one attempt, in the platform's outcome vocabulary."""

    PENDING = "pending"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    # Declined, or never submitted (NOT_SUBMITTED, or a query finding no such order): the failure
    # code on the attempt says which. Either way no money moved.
    FAILED = "failed"


# Only an explicit answer is final: an unknown attempt is resolved by querying the bank, never by
# submitting again, and a failed or succeeded attempt never changes its mind (a bank that does is a
# reconciliation difference, handled there).
ATTEMPT_TRANSITIONS: Final[Mapping[tuple[AttemptStatus, AttemptEvent], AttemptStatus]] = {
    (AttemptStatus.CREATED, AttemptEvent.PENDING): AttemptStatus.PROCESSING,
    (AttemptStatus.CREATED, AttemptEvent.UNKNOWN): AttemptStatus.UNKNOWN,
    (AttemptStatus.CREATED, AttemptEvent.SUCCEEDED): AttemptStatus.SUCCEEDED,
    (AttemptStatus.CREATED, AttemptEvent.FAILED): AttemptStatus.FAILED,
    (AttemptStatus.PROCESSING, AttemptEvent.SUCCEEDED): AttemptStatus.SUCCEEDED,
    (AttemptStatus.PROCESSING, AttemptEvent.FAILED): AttemptStatus.FAILED,
    (AttemptStatus.UNKNOWN, AttemptEvent.PENDING): AttemptStatus.PROCESSING,
    (AttemptStatus.UNKNOWN, AttemptEvent.SUCCEEDED): AttemptStatus.SUCCEEDED,
    (AttemptStatus.UNKNOWN, AttemptEvent.FAILED): AttemptStatus.FAILED,
}


def next_attempt_state(status: AttemptStatus, event: AttemptEvent) -> AttemptStatus:
    try:
        return ATTEMPT_TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(
            f"an attempt that is {status.value} cannot take the event {event.value}", param="status"
        ) from None


# ---- creation rules -------------------------------------------------------------------------------

OUT_TRADE_NO_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
BANK_CODE_PATTERN: Final = re.compile(r"[A-Z]{2,10}")
MAX_SUBJECT_CHARS: Final = 128
MAX_DESCRIPTION_CHARS: Final = 512
MAX_URL_CHARS: Final = 2048
MAX_METADATA_KEYS: Final = 20
MAX_METADATA_KEY_CHARS: Final = 40
MAX_METADATA_VALUE_CHARS: Final = 500
MIN_EXPIRY: Final = timedelta(minutes=1)
MAX_EXPIRY: Final = timedelta(days=7)
DEFAULT_EXPIRY: Final = timedelta(minutes=30)


class InvalidPayment(DomainError):
    """A payment request breaks a creation rule; ``param`` names the offending field."""

    code = "payment_invalid"


class InvalidAmount(InvalidPayment):
    code = "amount_invalid"


# The same codes the merchant API's AmountMinor type answers with, so every entry point agrees.
class AmountTooSmall(InvalidAmount):
    code = "amount_too_small"


class AmountTooLarge(InvalidAmount):
    code = "amount_too_large"


class UnsupportedCurrency(InvalidPayment):
    code = "currency_unsupported"


class InvalidOutTradeNo(InvalidPayment):
    code = "out_trade_no_invalid"


class InvalidSubject(InvalidPayment):
    code = "subject_invalid"


class InvalidDescription(InvalidPayment):
    code = "description_invalid"


class InvalidUrl(InvalidPayment):
    code = "url_invalid"


class InvalidExpiry(InvalidPayment):
    code = "expires_at_invalid"


class InvalidMetadata(InvalidPayment):
    code = "metadata_invalid"


class BankRequired(InvalidPayment):
    code = "bank_required"


class BankNotApplicable(InvalidPayment):
    code = "bank_not_applicable"


class InvalidBank(InvalidPayment):
    code = "bank_invalid"


class MethodNotAllowed(InvalidPayment):
    """The method cannot be requested this way (POS payments come only from the POS front)."""

    code = "payment_method_not_allowed"


class PaymentExpired(DomainError):
    """A payer tried to start an attempt on a payment whose time is up."""

    code = "payment_expired"


class AmountMismatch(DomainError):
    """A bank reported an amount other than the one the attempt asked for: nothing is recorded."""

    code = "amount_mismatch"
    kind = "api_error"


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What a merchant (or the POS front) asks for, before validation gives it an id and a state."""

    merchant_id: str
    out_trade_no: str
    amount: Money
    method: PaymentMethod
    subject: str
    bank: str | None = None
    description: str | None = None
    notify_url: str | None = None
    return_url: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None

    def fingerprint(self) -> str:
        """A hash of the request's canonical form: a repeat with another body is a conflict.

        Only what the merchant sent is hashed (an omitted expiry stays omitted), so a retry of the
        same request hashes the same even though its default expiry would now be later.
        """
        canonical = {
            "amount": self.amount.minor,
            "currency": self.amount.currency.code,
            "method": self.method.value,
            "bank": self.bank,
            "subject": self.subject,
            "description": self.description,
            "notify_url": self.notify_url,
            "return_url": self.return_url,
            "metadata": dict(self.metadata),
            # The same instant written in another time zone is the same request.
            "expires_at": None if self.expires_at is None else self.expires_at.astimezone(UTC).isoformat(),
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    merchant_id: str
    out_trade_no: str
    amount: Money
    method: PaymentMethod
    bank: str | None
    subject: str
    description: str | None
    notify_url: str | None
    return_url: str | None
    metadata: Mapping[str, str]
    expires_at: datetime
    status: PaymentStatus
    refunded_amount: Money
    fee_amount: Money
    created_at: datetime
    updated_at: datetime
    succeeded_attempt_id: str | None = None

    def is_expired_at(self, now: datetime) -> bool:
        return now >= self.expires_at

    def moved_to(self, event: PaymentEvent, now: datetime) -> Payment:
        """This payment after ``event``; raises IllegalTransition when the table forbids it."""
        return replace(self, status=next_state(self.status, event), updated_at=now)


@dataclass(frozen=True, slots=True)
class PaymentAttempt:
    id: str
    payment_id: str
    channel: str
    bank: str
    status: AttemptStatus
    amount: Money
    created_at: datetime
    updated_at: datetime
    bank_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None

    def moved_to(self, event: AttemptEvent, now: datetime) -> PaymentAttempt:
        return replace(self, status=next_attempt_state(self.status, event), updated_at=now)


def new_payment(request: PaymentRequest, *, payment_id: str, now: datetime) -> Payment:
    """Validates a request and returns the payment it creates, in ``created``."""
    check_request(request, now)
    return Payment(
        id=payment_id,
        merchant_id=request.merchant_id,
        out_trade_no=request.out_trade_no,
        amount=request.amount,
        method=request.method,
        bank=request.bank,
        subject=request.subject,
        description=request.description,
        notify_url=request.notify_url,
        return_url=request.return_url,
        metadata=dict(sorted(request.metadata.items())),
        expires_at=request.expires_at or now + DEFAULT_EXPIRY,
        status=PaymentStatus.CREATED,
        refunded_amount=Money.zero(request.amount.currency),
        fee_amount=Money.zero(request.amount.currency),
        created_at=now,
        updated_at=now,
    )


def check_request(request: PaymentRequest, now: datetime) -> None:
    """Raises the named error of the first creation rule the request breaks."""
    check_amount(request.amount)
    check_out_trade_no(request.out_trade_no)
    check_bank(request.method, request.bank)
    check_subject(request.subject)
    if request.description is not None and len(request.description) > MAX_DESCRIPTION_CHARS:
        raise InvalidDescription(
            f"description is at most {MAX_DESCRIPTION_CHARS} characters", param="description"
        )
    check_url(request.notify_url, param="notify_url")
    check_url(request.return_url, param="return_url")
    check_metadata(request.metadata)
    if request.expires_at is not None:
        check_expiry(request.expires_at, now)


def check_amount(amount: Money) -> None:
    if amount.currency is not Currency.CNY:
        raise UnsupportedCurrency(f"{amount.currency.code} is not accepted; use CNY", param="currency")
    if amount.minor <= 0:
        raise AmountTooSmall("amount must be a positive number of fen", param="amount")
    if amount.minor > MAX_AMOUNT_MINOR:
        raise AmountTooLarge(f"amount may not exceed {MAX_AMOUNT_MINOR} fen", param="amount")


def check_out_trade_no(out_trade_no: str) -> None:
    if OUT_TRADE_NO_PATTERN.fullmatch(out_trade_no) is None:
        raise InvalidOutTradeNo(
            "out_trade_no is 1–64 characters of A–Z, a–z, 0–9, '_' and '-'", param="out_trade_no"
        )


def check_bank(method: PaymentMethod, bank: str | None) -> None:
    if bank is None:
        if method.requires_bank:
            raise BankRequired(f"method {method.value} needs a bank", param="bank")
        return
    if not method.requires_bank:
        raise BankNotApplicable(f"method {method.value} does not take a bank", param="bank")
    if BANK_CODE_PATTERN.fullmatch(bank) is None:
        raise InvalidBank("bank is a bank code such as HBB", param="bank")


def check_subject(subject: str) -> None:
    if not subject.strip() or len(subject) > MAX_SUBJECT_CHARS:
        raise InvalidSubject(f"subject is 1–{MAX_SUBJECT_CHARS} characters", param="subject")


def check_url(url: str | None, *, param: str) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL_CHARS:
        raise InvalidUrl(f"{param} must be an http or https URL of at most {MAX_URL_CHARS} characters", param=param)


def check_metadata(metadata: Mapping[str, object]) -> None:
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidMetadata(f"metadata holds at most {MAX_METADATA_KEYS} keys", param="metadata")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
            raise InvalidMetadata(
                f"metadata keys are 1–{MAX_METADATA_KEY_CHARS} characters", param=f"metadata[{key}]"
            )
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidMetadata(
                f"metadata values are strings of at most {MAX_METADATA_VALUE_CHARS} characters",
                param=f"metadata[{key}]",
            )


def check_expiry(expires_at: datetime, now: datetime) -> None:
    if expires_at.tzinfo is None:
        raise InvalidExpiry("expires_at needs a time zone", param="expires_at")
    if not MIN_EXPIRY <= expires_at - now <= MAX_EXPIRY:
        raise InvalidExpiry("expires_at is between 1 minute and 7 days from now", param="expires_at")


def check_attempt_allowed(payment: Payment, bank: str, now: datetime) -> None:
    """Raises unless the payer may start an attempt at ``bank`` now.

    The state itself is checked by the transition table; this adds what the table cannot know: the
    clock, and that an online-banking payment goes to the bank the merchant named.
    """
    if payment.is_expired_at(now):
        raise PaymentExpired(f"payment {payment.id} expired at {payment.expires_at.isoformat()}")
    if payment.bank is not None and bank != payment.bank:
        raise InvalidBank(f"payment {payment.id} is to be paid at {payment.bank}", param="bank")
    next_state(payment.status, PaymentEvent.ATTEMPT_STARTED)


def event_after_failure(
    payment: Payment, attempts: Sequence[PaymentAttempt], *, retry_expected: bool
) -> PaymentEvent | None:
    """The payment event an attempt's failure causes, given every attempt after that failure.

    None while another attempt is still in flight (it may yet succeed) or when the payment is no
    longer processing (another attempt already succeeded).
    """
    if payment.status is not PaymentStatus.PROCESSING:
        return None
    if any(attempt.status.is_in_flight for attempt in attempts):
        return None
    if retry_expected or payment.method.is_payer_present:
        return PaymentEvent.REOPENED
    return PaymentEvent.ATTEMPTS_EXHAUSTED
