"""Posting rules: which journal entry each business event produces (DESIGN.md §4), as pure functions.

Every rule names its event and source, so the entry id derives from (event, source id) and posting
the same event twice is a no-op. Services decide *when* an event happened; these functions decide
*what* it moves.
"""

from __future__ import annotations

from typing import Final

from tianpay.domain.ledger import (
    PLATFORM_BANK_COST,
    PLATFORM_FEE_INCOME,
    PLATFORM_SUSPENSE,
    AccountSpec,
    JournalEntry,
    Posting,
    bank_in_transit,
    bank_reserve,
    credit,
    debit,
    member_wallet,
    merchant_available,
    merchant_pending,
)
from tianpay.domain.money import Money

PAYMENT_SUCCEEDED: Final = "payment.succeeded"
LATE_ATTEMPT_SUCCEEDED: Final = "payment_attempt.late_succeeded"
REFUND_REQUESTED: Final = "refund.requested"
REFUND_SUCCEEDED: Final = "refund.succeeded"
REFUND_FAILED: Final = "refund.failed"


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


def refund_requested(
    *, refund_id: str, payment_id: str, merchant_id: str, bank: str, amount: Money, fee_returned: Money
) -> JournalEntry:
    """A merchant asked to refund ``amount`` of a payment made at ``bank``: the money leaves for the bank.

    Dr ``merchant:M:pending`` / Cr ``bank:B:in_transit`` for the amount, and the pro-rata fee return
    Dr ``platform:fee_income`` / Cr ``merchant:M:pending``. The pending balance may go negative when
    the payment was already settled (its money moved on to ``available``): that is allowed for now,
    and the settlement of the next day nets it (drawing on ``available`` comes with settlement).
    """
    if not amount.is_positive:
        raise ValueError("a refund moves a positive amount")
    if fee_returned.minor < 0 or fee_returned.minor > amount.minor:
        raise ValueError("a fee return is between zero and the refund")
    legs: list[Posting] = [
        debit(merchant_pending(merchant_id), amount),
        credit(bank_in_transit(bank), amount),
    ]
    # A zero return (a free plan, or a tiny refund whose share rounds to nothing) has no legs.
    if fee_returned.is_positive:
        legs += [debit(PLATFORM_FEE_INCOME, fee_returned), credit(merchant_pending(merchant_id), fee_returned)]
    return JournalEntry(
        REFUND_REQUESTED, refund_id, tuple(legs), f"refund {refund_id} of payment {payment_id} sent to {bank}"
    )


def late_success_refund_requested(*, refund_id: str, attempt_id: str, bank: str, amount: Money) -> JournalEntry:
    """The platform returns a late attempt's money (booked to ``platform:suspense``) to the payer.

    Dr ``platform:suspense`` / Cr ``bank:B:in_transit``: the suspense balance the late success
    created is cleared, and the merchant's accounts are never touched (it never saw that attempt).
    """
    if not amount.is_positive:
        raise ValueError("a refund moves a positive amount")
    return JournalEntry(
        REFUND_REQUESTED,
        refund_id,
        (debit(PLATFORM_SUSPENSE, amount), credit(bank_in_transit(bank), amount)),
        f"refund {refund_id} of late attempt {attempt_id} sent to {bank}",
    )


def refund_succeeded(*, refund_id: str, bank: str, amount: Money) -> JournalEntry:
    """The bank paid the refund out of the platform's reserve: Dr ``bank:B:in_transit`` / Cr ``bank:B:reserve``."""
    if not amount.is_positive:
        raise ValueError("a refund moves a positive amount")
    return JournalEntry(
        REFUND_SUCCEEDED,
        refund_id,
        (debit(bank_in_transit(bank), amount), credit(bank_reserve(bank), amount)),
        f"refund {refund_id} paid by {bank}",
    )


def refund_failed(requested: JournalEntry) -> JournalEntry:
    """The bank declined the refund (or never received it): the request entry is reversed, both legs.

    The reversal's id derives from the request entry's id, so recording a failure twice is a no-op.
    """
    if requested.event != REFUND_REQUESTED:
        raise ValueError("only a refund's request entry is reversed when it fails")
    return requested.reversal(REFUND_FAILED)


# ---- the wallet (account mode) ---------------------------------------------------------------------

WALLET_TOP_UP_SUCCEEDED: Final = "wallet_top_up.succeeded"


def wallet_payment_succeeded(
    *, payment_id: str, merchant_id: str, member_id: str, amount: Money, fee: Money
) -> JournalEntry:
    """A payment made from a member's wallet: Dr ``member:U:wallet`` / Cr ``merchant:M:pending``, + fee.

    The wallet may not go negative: posting this entry is what refuses an overdraft (the ledger's
    conditional write), so it must be the last write that can fail in its unit of work.
    """
    if not amount.is_positive:
        raise ValueError("a succeeded payment moves a positive amount")
    if fee.minor < 0 or fee.minor > amount.minor:
        raise ValueError("a fee is between zero and the amount")
    legs: list[Posting] = [debit(member_wallet(member_id), amount), credit(merchant_pending(merchant_id), amount)]
    if fee.is_positive:
        legs += [debit(merchant_pending(merchant_id), fee), credit(PLATFORM_FEE_INCOME, fee)]
    return JournalEntry(PAYMENT_SUCCEEDED, payment_id, tuple(legs), f"payment {payment_id} paid from a wallet")


def wallet_top_up_succeeded(*, top_up_id: str, member_id: str, bank: str, amount: Money) -> JournalEntry:
    """A top-up paid at ``bank``: Dr ``bank:B:reserve`` / Cr ``member:U:wallet`` (no fee)."""
    if not amount.is_positive:
        raise ValueError("a top-up moves a positive amount")
    return JournalEntry(
        WALLET_TOP_UP_SUCCEEDED,
        top_up_id,
        (debit(bank_reserve(bank), amount), credit(member_wallet(member_id), amount)),
        f"top-up {top_up_id} paid at {bank}",
    )


def wallet_refund(
    *, refund_id: str, payment_id: str, merchant_id: str, member_id: str, amount: Money, fee_returned: Money
) -> JournalEntry:
    """A refund of a wallet payment, back to the wallet at once: Dr ``merchant:M:pending`` / Cr
    ``member:U:wallet``, with the pro-rata fee return Dr ``platform:fee_income`` / Cr ``merchant:M:pending``.

    It is the refund's only entry (no bank, nothing in transit), booked under ``refund.succeeded``.
    """
    if not amount.is_positive:
        raise ValueError("a refund moves a positive amount")
    if fee_returned.minor < 0 or fee_returned.minor > amount.minor:
        raise ValueError("a fee return is between zero and the refund")
    legs: list[Posting] = [debit(merchant_pending(merchant_id), amount), credit(member_wallet(member_id), amount)]
    if fee_returned.is_positive:
        legs += [debit(PLATFORM_FEE_INCOME, fee_returned), credit(merchant_pending(merchant_id), fee_returned)]
    return JournalEntry(
        REFUND_SUCCEEDED, refund_id, tuple(legs), f"refund {refund_id} of wallet payment {payment_id}"
    )


POS_PAYMENT_VOIDED: Final = "pos_payment.voided"
POS_PAYMENT_REVERSED: Final = "pos_payment.reversed"
# A void that was itself reversed: TCS debits the card again, so the void's entry is undone.
POS_VOID_REVERSED: Final = "pos_payment.void_reversed"


def pos_payment_undone(
    *, payment_id: str, merchant_id: str, bank: str, amount: Money, fee: Money, voided: bool
) -> JournalEntry:
    """A POS payment voided the same day, or reversed: the exact mirror of its success entry.

    The switch already put the money back on the card (a void or a 0400 never reaches settlement,
    BANKS.md TCS), so the merchant's credit and the fee are both undone at once, with no
    in-transit leg: Dr ``merchant:M:pending`` / Cr ``bank:B:reserve``, and the fee returned.
    """
    success = bank_payment_succeeded(payment_id=payment_id, merchant_id=merchant_id, bank=bank, amount=amount, fee=fee)
    mirrored = tuple(Posting(leg.account, -leg.amount) for leg in success.postings)
    event = POS_PAYMENT_VOIDED if voided else POS_PAYMENT_REVERSED
    return JournalEntry(event, payment_id, mirrored, f"POS payment {payment_id} {'voided' if voided else 'reversed'}")


# ---- payouts (代付) and wallet withdrawals ------------------------------------------------------------

PAYOUT_SUBMITTED: Final = "payout.submitted"
PAYOUT_SUCCEEDED: Final = "payout.succeeded"
PAYOUT_FAILED: Final = "payout.failed"
PAYOUT_RETURNED: Final = "payout.returned"


def payout_submitted(*, payout_id: str, source: AccountSpec, bank: str, amount: Money) -> JournalEntry:
    """A payout was requested: the money leaves its owner for the bank, Dr ``source`` / Cr ``bank:B:in_transit``.

    ``source`` is ``merchant:M:available`` or ``member:U:wallet``; neither may go negative, so posting
    this entry is what refuses a payout the balance does not cover (the ledger's conditional write).
    It is booked when the payout is created, before it is batched, so the money is reserved at once.
    """
    if not amount.is_positive:
        raise ValueError("a payout moves a positive amount")
    return JournalEntry(
        PAYOUT_SUBMITTED,
        payout_id,
        (debit(source, amount), credit(bank_in_transit(bank), amount)),
        f"payout {payout_id} sent to {bank}",
    )


def payout_succeeded(*, payout_id: str, bank: str, amount: Money) -> JournalEntry:
    """The bank paid the payout out of the platform's reserve: Dr ``bank:B:in_transit`` / Cr ``bank:B:reserve``."""
    if not amount.is_positive:
        raise ValueError("a payout moves a positive amount")
    return JournalEntry(
        PAYOUT_SUCCEEDED,
        payout_id,
        (debit(bank_in_transit(bank), amount), credit(bank_reserve(bank), amount)),
        f"payout {payout_id} paid by {bank}",
    )


def payout_failed(submitted: JournalEntry) -> JournalEntry:
    """The bank declined the payout (or never accepted it): the submit entry is reversed, money back.

    The reversal's id derives from the submit entry's id, so recording a failure twice is a no-op.
    """
    if submitted.event != PAYOUT_SUBMITTED:
        raise ValueError("only a payout's submit entry is reversed when it fails")
    return submitted.reversal(PAYOUT_FAILED)


def payout_returned(*, payout_id: str, source: AccountSpec, bank: str, amount: Money) -> JournalEntry:
    """A succeeded payout bounced (退票): the money came back to the reserve and goes back to its owner.

    Dr ``bank:B:reserve`` / Cr ``source`` (the account it left). A new event, not a reversal: the
    success happened, and the statement shows both the payout and its return.
    """
    if not amount.is_positive:
        raise ValueError("a payout moves a positive amount")
    return JournalEntry(
        PAYOUT_RETURNED,
        payout_id,
        (debit(bank_reserve(bank), amount), credit(source, amount)),
        f"payout {payout_id} returned by {bank}",
    )


# ---- settlement (docs/settlement.md) ----------------------------------------------------------------

SETTLEMENT_SETTLED: Final = "settlement.settled"


def settlement_settled(*, settlement_id: str, merchant_id: str, business_date: str, net: Money) -> JournalEntry:
    """A merchant's settlement of a business date: its net moves from pending to available.

    Dr ``merchant:M:pending`` / Cr ``merchant:M:available`` for a positive net. A negative net (more
    refunded than collected) moves the other way, Dr ``available`` / Cr ``pending``, and the ledger
    refuses it when ``available`` cannot cover it (that account may not go negative). A zero net
    moves nothing and has no entry. The source is the settlement, so settling it again is a no-op.
    """
    if net.is_zero:
        raise ValueError("a settlement of zero moves nothing")
    legs = (debit(merchant_pending(merchant_id), net), credit(merchant_available(merchant_id), net))
    return JournalEntry(
        SETTLEMENT_SETTLED, settlement_id, legs, f"settlement {settlement_id} of {merchant_id} for {business_date}"
    )


# ---- reconciliation (对账, docs/clearing.md) -----------------------------------------------------------

BANK_CHARGES_BOOKED: Final = "bank_charges.booked"
RECONCILIATION_DIFFERENCE: Final = "reconciliation.difference"
RECONCILIATION_PLATFORM_ONLY: Final = "reconciliation.platform_only"
RECONCILIATION_BOOKED_TO_SUSPENSE: Final = "reconciliation.booked_to_suspense"


def bank_charges(*, bank: str, statement_date: str, amount: Money) -> JournalEntry:
    """What bank B charged for the items of one statement: Dr ``platform:bank_cost`` / Cr ``bank:B:reserve``.

    One entry per (bank, statement date) for the sum of the statement's charges: the bank takes one
    fee per item, but a million-line statement must not become a million entries (docs/reconciliation.md
    "Charges"); each line's own charge stays on the staged line for audit.
    """
    if not amount.is_positive:
        raise ValueError("bank charges are a positive amount")
    return JournalEntry(
        BANK_CHARGES_BOOKED,
        f"{bank}:{statement_date}",
        (debit(PLATFORM_BANK_COST, amount), credit(bank_reserve(bank), amount)),
        f"{bank} charges on the statement of {statement_date}",
    )


def reconciliation_difference(*, bank: str, source_id: str, difference: Money, reason: str) -> JournalEntry:
    """A statement line moved the reserve by ``difference`` more than the platform booked (signed).

    Positive (money the platform did not expect is in the reserve): Dr ``bank:B:reserve`` / Cr
    ``platform:suspense``. Negative (the bank took more, or paid less in): Dr ``platform:suspense`` /
    Cr ``bank:B:reserve``. Either way the ledger follows the bank, and suspense holds the question.
    """
    if difference.is_zero:
        raise ValueError("a difference of zero books nothing")
    legs = (debit(bank_reserve(bank), difference), credit(PLATFORM_SUSPENSE, difference))
    return JournalEntry(
        RECONCILIATION_DIFFERENCE, source_id, legs, f"{bank} statement line {source_id}: {reason}"
    )


def reconciliation_booked_to_suspense(*, bank: str, exception_id: str, amount: Money) -> JournalEntry:
    """An operator books a statement line whose 补单 the owning service refused to ``platform:suspense``.

    ``amount`` is signed as the reserve moved. Money in: Dr ``bank:B:reserve`` / Cr ``platform:suspense``;
    money out: the mirror. The ledger then follows the bank again, and suspense holds the question until
    the exception this opens is written off or recovered. The source is the refused exception, so a
    second booking of the same line is a replay.
    """
    if amount.is_zero:
        raise ValueError("a line of zero books nothing")
    legs = (debit(bank_reserve(bank), amount), credit(PLATFORM_SUSPENSE, amount))
    return JournalEntry(
        RECONCILIATION_BOOKED_TO_SUSPENSE, exception_id, legs,
        f"{bank} statement line of exception {exception_id} booked to suspense",
    )


def reconciliation_platform_only(*, bank: str, record_id: str, amount: Money) -> JournalEntry:
    """短款: a record the platform booked at bank B never reached B's statements.

    Its movement (signed as the reserve moved: a collection positive, a refund or payout negative) is
    taken back out of ``bank:B:reserve`` into ``platform:suspense`` until an operator resolves it.
    """
    if amount.is_zero:
        raise ValueError("a record of zero books nothing")
    legs = (debit(PLATFORM_SUSPENSE, amount), credit(bank_reserve(bank), amount))
    return JournalEntry(
        RECONCILIATION_PLATFORM_ONLY, record_id, legs, f"{record_id} is missing from {bank}'s statements"
    )


def suspense_resolved(*, event: str, exception_id: str, bank: str, suspense: Money, to_cost: bool) -> JournalEntry:
    """Clears what an exception left in ``platform:suspense`` (signed as the asset).

    ``to_cost``: written off against ``platform:bank_cost``; otherwise the money was found and moved
    through ``bank:B:reserve``. Each is a new entry whose source is the exception.
    """
    if suspense.is_zero:
        raise ValueError("nothing in suspense to resolve")
    other = PLATFORM_BANK_COST if to_cost else bank_reserve(bank)
    legs = (debit(other, suspense), credit(PLATFORM_SUSPENSE, suspense))
    return JournalEntry(event, exception_id, legs, f"exception {exception_id} resolved ({event})")
