"""A stateful property test: random valid and invalid ledger operations against a model of balances.

After every step the real database must agree with the model account by account, and
``ledger verify`` must find every invariant intact (balanced entries, stored balances equal to their
postings, no negative wallet). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import DBAPIError

from tianpay.adapters.db.tables import journal_entries, ledger_accounts, postings
from tianpay.domain.errors import Conflict, InsufficientBalance
from tianpay.domain.ledger import (
    PLATFORM_FEE_INCOME,
    JournalEntry,
    bank_in_transit,
    bank_reserve,
    credit,
    debit,
    member_wallet,
    merchant_pending,
)
from tianpay.domain.money import Money, fee_for
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.ledger import post_entry, verify_ledger

AMOUNTS = st.integers(min_value=1, max_value=10**9)
BANKS = st.sampled_from(["H", "J", "B"])


def ledger_machine(uow_factory: UnitOfWorkFactory, engine: Engine) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        posted = Bundle("posted")

        def __init__(self) -> None:
            super().__init__()
            # Each example books into its own merchant and members so examples never interfere.
            self.tag = uuid.uuid4().hex[:8]
            self.merchant = f"mch_{self.tag}"
            self.members = [f"mbr_{self.tag}_{i}" for i in range(3)]
            self.model: dict[str, int] = defaultdict(int)
            # platform:fee_income is shared by every example, so the model tracks its change only.
            self.derived_start = self._read([PLATFORM_FEE_INCOME.code])

        def _read(self, codes: list[str]) -> dict[str, int]:
            with uow_factory() as uow:
                existing = {
                    row.code
                    for row in uow.connection.execute(  # type: ignore[attr-defined]
                        select(ledger_accounts.c.code).where(ledger_accounts.c.code.in_(codes))
                    )
                }
                balances = uow.ledger.balances(sorted(existing)) if existing else {}
            return {code: balances[code].minor if code in balances else 0 for code in codes}

        def _apply(self, entry: JournalEntry) -> None:
            for posting in entry.postings:
                sign = 1 if posting.account.code.startswith("bank:") else -1
                if posting.account.code == PLATFORM_FEE_INCOME.code:
                    sign = -1
                self.model[posting.account.code] += sign * posting.amount.minor

        @rule(target=posted, amount=AMOUNTS, rate_bps=st.integers(0, 200), bank=BANKS)
        def gateway_payment(self, amount: int, rate_bps: int, bank: str) -> JournalEntry:
            fee = fee_for(Money.cny(amount), rate_bps)
            legs = [
                debit(bank_reserve(self.tag + bank), Money.cny(amount)),
                credit(merchant_pending(self.merchant), Money.cny(amount)),
            ]
            if fee.is_positive:
                legs += [debit(merchant_pending(self.merchant), fee), credit(PLATFORM_FEE_INCOME, fee)]
            entry = JournalEntry("payment.succeeded", f"att_{uuid.uuid4().hex}", tuple(legs))
            assert post_entry(uow_factory, entry).created
            self._apply(entry)
            return entry

        @rule(target=posted, member=st.integers(0, 2), amount=AMOUNTS, bank=BANKS)
        def top_up(self, member: int, amount: int, bank: str) -> JournalEntry:
            entry = JournalEntry(
                "wallet.topped_up",
                f"top_{uuid.uuid4().hex}",
                (
                    debit(bank_reserve(self.tag + bank), Money.cny(amount)),
                    credit(member_wallet(self.members[member]), Money.cny(amount)),
                ),
            )
            assert post_entry(uow_factory, entry).created
            self._apply(entry)
            return entry

        @rule(member=st.integers(0, 2), amount=AMOUNTS)
        def wallet_payment(self, member: int, amount: int) -> None:
            wallet = member_wallet(self.members[member])
            entry = JournalEntry(
                "wallet.paid",
                f"wp_{uuid.uuid4().hex}",
                (debit(wallet, Money.cny(amount)), credit(merchant_pending(self.merchant), Money.cny(amount))),
            )
            if self.model[wallet.code] >= amount:
                assert post_entry(uow_factory, entry).created
                self._apply(entry)
            else:
                with pytest.raises(InsufficientBalance):
                    post_entry(uow_factory, entry)

        @rule(amount=AMOUNTS, bank=BANKS)
        def refund_requested(self, amount: int, bank: str) -> None:
            entry = JournalEntry(
                "refund.requested",
                f"rfd_{uuid.uuid4().hex}",
                (
                    debit(merchant_pending(self.merchant), Money.cny(amount)),
                    credit(bank_in_transit(self.tag + bank), Money.cny(amount)),
                ),
            )
            assert post_entry(uow_factory, entry).created
            self._apply(entry)

        @rule(entry=posted)
        def replay_is_a_no_op(self, entry: JournalEntry) -> None:
            assert not post_entry(uow_factory, entry).created

        @rule(entry=posted, extra=st.integers(1, 1000))
        def same_source_with_other_amounts_conflicts(self, entry: JournalEntry, extra: int) -> None:
            first, second = entry.postings[0], entry.postings[1]
            altered = JournalEntry(
                entry.event,
                entry.source_id,
                (
                    debit(first.account, first.amount + Money.cny(extra)),
                    credit(second.account, -second.amount + Money.cny(extra)),
                ),
            )
            with pytest.raises(Conflict):
                post_entry(uow_factory, altered)

        @rule(amount=AMOUNTS, skew=st.integers(1, 100))
        def unbalanced_raw_insert_is_refused_by_the_database(self, amount: int, skew: int) -> None:
            entry_id = f"je_raw_{uuid.uuid4().hex[:20]}"
            with engine.connect() as connection:
                account_id = connection.execute(select(ledger_accounts.c.id).limit(1)).scalar()
            if account_id is None:
                return
            with pytest.raises(DBAPIError), engine.begin() as connection:
                connection.execute(
                    insert(postings),
                    [
                        {"entry_id": entry_id, "account_id": account_id, "amount_minor": amount, "currency": "CNY"},
                        {
                            "entry_id": entry_id,
                            "account_id": account_id,
                            "amount_minor": -amount + skew,
                            "currency": "CNY",
                        },
                    ],
                )
                connection.execute(
                    insert(journal_entries).values(
                        id=entry_id, event="raw", source_id=entry_id, description="", created_at=datetime.now(UTC)
                    )
                )

        @invariant()
        def the_ledger_is_sound(self) -> None:
            report = verify_ledger(uow_factory)
            assert report.problem is None, report.problem

        @invariant()
        def balances_match_the_model(self) -> None:
            codes = sorted(self.model)
            if not codes:
                return
            actual = self._read(codes)
            for code in codes:
                start = self.derived_start.get(code, 0)
                assert actual[code] - start == self.model[code], code

    return LedgerMachine


def test_random_ledger_workloads_keep_every_invariant(uow_factory: UnitOfWorkFactory, engine: Engine) -> None:
    run_state_machine_as_test(
        ledger_machine(uow_factory, engine),
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
