"""The channel port: what services ask of a bank, and the one outcome vocabulary every bank maps to.

Only an explicit, verified bank answer is final: a timeout, a 5xx or a bad signature is UNKNOWN and
is resolved by querying, never by submitting again (DESIGN.md §7).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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


@dataclass(frozen=True, slots=True)
class BankNotification:
    """A verified asynchronous notification from a bank about one attempt or refund."""

    kind: str  # "payment" or "refund"
    platform_reference: str  # our attempt id or refund id, as we sent it
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


class ChannelDirectory(Protocol):
    """The channels the platform is connected to, by bank code (``HBB``, ``JHB`` …)."""

    def online_banking(self, bank: str) -> OnlineBankingChannel:
        """The bank's online-banking channel; raises NotFound for a bank that offers none."""
        ...

    def refunds(self, bank: str) -> RefundChannel: ...

    def online_banking_banks(self) -> list[str]:
        """Banks a payer can choose at the cashier, in display order."""
        ...
