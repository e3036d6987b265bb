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

from tianpay.domain.errors import DomainError
from tianpay.domain.money import Money

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
