"""The channel port: what services ask of a bank, and the one outcome vocabulary every bank maps to.

Only an explicit, verified bank answer is final: a timeout, a 5xx or a bad signature is UNKNOWN and
is resolved by querying, never by submitting again (DESIGN.md §7).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, Protocol

from tianpay.domain.money import Money


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"
    UNKNOWN = "unknown"
    NOT_SUBMITTED = "not_submitted"

    @property
    def is_final(self) -> bool:
        return self in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.NOT_SUBMITTED)

    @property
    def allows_failover(self) -> bool:
        """Another channel may be tried only when this one certainly moved no money."""
        return self in (Outcome.FAILED, Outcome.NOT_SUBMITTED)


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """A bank's answer mapped to the outcome vocabulary, with what the platform must record.

    ``bank_code`` and ``bank_message`` are the bank's own (e.g. HBB ``respCode``), kept for operators
    and merchants; ``bank_reference`` is the bank's id for the transaction (HBB ``queryId``).
    """

    outcome: Outcome
    bank_reference: str | None = None
    amount: Money | None = None
    bank_code: str | None = None
    bank_message: str = ""
    settle_date: str | None = None


@dataclass(frozen=True, slots=True)
class OnlineBankingOrder:
    """What the platform asks a bank to collect through its online-banking pages."""

    attempt_id: str
    amount: Money
    subject: str
    merchant_name: str
    created_at: datetime
    expires_at: datetime
    notify_url: str
    return_url: str


@dataclass(frozen=True, slots=True)
class RedirectForm:
    """A form the payer's browser submits to the bank (the cashier auto-submits it)."""

    method: str
    url: str
    fields: Mapping[str, str]


# BankNotification.kind of a bank's notice that the payer revoked a mandate at the bank.
KIND_MANDATE_REVOKED: Final = "mandate_revoked"


@dataclass(frozen=True, slots=True)
class BankNotification:
    """A verified asynchronous notification from a bank about one attempt or refund."""

    # "payment", "refund", or "mandate_revoked" (the payer revoked a mandate at the bank; the
    # result is SUCCEEDED with the bank's mandate number as ``bank_reference``).
    kind: str
    platform_reference: str  # our attempt id, refund id or mandate id, as we sent it
    result: ChannelResult


@dataclass(frozen=True, slots=True)
class NotificationAck:
    """What the bank expects back once a notification is processed (HBB: 200 ``ok``)."""

    status_code: int
    body: bytes
    content_type: str


class FormNotIssued(Exception):
    """The bank issued no payment page for an attempt; ``result.outcome`` says whether money can move.

    NOT_SUBMITTED or FAILED: the bank certainly took nothing and another channel may be tried.
    UNKNOWN: an order may exist at the bank (the answer timed out) and a query resolves it.
    """

    def __init__(self, bank: str, result: ChannelResult) -> None:
        super().__init__(f"{bank} issued no payment page: {result.outcome.value} {result.bank_code or ''}".rstrip())
        self.result = result


class InvalidNotification(Exception):
    """A notification that failed verification (signature, certificate, format); it changes nothing."""


class OnlineBankingChannel(Protocol):
    """A bank's online-banking (网银) interface: a signed redirect, a notification, a query."""

    code: str

    def payment_form(self, order: OnlineBankingOrder) -> RedirectForm:
        """The signed form that sends the payer to the bank's pages.

        Some banks (HBB) need no I/O for it; others (JHB ``ebank.pay``) must be called first and may
        refuse, in which case this raises FormNotIssued with the mapped outcome.
        """
        ...

    def query_payment(self, attempt_id: str, created_at: datetime) -> ChannelResult:
        """Asks the bank what became of an attempt. A timeout or bad answer is UNKNOWN."""
        ...

    def parse_notification(self, body: bytes, content_type: str) -> BankNotification:
        """Verifies and parses a notification; raises InvalidNotification for anything forged."""
        ...

    def notification_ack(self, accepted: bool) -> NotificationAck: ...


@dataclass(frozen=True, slots=True)
class RefundOrder:
    refund_id: str
    payment_attempt_id: str
    payment_bank_reference: str
    payment_created_at: datetime
    amount: Money
    created_at: datetime
    notify_url: str


class RefundChannel(Protocol):
    """A bank's refund interface: submit once, then query; never resubmit an unknown refund."""

    code: str

    def refund(self, order: RefundOrder) -> ChannelResult: ...

    def query_refund(self, refund_id: str, created_at: datetime) -> ChannelResult: ...


class PaymentQuery(Protocol):
    """Anything that can tell what became of one attempt: every payment interface can."""

    def query_payment(self, attempt_id: str, created_at: datetime) -> ChannelResult: ...


class ChannelDirectory(Protocol):
    """The channels the platform is connected to, by bank code (``HBB``, ``JHB`` …)."""

    def payment_query(self, bank: str) -> PaymentQuery:
        """The bank's query for payment attempts of any interface (online banking, quick pay, direct
        debit); raises NotFound for a bank the platform takes no payments through."""
        ...

    def online_banking(self, bank: str) -> OnlineBankingChannel:
        """The bank's online-banking channel; raises NotFound for a bank that offers none."""
        ...

    def refunds(self, bank: str) -> RefundChannel: ...

    def online_banking_banks(self) -> list[str]:
        """Banks a payer can choose at the cashier, in display order."""
        ...


# ---- quick pay (快捷支付): card binding with the four elements + SMS, then pay by token ---------------


class BindingFailure(enum.StrEnum):
    """Why a bank refused to bind a card, in the platform's words (the merchant API's error codes).

    Every adapter maps each of its bank's codes to exactly one of these; a code it does not know is
    ``BANK_DECLINED`` (a failure) only when the bank said "failed" explicitly.
    """

    CARD_ELEMENTS_MISMATCH = "card_elements_mismatch"
    CARD_FROZEN = "card_frozen"
    CARD_INVALID = "card_invalid"
    SMS_CODE_INVALID = "sms_code_invalid"
    SMS_CODE_EXPIRED = "sms_code_expired"
    SMS_CODE_ATTEMPTS_EXCEEDED = "sms_code_attempts_exceeded"
    BANK_DECLINED = "bank_declined"


@dataclass(frozen=True, slots=True)
class CardHolder:
    """The four elements (四要素) a bank checks before binding: none of them ever appears in a repr."""

    card_number: str = field(repr=False)
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    phone: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BindingRequest:
    """Asks the bank to check the four elements and text a code to the reserved phone.

    ``binding_id`` is our id for the binding (the bank's order number for it); ``member_ref``
    names the member to banks that tie agreements to a user (JHB ``user_id``).
    """

    binding_id: str
    member_ref: str
    holder: CardHolder
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BindingApplied:
    """The bank's answer to a binding request.

    SUCCEEDED: the code was texted and ``bank_token`` (when the bank gives one) must come back with
    it. FAILED carries ``failure``. NOT_SUBMITTED / UNKNOWN: no code can be relied on; the payer
    applies again (a binding moves no money, so nothing needs to be queried).
    """

    outcome: Outcome
    bank_token: str | None = field(default=None, repr=False)
    failure: BindingFailure | None = None
    bank_code: str | None = None
    bank_message: str = ""


@dataclass(frozen=True, slots=True)
class BindingConfirmation:
    """The SMS code the payer typed, with what the bank needs to finish the binding it started."""

    binding_id: str
    member_ref: str
    holder: CardHolder
    applied_at: datetime
    sms_code: str = field(repr=False)
    bank_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class BindingConfirmed:
    """SUCCEEDED with ``card_token`` (HBB ``token``, JHB ``no_agree``), or FAILED with ``failure``."""

    outcome: Outcome
    card_token: str | None = field(default=None, repr=False)
    failure: BindingFailure | None = None
    bank_code: str | None = None
    bank_message: str = ""


@dataclass(frozen=True, slots=True)
class QuickPayOrder:
    """A payment by a bound card: no payer step at the bank, the answer comes back on the call."""

    attempt_id: str
    member_ref: str
    amount: Money
    subject: str
    created_at: datetime
    notify_url: str
    card_token: str = field(repr=False)


class QuickPayChannel(Protocol):
    """A bank's quick-pay (快捷/协议支付) interface: bind a card in two steps, pay with its token.

    ``pay`` is sent exactly once; anything but an explicit answer is UNKNOWN and ``query_payment``
    resolves it (the same query as online banking: both are payments at the bank).
    """

    code: str

    def apply_binding(self, request: BindingRequest) -> BindingApplied: ...

    def confirm_binding(self, confirmation: BindingConfirmation) -> BindingConfirmed: ...

    def unbind(self, card_token: str, member_ref: str) -> ChannelResult:
        """Tells the bank to forget the agreement; a bank that keeps no agreement answers SUCCEEDED."""
        ...

    def pay(self, order: QuickPayOrder) -> ChannelResult: ...

    def query_payment(self, attempt_id: str, created_at: datetime) -> ChannelResult: ...


@dataclass(frozen=True, slots=True)
class QuickPayRoute:
    """What the router knows about one bank's quick-pay channel (configuration, not health).

    Limits are per payment in minor units; cost is what the bank charges the platform, used to
    prefer the cheaper of two healthy channels.
    """

    bank: str
    min_amount_minor: int
    max_amount_minor: int
    cost_bps: int
    cost_fixed_minor: int = 0

    def accepts(self, amount: Money) -> bool:
        return self.min_amount_minor <= amount.minor <= self.max_amount_minor

    def cost_minor(self, amount: Money) -> int:
        # Comparison only (never booked), so integer floor division is exact enough.
        return self.cost_fixed_minor + amount.minor * self.cost_bps // 10_000


class QuickPayDirectory(Protocol):
    """The quick-pay channels the platform is connected to, and their routing configuration."""

    def quick_pay(self, bank: str) -> QuickPayChannel:
        """The bank's quick-pay channel; raises NotFound for a bank that offers none here."""
        ...

    def quick_pay_routes(self) -> list[QuickPayRoute]:
        """Every quick-pay channel's route, in the platform's default preference order."""
        ...


# ---- direct debit (代扣): a mandate signed once with an SMS code, then debits with no payer step ------


@dataclass(frozen=True, slots=True)
class MandateApplication:
    """Asks the bank to text the payer a code for a mandate with these limits (amounts in minor units)."""

    mandate_id: str
    member_ref: str
    holder: CardHolder
    max_per_debit: Money
    max_per_month: Money
    valid_until: date
    purpose: str
    # Where the bank reports a revocation the payer makes at the bank ("" when none is wanted).
    notify_url: str = ""


@dataclass(frozen=True, slots=True)
class MandateAnswer:
    """SUCCEEDED with ``bank_ref`` (the apply token, or the bank's mandate number after confirm)."""

    outcome: Outcome
    bank_ref: str | None = field(default=None, repr=False)
    bank_code: str | None = None
    bank_message: str = ""


@dataclass(frozen=True, slots=True)
class DebitOrder:
    attempt_id: str
    amount: Money
    subject: str
    created_at: datetime
    notify_url: str
    bank_mandate_no: str = field(repr=False)


class DirectDebitChannel(Protocol):
    """A bank's direct-debit interface. ``debit`` is sent once; an unclear answer is resolved by
    ``query_payment``, never by a second debit."""

    code: str

    def apply_mandate(self, application: MandateApplication) -> MandateAnswer: ...

    def confirm_mandate(self, bank_token: str, sms_code: str) -> MandateAnswer: ...

    def revoke_mandate(self, bank_mandate_no: str) -> MandateAnswer: ...

    def debit(self, order: DebitOrder) -> ChannelResult: ...

    def query_payment(self, attempt_id: str, created_at: datetime) -> ChannelResult: ...


class DirectDebitDirectory(Protocol):
    def direct_debit(self, bank: str) -> DirectDebitChannel:
        """The bank's direct-debit channel; raises NotFound for a bank that offers none here."""
        ...
