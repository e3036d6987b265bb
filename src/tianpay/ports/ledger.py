"""The ledger port: how services post journal entries and read balances."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tianpay.domain.ledger import AccountSpec, JournalEntry
from tianpay.domain.money import Money


@dataclass(frozen=True, slots=True)
class PostResult:
    """Whether an entry was written now (``created``) or had already been written (a replay)."""

    entry_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """The first broken invariant ``ledger verify`` found, named precisely."""

    invariant: str
    subject: str
    detail: str


class LedgerRepository(Protocol):
    def ensure_accounts(self, specs: Iterable[AccountSpec]) -> None:
        """Creates the accounts that do not exist yet; existing ones are left as they are."""
        ...

    def post(self, entry: JournalEntry) -> PostResult:
        """Writes a balanced entry and updates stored balances; a replay of the same entry is a no-op.

        Raises InsufficientBalance when an account that may not go negative would, and Conflict when
        an entry with the same id but different postings exists.
        """
        ...

    def balance(self, code: str) -> Money:
        """An account's balance as people read it (credit-normal accounts shown positive)."""
        ...

    def balances(self, codes: Sequence[str]) -> Mapping[str, Money]: ...

    def verify(self) -> VerifyProblem | None:
        """The first broken ledger invariant, or None when the ledger is sound."""
        ...

    def stats(self) -> tuple[int, int, int]:
        """(accounts, entries, postings)."""
        ...
