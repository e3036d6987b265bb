"""Double-entry ledger values: accounts, journal entries and postings, and the rules they obey.

A journal entry is immutable and balanced (its postings sum to zero per currency); mistakes are
corrected by a reversing entry. Entry ids derive from (event, source id) so that replaying an event
is a no-op. Postings are signed: debits positive, credits negative.
"""

from __future__ import annotations

import enum
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tianpay.domain.errors import UnbalancedEntry
from tianpay.domain.money import Currency, Money

_ENTRY_NAMESPACE = uuid.UUID("6f1c2a52-3b4e-5d6f-8a9b-0c1d2e3f4a5b")


class AccountType(enum.Enum):
    ASSET = "asset"
    LIABILITY = "liability"
    REVENUE = "revenue"
    EXPENSE = "expense"


def normal_sign(account_type: AccountType) -> int:
    """+1 for debit-normal accounts (assets, expenses), -1 for credit-normal ones.

    A balance as people read it (a wallet holding ¥70) is the sum of the account's signed postings
    times this sign.
    """
    return 1 if account_type in (AccountType.ASSET, AccountType.EXPENSE) else -1


class BalanceMode(enum.Enum):
    """How an account's balance is kept.

    ``STORED`` accounts keep a balance column updated in the same database transaction as their
    postings (wallets need it to refuse overdrafts with a conditional write). ``DERIVED`` accounts
    are touched by every payment (bank reserves, platform income): their balance is the sum of
    their postings, so concurrent payments never queue on one hot row.
    """

    STORED = "stored"
    DERIVED = "derived"


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What an account is: its code in the chart of accounts and how it behaves."""

    code: str
    type: AccountType
    currency: Currency = Currency.CNY
    balance_mode: BalanceMode = BalanceMode.STORED
    may_go_negative: bool = True


def bank_reserve(bank: str) -> AccountSpec:
    return AccountSpec(f"bank:{bank}:reserve", AccountType.ASSET, balance_mode=BalanceMode.DERIVED)


def bank_in_transit(bank: str) -> AccountSpec:
    return AccountSpec(f"bank:{bank}:in_transit", AccountType.ASSET, balance_mode=BalanceMode.DERIVED)


def merchant_pending(merchant_id: str) -> AccountSpec:
    return AccountSpec(f"merchant:{merchant_id}:pending", AccountType.LIABILITY)


def merchant_available(merchant_id: str) -> AccountSpec:
    return AccountSpec(f"merchant:{merchant_id}:available", AccountType.LIABILITY, may_go_negative=False)


def member_wallet(member_id: str) -> AccountSpec:
    return AccountSpec(f"member:{member_id}:wallet", AccountType.LIABILITY, may_go_negative=False)


PLATFORM_FEE_INCOME = AccountSpec("platform:fee_income", AccountType.REVENUE, balance_mode=BalanceMode.DERIVED)
PLATFORM_BANK_COST = AccountSpec("platform:bank_cost", AccountType.EXPENSE, balance_mode=BalanceMode.DERIVED)
PLATFORM_SUSPENSE = AccountSpec("platform:suspense", AccountType.ASSET, balance_mode=BalanceMode.DERIVED)


def merchant_accounts(merchant_id: str) -> tuple[AccountSpec, ...]:
    return (merchant_pending(merchant_id), merchant_available(merchant_id))


def entry_id_for(event: str, source_id: str) -> str:
    """The id of the entry an event on a source produces: the same inputs always give the same id."""
    return "je_" + uuid.uuid5(_ENTRY_NAMESPACE, f"{event}\x1f{source_id}").hex


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of an entry: a signed amount on an account (debit > 0, credit < 0)."""

    account: AccountSpec
    amount: Money

    def __post_init__(self) -> None:
        if self.amount.is_zero:
            raise UnbalancedEntry("a posting of zero moves nothing", param=self.account.code)
        if self.amount.currency is not self.account.currency:
            raise UnbalancedEntry("a posting's currency must be its account's", param=self.account.code)


def debit(account: AccountSpec, amount: Money) -> Posting:
    return Posting(account, amount)


def credit(account: AccountSpec, amount: Money) -> Posting:
    return Posting(account, -amount)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """An immutable, balanced set of postings caused by one event on one source."""

    event: str
    source_id: str
    postings: tuple[Posting, ...]
    description: str = ""
    id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", entry_id_for(self.event, self.source_id))
        check_balanced(self.postings)

    def reversal(self, event: str | None = None) -> JournalEntry:
        """The entry that undoes this one; its id derives from this entry's id."""
        return JournalEntry(
            event or f"{self.event}.reversed",
            self.id,
            tuple(Posting(p.account, -p.amount) for p in self.postings),
            f"reversal of {self.id}",
        )


def check_balanced(postings: Iterable[Posting]) -> None:
    """Raises UnbalancedEntry unless there are two or more postings summing to zero per currency."""
    totals: dict[Currency, int] = defaultdict(int)
    count = 0
    for posting in postings:
        totals[posting.amount.currency] += posting.amount.minor
        count += 1
    if count < 2:
        raise UnbalancedEntry("an entry needs at least two postings")
    unbalanced = {c.code: total for c, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedEntry(f"postings do not sum to zero: {unbalanced}")


def net_by_account(postings: Iterable[Posting]) -> Mapping[str, int]:
    """Sums postings per account code, which is how balances change when an entry is applied."""
    net: dict[str, int] = defaultdict(int)
    for posting in postings:
        net[posting.account.code] += posting.amount.minor
    return dict(net)
