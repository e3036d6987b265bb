"""Posting rules: which journal entry each business event produces (DESIGN.md §4), as pure functions.

Every rule names its event and source, so the entry id derives from (event, source id) and posting
the same event twice is a no-op. Services decide *when* an event happened; these functions decide
*what* it moves.
"""

from __future__ import annotations

from typing import Final

from tianpay.domain.ledger import (
    PLATFORM_FEE_INCOME,
    PLATFORM_SUSPENSE,
    JournalEntry,
    Posting,
    bank_reserve,
    credit,
    debit,
    merchant_pending,
)
from tianpay.domain.money import Money

PAYMENT_SUCCEEDED: Final = "payment.succeeded"
LATE_ATTEMPT_SUCCEEDED: Final = "payment_attempt.late_succeeded"


def bank_payment_succeeded(
    *, payment_id: str, merchant_id: str, bank: str, amount: Money, fee: Money
) -> JournalEntry:
    """A gateway, quick-pay, direct-debit or POS payment succeeded at ``bank``.

    Dr ``bank:B:reserve`` / Cr ``merchant:M:pending`` for the amount; then the fee, Dr
    ``merchant:M:pending`` / Cr ``platform:fee_income``. The source is the payment, not the attempt:
    a payment credits its merchant at most once, whichever attempt carried the money.
    """
    if not amount.is_positive:
        raise ValueError("a succeeded payment moves a positive amount")
    if fee.minor < 0 or fee.minor > amount.minor:
        raise ValueError("a fee is between zero and the amount")
    legs: list[Posting] = [
        debit(bank_reserve(bank), amount),
        credit(merchant_pending(merchant_id), amount),
    ]
    # A zero fee (a free plan) has no legs: a posting of zero moves nothing and is refused.
    if fee.is_positive:
        legs += [debit(merchant_pending(merchant_id), fee), credit(PLATFORM_FEE_INCOME, fee)]
    return JournalEntry(PAYMENT_SUCCEEDED, payment_id, tuple(legs), f"payment {payment_id} succeeded at {bank}")


def late_attempt_succeeded(*, attempt_id: str, payment_id: str, bank: str, amount: Money) -> JournalEntry:
    """A second attempt of a payment that had already succeeded also took the payer's money.

    The money is in the bank reserve but belongs to neither the merchant nor the platform: it is
    owed back to the payer. Until the refund machinery returns it, it sits in ``platform:suspense``
    (Dr ``bank:B:reserve`` / Cr ``platform:suspense``), so the bank statement still matches the
    ledger and the suspense balance shows what the platform owes.
    """
    if not amount.is_positive:
        raise ValueError("a succeeded attempt moves a positive amount")
    return JournalEntry(
        LATE_ATTEMPT_SUCCEEDED,
        attempt_id,
        (debit(bank_reserve(bank), amount), credit(PLATFORM_SUSPENSE, amount)),
        f"attempt {attempt_id} of payment {payment_id} succeeded after another did; to be refunded",
    )
