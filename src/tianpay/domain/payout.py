"""Payouts (代付): money leaving a merchant's available balance or a member's wallet for a bank account.

The lifecycle is a transition table (``created → processing → succeeded | failed``, ``unknown``
resolved by querying the same batch, ``succeeded → returned`` on a bounce, 退票; a payout at or above
its review threshold starts in ``pending_review`` until a person approves or rejects it). Creation
rules, the review rule, the payee account's checks and the routing rule (which reserve pays) are pure
functions here.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from tianpay.domain.console import BankSwitchedOff
from tianpay.domain.errors import DomainError, IllegalTransition
from tianpay.domain.ledger import AccountSpec, member_wallet, merchant_available
from tianpay.domain.money import Money
from tianpay.domain.payment import check_amount


class PayoutSource(enum.StrEnum):
    """Whose money the payout is, which decides the ledger account it leaves."""

    # A merchant's payout (POST /v1/payouts, or a settlement paid out): merchant:M:available.
    MERCHANT = "merchant"
    # A member's withdrawal from the wallet to one of its bound cards: member:U:wallet.
    MEMBER = "member"


class PayoutStatus(enum.StrEnum):
    # At or above its review threshold: the money is reserved (the submit entry is posted) as for
    # ``created``, but no batch takes it until an operator approves it (人工审核).
    PENDING_REVIEW = "pending_review"
    # The money is reserved (the submit entry is posted); the payout waits for the next batch.
    CREATED = "created"
    # In a batch persisted before the bank call; the bank accepted it, or has not answered yet.
    PROCESSING = "processing"
    # We do not know whether the bank moved the money (a timeout, an intermediate code): query it.
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    # Declined, or certainly never accepted: the submit entry is reversed and the money is back.
    FAILED = "failed"
    # It succeeded, then the payee's bank sent it back (退票): the money is back where it came from.
    RETURNED = "returned"

    @property
    def is_in_flight(self) -> bool:
        """Whether the bank may still move this payout's money (the re-query job looks at these)."""
        return self in (PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN)

    @property
    def is_final(self) -> bool:
        return self in (PayoutStatus.SUCCEEDED, PayoutStatus.FAILED, PayoutStatus.RETURNED)

    @property
    def public(self) -> str:
        """The status merchants see: ``unknown`` is ours to resolve, so they see ``processing``."""
        return PayoutStatus.PROCESSING.value if self is PayoutStatus.UNKNOWN else self.value


class PayoutEvent(enum.StrEnum):
    """What can happen to a payout: it is batched, or a bank answers about it."""

    # The dispatcher put it in a batch, committed, and is about to send that batch.
    BATCHED = "batched"
    PENDING = "pending"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    # Declined, or certainly never submitted (NOT_SUBMITTED): no money moved either way.
    FAILED = "failed"
    # The payee's bank returned a payout that had succeeded (BCB 300001).
    RETURNED = "returned"
    # An operator with ``payouts.review`` let a held payout go to the next batch, or refused it
    # (nothing was sent, so the refusal is final at once and the money goes back).
    APPROVED = "approved"
    REJECTED = "rejected"


# Only an explicit answer is final. A repeated or late PENDING/UNKNOWN is no news and has no row
# here (recording it is a no-op). A final payout never changes its mind, except that a success can
# bounce; a bank that contradicts a final state otherwise is an operator's case (an alert).
TRANSITIONS: Final[Mapping[tuple[PayoutStatus, PayoutEvent], PayoutStatus]] = {
    (PayoutStatus.PENDING_REVIEW, PayoutEvent.APPROVED): PayoutStatus.CREATED,
    (PayoutStatus.PENDING_REVIEW, PayoutEvent.REJECTED): PayoutStatus.FAILED,
    (PayoutStatus.CREATED, PayoutEvent.BATCHED): PayoutStatus.PROCESSING,
    (PayoutStatus.PROCESSING, PayoutEvent.UNKNOWN): PayoutStatus.UNKNOWN,
    (PayoutStatus.PROCESSING, PayoutEvent.SUCCEEDED): PayoutStatus.SUCCEEDED,
    (PayoutStatus.PROCESSING, PayoutEvent.FAILED): PayoutStatus.FAILED,
    (PayoutStatus.UNKNOWN, PayoutEvent.PENDING): PayoutStatus.PROCESSING,
    (PayoutStatus.UNKNOWN, PayoutEvent.SUCCEEDED): PayoutStatus.SUCCEEDED,
    (PayoutStatus.UNKNOWN, PayoutEvent.FAILED): PayoutStatus.FAILED,
    (PayoutStatus.SUCCEEDED, PayoutEvent.RETURNED): PayoutStatus.RETURNED,
}


def next_state(status: PayoutStatus, event: PayoutEvent) -> PayoutStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(
            f"a payout that is {status.value} cannot take the event {event.value}", param="status"
        ) from None


# The failure code a payout refused in review carries (API, ``payout.failed`` webhook, wallet page).
REJECTED_IN_REVIEW: Final = "rejected_in_review"
# What the merchant (or member) reads as the failure message of a refused payout. The operator's own
# reason stays in the audit log and the transition trail: it may name a suspicion that must not be
# told to the account holder (anti-money-laundering "tipping off").
REJECTED_IN_REVIEW_MESSAGE: Final = "the platform's review refused this payout; the money is back in the balance"
# The largest review threshold an operator may set (¥100,000,000.00): anything above is a typo.
MAX_REVIEW_THRESHOLD_MINOR: Final = 10_000_000_000


# ---- errors -------------------------------------------------------------------------------------------

OUT_PAYOUT_NO_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
ACCOUNT_NO_PATTERN: Final = re.compile(r"[0-9]{8,32}")
MAX_ACCOUNT_NAME_CHARS: Final = 60
MAX_PURPOSE_CHARS: Final = 60
# The banks a payee account may be at (BANKS.md): the platform pays HBB and BCB accounts from its
# reserve there, and any other bank's through BCB and the interbank clearing.
PAYEE_BANKS: Final = ("HBB", "JHB", "BCB")
# The bank that pays a payee whose own bank has no payout channel here (docs/clearing.md).
CLEARING_BANK: Final = "BCB"


class InvalidPayout(DomainError):
    """A payout request breaks a creation rule; ``param`` names the offending field."""

    code = "payout_invalid"


class InvalidOutPayoutNo(InvalidPayout):
    code = "out_payout_no_invalid"


class InvalidPayeeAccount(InvalidPayout):
    """The payee's bank, account number or name is not one the platform can pay."""

    code = "payee_account_invalid"


class InvalidPurpose(InvalidPayout):
    code = "purpose_invalid"


class PayoutNotSupported(InvalidPayout):
    """No bank the platform pays out through can reach this payee now."""

    code = "payout_not_supported"


class InvalidReviewThreshold(DomainError):
    code = "review_threshold_invalid"


# ---- values -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayeeAccount:
    """Where the money goes. The number is in clear only in memory, between the request and the vault."""

    bank: str
    account_no: str
    account_name: str

    def __repr__(self) -> str:
        # Whatever prints this value (a traceback, a debugger) must not show the account number.
        return f"PayeeAccount(bank={self.bank!r}, account_no=<sealed>, account_name={self.account_name!r})"


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    """What a merchant asks for: ``out_payout_no`` is its own number and the idempotency key.

    ``account`` is None when the merchant asks for its settlement account (``to_settlement_account``).
    """

    out_payout_no: str
    amount: Money
    purpose: str
    account: PayeeAccount | None

    def fingerprint(self, account_fingerprint: str | None) -> str:
        """A hash of the request (the account by its keyed fingerprint, never in clear): the same
        number for another body is a conflict."""
        canonical = {
            "amount": self.amount.minor,
            "currency": self.amount.currency.code,
            "purpose": self.purpose,
            "to_settlement_account": self.account is None,
            "bank": None if self.account is None else self.account.bank,
            "account": account_fingerprint,
            "account_name": None if self.account is None else self.account.account_name,
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    source: PayoutSource
    # Exactly one of the two is set, by ``source``.
    merchant_id: str | None
    member_id: str | None
    # The merchant's number (None for a wallet withdrawal or a settlement's automatic payout).
    out_payout_no: str | None
    amount: Money
    purpose: str
    payee_bank: str
    account_name: str
    account_masked: str
    account_fingerprint: str
    # The payee account number sealed by the vault (merchant payouts), or None when the number is a
    # bound card's, sealed once in ``card_bindings`` (``card_id``).
    account_sealed: str | None
    card_id: str | None
    # The bank whose reserve pays (the payee's own bank, or CLEARING_BANK).
    bank: str
    status: PayoutStatus
    created_at: datetime
    updated_at: datetime
    batch_id: str | None = None
    settlement_id: str | None = None
    bank_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    succeeded_at: datetime | None = None
    failed_at: datetime | None = None
    returned_at: datetime | None = None

    def moved_to(self, event: PayoutEvent, now: datetime) -> Payout:
        """This payout after ``event``; raises IllegalTransition when the table forbids it."""
        status = next_state(self.status, event)
        return replace(
            self,
            status=status,
            updated_at=now,
            succeeded_at=now if status is PayoutStatus.SUCCEEDED else self.succeeded_at,
            failed_at=now if status is PayoutStatus.FAILED else self.failed_at,
            returned_at=now if status is PayoutStatus.RETURNED else self.returned_at,
        )

    @property
    def source_account(self) -> AccountSpec:
        """The ledger account the money leaves (and comes back to on a failure or a bounce)."""
        return payout_source_account(self.source, merchant_id=self.merchant_id, member_id=self.member_id)


@dataclass(frozen=True, slots=True)
class PayoutBatchRecord:
    """A batch as the platform keeps it: one request to one bank, persisted before it is sent."""

    id: str
    bank: str
    payout_ids: Sequence[str]
    total: Money
    created_at: datetime
    next_query_at: datetime | None
    query_count: int = 0
    # Set once every payout in the batch is final: nothing left to query.
    closed_at: datetime | None = None


# ---- rules --------------------------------------------------------------------------------------------


def payout_source_account(source: PayoutSource, *, merchant_id: str | None, member_id: str | None) -> AccountSpec:
    if source is PayoutSource.MERCHANT:
        if merchant_id is None:
            raise InvalidPayout("a merchant payout names its merchant", param="merchant_id")
        return merchant_available(merchant_id)
    if member_id is None:
        raise InvalidPayout("a withdrawal names its member", param="member_id")
    return member_wallet(member_id)


def needs_review(amount: Money, threshold_minor: int | None) -> bool:
    """Whether a payout of ``amount`` waits for a person: at or above the threshold; None means never."""
    return threshold_minor is not None and amount.minor >= threshold_minor


def initial_status(amount: Money, threshold_minor: int | None) -> PayoutStatus:
    """``pending_review`` at or above the threshold, else ``created`` (straight to the next batch)."""
    return PayoutStatus.PENDING_REVIEW if needs_review(amount, threshold_minor) else PayoutStatus.CREATED


def check_review_threshold(threshold_minor: int | None) -> int | None:
    """A review threshold in fen: None (no review) or 1 to MAX_REVIEW_THRESHOLD_MINOR."""
    if threshold_minor is not None and not 1 <= threshold_minor <= MAX_REVIEW_THRESHOLD_MINOR:
        raise InvalidReviewThreshold(
            f"a review threshold is ¥0.01 to ¥{MAX_REVIEW_THRESHOLD_MINOR // 100:,}, or empty for no review",
            param="review_threshold",
        )
    return threshold_minor


def sending_bank(
    payee_bank: str, payout_banks: Sequence[str], *, switched_off: Collection[str], param: str = "account.bank"
) -> str:
    """Which reserve pays: the payee's own bank when it has a payout channel, else BCB via clearing.

    ``switched_off`` are the banks an operator switched off in the console. The switch is one per bank
    for every product, so a new payout neither goes to an account at such a bank nor through its
    reserve: BankSwitchedOff. It is not rerouted through the clearing instead, which would move the
    payout onto another bank's reserve unasked, towards a bank the operator has just taken out of
    service. ``param`` names the request field the refusal is about (a withdrawal's is ``card_id``).
    """
    if payee_bank in switched_off:
        raise BankSwitchedOff(f"payouts to {payee_bank} accounts are paused now; try again later", param=param)
    if payee_bank in payout_banks:
        return payee_bank
    if CLEARING_BANK not in payout_banks:
        raise PayoutNotSupported(f"no payout channel reaches {payee_bank} accounts now; try again later", param=param)
    if CLEARING_BANK in switched_off:
        raise BankSwitchedOff(
            f"payouts to {payee_bank} accounts go through {CLEARING_BANK}, which is paused now; try again later",
            param=param,
        )
    return CLEARING_BANK


def check_purpose(purpose: str) -> None:
    if not purpose.strip() or len(purpose) > MAX_PURPOSE_CHARS:
        raise InvalidPurpose(f"purpose is 1–{MAX_PURPOSE_CHARS} characters", param="purpose")


def check_payee(account: PayeeAccount) -> None:
    """Raises InvalidPayeeAccount for an unknown bank, a malformed number or a missing name.

    The message never repeats the number: it may be logged or shown.
    """
    if account.bank not in PAYEE_BANKS:
        raise InvalidPayeeAccount(
            f"bank must be one of {', '.join(PAYEE_BANKS)}", param="account.bank"
        )
    if ACCOUNT_NO_PATTERN.fullmatch(account.account_no) is None:
        raise InvalidPayeeAccount("account_no is 8–32 digits", param="account.account_no")
    name = account.account_name.strip()
    if not name or len(name) > MAX_ACCOUNT_NAME_CHARS:
        raise InvalidPayeeAccount(
            f"account_name is 1–{MAX_ACCOUNT_NAME_CHARS} characters", param="account.account_name"
        )


def check_request(request: PayoutRequest) -> None:
    """Raises the named error of the first creation rule a merchant's request breaks."""
    check_amount(request.amount)
    if OUT_PAYOUT_NO_PATTERN.fullmatch(request.out_payout_no) is None:
        raise InvalidOutPayoutNo(
            "out_payout_no is 1–64 characters of A–Z, a–z, 0–9, '_' and '-'", param="out_payout_no"
        )
    check_purpose(request.purpose)
    if request.account is not None:
        check_payee(request.account)


def mask_account_no(account_no: str) -> str:
    """``623099*********0033``: the first six digits and the last four, as card numbers are shown."""
    if len(account_no) < 11:
        return "*" * (len(account_no) - 4) + account_no[-4:]
    return account_no[:6] + "*" * (len(account_no) - 10) + account_no[-4:]
