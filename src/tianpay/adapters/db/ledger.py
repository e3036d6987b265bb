"""The ledger repository: writes balanced entries and keeps stored balances, on one connection.

Order matters inside ``post``: stored balances that must not go negative are changed first with
conditional writes (so a wallet can never go negative, even with many concurrent payments), then the
postings, then the entry row, whose insert trigger makes the database check that the postings balance.

Stored balances that *may* go negative (a merchant's pending balance) can never refuse a write, so
their updates wait until the unit of work commits (``flush_deferred``): the row lock that every
payment of one merchant needs is then held for the commit alone, not for the rest of the transaction
(docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tianpay.domain.errors import Conflict, InsufficientBalance, NotFound
from tianpay.domain.ledger import (
    AccountSpec,
    AccountType,
    BalanceMode,
    JournalEntry,
    net_by_account,
    normal_sign,
)
from tianpay.domain.money import Currency, Money
from tianpay.ports.clock import Clock
from tianpay.ports.ledger import PostResult, VerifyProblem

from .tables import journal_entries, ledger_accounts, postings


class SqlLedgerRepository:
    def __init__(self, connection: Connection, clock: Clock) -> None:
        self._connection = connection
        self._clock = clock
        # Balance changes of accounts that may go negative, by account id, not yet written.
        self._deferred: dict[int, int] = {}

    def flush_deferred(self) -> None:
        """Writes the deferred balance changes, in account id order; the unit of work calls it before commit.

        Every transaction takes these row locks last and in the same order, after all the locks it
        takes while it runs, so deferral adds no deadlock: no transaction waits for another while
        holding a deferred row, except for a deferred row later in the same order.
        """
        deferred, self._deferred = self._deferred, {}
        for account_id in sorted(deferred):
            delta = deferred[account_id]
            if delta == 0:
                continue
            self._connection.execute(
                update(ledger_accounts)
                .where(ledger_accounts.c.id == account_id)
                .values(balance_minor=ledger_accounts.c.balance_minor + delta)
            )

    def ensure_accounts(self, specs: Iterable[AccountSpec]) -> None:
        now = self._clock.now()
        rows = [_account_row(spec, now) for spec in {spec.code: spec for spec in specs}.values()]
        if not rows:
            return
        dialect = self._connection.dialect.name
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ledger_accounts)
        self._connection.execute(stmt.on_conflict_do_nothing(index_elements=["code"]), rows)

    def discard_deferred(self) -> None:
        """Forgets the deferred balance changes: their entries were rolled back with the transaction."""
        self._deferred = {}

    def post(self, entry: JournalEntry) -> PostResult:
        existing = self._existing_postings(entry.id)
        if existing is not None:
            if existing != _signature_of(entry):
                raise Conflict(f"journal entry {entry.id} exists with different postings")
            return PostResult(entry.id, created=False)
        # Accounts almost always exist already: read them first and create only the missing ones,
        # which saves an INSERT … ON CONFLICT round trip on nearly every post (docs/performance.md).
        codes = [p.account.code for p in entry.postings]
        accounts = self._accounts_by_code(codes)
        missing = [p.account for p in entry.postings if p.account.code not in accounts]
        if missing:
            self.ensure_accounts(missing)
            accounts = self._accounts_by_code(codes)
        deferred = self._apply_stored_balances(entry, accounts)
        self._connection.execute(
            insert(postings),
            [
                {
                    "entry_id": entry.id,
                    "account_id": accounts[p.account.code].id,
                    "amount_minor": p.amount.minor,
                    "currency": p.amount.currency.code,
                }
                for p in entry.postings
            ],
        )
        self._connection.execute(
            insert(journal_entries).values(
                id=entry.id,
                event=entry.event,
                source_id=entry.source_id,
                description=entry.description,
                created_at=self._clock.now(),
            )
        )
        # Only an entry that was written in full defers anything: a post that raised (an overdraft
        # refused above) must leave no balance change behind for a later commit to write.
        for account_id, delta in deferred.items():
            self._deferred[account_id] = self._deferred.get(account_id, 0) + delta
        return PostResult(entry.id, created=True)

    def balance(self, code: str) -> Money:
        return self.balances([code])[code]

    def balances(self, codes: Sequence[str]) -> Mapping[str, Money]:
        self.flush_deferred()
        accounts = self._accounts_by_code(codes)
        missing = set(codes) - accounts.keys()
        if missing:
            raise NotFound(f"no ledger account {sorted(missing)[0]}")
        result: dict[str, Money] = {}
        derived_ids = [a.id for a in accounts.values() if a.balance_mode == BalanceMode.DERIVED.value]
        sums: dict[int, int] = {}
        if derived_ids:
            rows = self._connection.execute(
                select(postings.c.account_id, func.coalesce(func.sum(postings.c.amount_minor), 0))
                .where(postings.c.account_id.in_(derived_ids))
                .group_by(postings.c.account_id)
            )
            sums = {int(account_id): int(total) for account_id, total in rows}
        for code, account in accounts.items():
            currency = Currency.parse(account.currency)
            if account.balance_mode == BalanceMode.STORED.value:
                result[code] = Money(int(account.balance_minor), currency)
            else:
                sign = normal_sign(AccountType(account.type))
                result[code] = Money(sign * sums.get(account.id, 0), currency)
        return result

    def verify(self) -> VerifyProblem | None:
        """Checks the ledger's invariants in the database and names the first one broken.

        Each check is one aggregate query, so the database streams over the postings instead of
        Python loading them: verification stays fast and flat in memory at tens of millions of rows.
        """
        self.flush_deferred()
        return self._unbalanced_entry() or self._stored_balance_mismatch() or self._negative_account()

    def _unbalanced_entry(self) -> VerifyProblem | None:
        per_currency = (
            select(postings.c.entry_id, postings.c.currency, func.sum(postings.c.amount_minor).label("total"))
            .group_by(postings.c.entry_id, postings.c.currency)
            .having(func.sum(postings.c.amount_minor) != 0)
            .order_by(postings.c.entry_id)
            .limit(1)
        )
        row = self._connection.execute(per_currency).first()
        if row is not None:
            return VerifyProblem(
                "balanced_entries", row.entry_id, f"postings in {row.currency} sum to {row.total}, not 0"
            )
        thin = (
            select(journal_entries.c.id, func.count(postings.c.id).label("n"))
            .select_from(journal_entries.outerjoin(postings, postings.c.entry_id == journal_entries.c.id))
            .group_by(journal_entries.c.id)
            .having(func.count(postings.c.id) < 2)
            .order_by(journal_entries.c.id)
            .limit(1)
        )
        row = self._connection.execute(thin).first()
        if row is not None:
            return VerifyProblem("balanced_entries", row.id, f"the entry has {row.n} posting(s), fewer than 2")
        orphan = (
            select(postings.c.id, postings.c.entry_id)
            .where(~select(journal_entries.c.id).where(journal_entries.c.id == postings.c.entry_id).exists())
            .limit(1)
        )
        stray = self._connection.execute(orphan).first()
        if stray is not None:
            return VerifyProblem("balanced_entries", stray.entry_id, f"posting {stray.id} has no journal entry")
        return None

    def _stored_balance_mismatch(self) -> VerifyProblem | None:
        sums = (
            select(postings.c.account_id, func.sum(postings.c.amount_minor).label("total"))
            .group_by(postings.c.account_id)
            .subquery()
        )
        rows = self._connection.execute(
            select(ledger_accounts.c.code, ledger_accounts.c.type, ledger_accounts.c.balance_minor, sums.c.total)
            .select_from(ledger_accounts.outerjoin(sums, sums.c.account_id == ledger_accounts.c.id))
            .where(ledger_accounts.c.balance_mode == BalanceMode.STORED.value)
            .order_by(ledger_accounts.c.code)
        )
        for code, type_, stored, total in rows:
            expected = normal_sign(AccountType(type_)) * int(total or 0)
            if int(stored) != expected:
                return VerifyProblem(
                    "stored_balance_equals_postings", code, f"stored balance {stored} ≠ sum of postings {expected}"
                )
        return None

    def _negative_account(self) -> VerifyProblem | None:
        sums = (
            select(postings.c.account_id, func.sum(postings.c.amount_minor).label("total"))
            .group_by(postings.c.account_id)
            .subquery()
        )
        rows = self._connection.execute(
            select(ledger_accounts.c.code, ledger_accounts.c.type, sums.c.total)
            .select_from(ledger_accounts.join(sums, sums.c.account_id == ledger_accounts.c.id))
            .where(ledger_accounts.c.may_go_negative.is_(False))
            .order_by(ledger_accounts.c.code)
        )
        for code, type_, total in rows:
            balance = normal_sign(AccountType(type_)) * int(total or 0)
            if balance < 0:
                return VerifyProblem("no_negative_wallets", code, f"balance {balance} is negative")
        return None

    def stats(self) -> tuple[int, int, int]:
        """How many accounts, entries and postings the ledger holds."""
        count = func.count()
        accounts = self._connection.execute(select(count).select_from(ledger_accounts)).scalar_one()
        entries = self._connection.execute(select(count).select_from(journal_entries)).scalar_one()
        legs = self._connection.execute(select(count).select_from(postings)).scalar_one()
        return int(accounts), int(entries), int(legs)

    def _existing_postings(self, entry_id: str) -> frozenset[tuple[str, int]] | None:
        exists = self._connection.execute(select(journal_entries.c.id).where(journal_entries.c.id == entry_id)).first()
        if exists is None:
            return None
        rows = self._connection.execute(
            select(ledger_accounts.c.code, postings.c.amount_minor)
            .join(ledger_accounts, ledger_accounts.c.id == postings.c.account_id)
            .where(postings.c.entry_id == entry_id)
        )
        return _aggregate((code, int(amount)) for code, amount in rows)

    def _accounts_by_code(self, codes: Sequence[str]) -> dict[str, _AccountRow]:
        rows = self._connection.execute(
            select(
                ledger_accounts.c.id,
                ledger_accounts.c.code,
                ledger_accounts.c.type,
                ledger_accounts.c.currency,
                ledger_accounts.c.balance_mode,
                ledger_accounts.c.balance_minor,
                ledger_accounts.c.may_go_negative,
            ).where(ledger_accounts.c.code.in_(list(set(codes))))
        )
        return {row.code: _AccountRow(*row) for row in rows}

    def _apply_stored_balances(self, entry: JournalEntry, accounts: Mapping[str, _AccountRow]) -> dict[int, int]:
        """Writes the changes that can be refused; returns the ones to defer (account id → change)."""
        # Accounts are updated in id order so that two concurrent entries touching the same pair of
        # accounts lock them in the same order and cannot deadlock on PostgreSQL.
        net = net_by_account(entry.postings)
        deferred: dict[int, int] = {}
        stored = sorted(
            (a for code, a in accounts.items() if code in net and a.balance_mode == BalanceMode.STORED.value),
            key=lambda a: a.id,
        )
        for account in stored:
            delta = normal_sign(AccountType(account.type)) * net[account.code]
            if delta == 0:
                continue
            if account.may_go_negative:
                deferred[account.id] = delta
                continue
            stmt = update(ledger_accounts).where(ledger_accounts.c.id == account.id)
            if delta < 0:
                stmt = stmt.where(ledger_accounts.c.balance_minor + delta >= 0)
            result = self._connection.execute(stmt.values(balance_minor=ledger_accounts.c.balance_minor + delta))
            if result.rowcount != 1:
                raise InsufficientBalance(f"{account.code} has too little balance for this entry")
        return deferred


class _AccountRow:
    __slots__ = ("balance_minor", "balance_mode", "code", "currency", "id", "may_go_negative", "type")

    def __init__(
        self,
        id: int,
        code: str,
        type: str,
        currency: str,
        balance_mode: str,
        balance_minor: int,
        may_go_negative: bool,
    ) -> None:
        self.id = id
        self.code = code
        self.type = type
        self.currency = currency
        self.balance_mode = balance_mode
        self.balance_minor = balance_minor
        self.may_go_negative = bool(may_go_negative)


def _account_row(spec: AccountSpec, now: datetime) -> dict[str, object]:
    return {
        "code": spec.code,
        "type": spec.type.value,
        "currency": spec.currency.code,
        "balance_mode": spec.balance_mode.value,
        "may_go_negative": spec.may_go_negative,
        "balance_minor": 0,
        "created_at": now,
    }


def _aggregate(pairs: Iterable[tuple[str, int]]) -> frozenset[tuple[str, int]]:
    totals: dict[str, int] = {}
    for code, amount in pairs:
        totals[code] = totals.get(code, 0) + amount
    return frozenset(totals.items())


def _signature_of(entry: JournalEntry) -> frozenset[tuple[str, int]]:
    return _aggregate((p.account.code, p.amount.minor) for p in entry.postings)
