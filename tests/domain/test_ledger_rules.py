"""Journal entries balance by construction: the domain refuses anything else."""

from __future__ import annotations

import pytest

from tianpay.domain.errors import UnbalancedEntry
from tianpay.domain.ledger import (
    PLATFORM_FEE_INCOME,
    JournalEntry,
    bank_reserve,
    credit,
    debit,
    entry_id_for,
    merchant_pending,
)
from tianpay.domain.money import Money


def test_an_entry_must_balance() -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry("x", "s", (debit(bank_reserve("HBB"), Money.cny(10)), credit(merchant_pending("m"), Money.cny(9))))


def test_an_entry_needs_two_postings() -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry("x", "s", (debit(bank_reserve("HBB"), Money.cny(10)),))


def test_zero_postings_are_refused() -> None:
    with pytest.raises(UnbalancedEntry):
        debit(bank_reserve("HBB"), Money.cny(0))


def test_entry_ids_derive_from_event_and_source() -> None:
    assert entry_id_for("payment.succeeded", "att_1") == entry_id_for("payment.succeeded", "att_1")
    assert entry_id_for("payment.succeeded", "att_1") != entry_id_for("refund.succeeded", "att_1")
    entry = JournalEntry(
        "payment.succeeded",
        "att_1",
        (debit(bank_reserve("HBB"), Money.cny(10)), credit(PLATFORM_FEE_INCOME, Money.cny(10))),
    )
    assert entry.id == entry_id_for("payment.succeeded", "att_1")


def test_a_reversal_undoes_an_entry_and_has_its_own_id() -> None:
    entry = JournalEntry(
        "refund.requested",
        "rfd_1",
        (debit(merchant_pending("m"), Money.cny(10)), credit(bank_reserve("HBB"), Money.cny(10))),
    )
    reversal = entry.reversal()
    assert reversal.id != entry.id
    assert [p.amount.minor for p in reversal.postings] == [-10, 10]
