"""Ledger use cases: posting an entry in its own unit of work, and verifying the invariants."""

from __future__ import annotations

from dataclasses import dataclass

from tianpay.domain.ledger import JournalEntry
from tianpay.ports.ledger import PostResult, VerifyProblem
from tianpay.ports.unit_of_work import UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class VerifyReport:
    accounts: int
    entries: int
    postings: int
    problem: VerifyProblem | None

    @property
    def is_sound(self) -> bool:
        return self.problem is None


def post_entry(uow_factory: UnitOfWorkFactory, entry: JournalEntry) -> PostResult:
    with uow_factory() as uow:
        result = uow.ledger.post(entry)
        uow.commit()
        return result


def verify_ledger(uow_factory: UnitOfWorkFactory) -> VerifyReport:
    with uow_factory() as uow:
        accounts, entries, postings = uow.ledger.stats()
        return VerifyReport(accounts, entries, postings, uow.ledger.verify())
