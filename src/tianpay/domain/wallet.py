"""The wallet (account mode): a member's balance is the ``member:{id}:wallet`` ledger account.

A wallet payment is an attempt on the ``wallet`` channel whose success debits the wallet instead of
a bank reserve. A top-up is a payment to the platform's own merchant ``TOP_UP_MERCHANT_ID`` paid at
a bank as usual, whose success credits the wallet (and may then pay a waiting wallet payment).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from tianpay.domain.console import BankSwitchedOff
from tianpay.domain.errors import DomainError
from tianpay.domain.money import Money
from tianpay.domain.payment import InvalidBank

# The platform's merchant for top-ups, inserted by revision 0004 (it has no keys: no API access).
TOP_UP_MERCHANT_ID: Final = "mch_tianpay_wallet"
WALLET_CHANNEL: Final = "wallet"
# Where a wallet attempt "is": the attempt and refund tables name a bank, and the wallet is ours.
WALLET_BANK: Final = "WALLET"


class TopUpStatus(enum.StrEnum):
    CREATED = "created"
    CREDITED = "credited"


class ThenPayStatus(enum.StrEnum):
    """A top-up-and-pay's second step: the wallet payment made once the top-up is credited."""

    AWAITING = "awaiting"
    PAID = "paid"
    FAILED = "failed"


class NotPayableFromWallet(DomainError):
    code = "payment_method_not_allowed"


class TopUpBankSwitchedOff(BankSwitchedOff, InvalidBank):
    """An operator switched the bank off in the console: no new top-up goes to it (docs/console.md)."""


class FormKeyInvalid(DomainError):
    """A wallet form came without its one-time key (or with one we never issue): reload the page."""

    code = "form_key_invalid"


# Idempotency records are keyed by merchant; a member's wallet forms are recorded under the wallet's
# own merchant, with the member's id inside the key so that one member's key never meets another's.
FORM_KEY_OWNER: Final = TOP_UP_MERCHANT_ID
FORM_KEY_LENGTH_MAX: Final = 40


def member_form_key(member_id: str, form_key: str) -> str:
    """The idempotency key of one wallet form submission; FormKeyInvalid for a missing or odd key.

    The page renders a fresh random key into each form (``secrets.token_urlsafe``), so a second POST
    of the same form (a double click, a reload that resends) carries the same key.
    """
    is_well_formed = 0 < len(form_key) <= FORM_KEY_LENGTH_MAX and all(
        character.isascii() and (character.isalnum() or character in "-_") for character in form_key
    )
    if not is_well_formed:
        raise FormKeyInvalid("this form has expired; reload the page and try again", param="form_key")
    return f"{member_id}:{form_key}"


@dataclass(frozen=True, slots=True)
class WalletPayment:
    """Which member's wallet paid which payment (through which attempt)."""

    attempt_id: str
    payment_id: str
    member_id: str
    amount: Money
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TopUp:
    """A wallet top-up; its money moves through the payment ``payment_id`` (same id)."""

    payment_id: str
    member_id: str
    status: TopUpStatus
    created_at: datetime
    then_pay_payment_id: str | None = None
    then_pay_status: ThenPayStatus | None = None
    then_pay_failure: str | None = None
    credited_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WalletLine:
    """One movement on a wallet, for the history page: positive in, negative out."""

    created_at: datetime
    event: str
    source_id: str
    amount: Money
