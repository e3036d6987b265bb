"""The test customers and institutional accounts of BANKS.md, seeded into every bank's books.

Keep these exactly as BANKS.md lists them: the platform's tests, demos and docs rely on them.
Each bank holds only the cards that carry its BIN (and the customers who own them); seeding is
idempotent, so every start of the world may run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from banksim.core.books import Account, AccountKind, AccountStatus, Books, Customer
from banksim.core.cards import bank_of
from banksim.core.secrets_hash import hash_secret

LOGIN_PASSWORD = "Passw0rd!"
CARD_PIN = "123456"
# Online-banking and card limit per transaction. BANKS.md leaves it open; ¥50,000.00 is a common
# retail online-banking limit and leaves 61 reachable with a real amount as well as by magic.
CARD_PER_TXN_LIMIT_MINOR = 5_000_000
# The platform's reserve accounts open with ¥1,000,000.00 (its own funds, deposited at onboarding)
# so refunds and payouts work before the first payment arrives.
RESERVE_OPENING_MINOR = 100_000_000
PLATFORM_NAME = "天付支付有限公司"
CLEARING_ACC_NO = "CLEARING"


@dataclass(frozen=True, slots=True)
class TestCard:
    acc_no: str
    balance_minor: int
    is_frozen: bool = False


@dataclass(frozen=True, slots=True)
class TestCustomer:
    name: str
    id_number: str
    phone: str
    cards: tuple[TestCard, ...]


@dataclass(frozen=True, slots=True)
class InstitutionalAccount:
    acc_no: str
    holder_name: str
    kind: AccountKind
    balance_minor: int


TEST_CUSTOMERS: tuple[TestCustomer, ...] = (
    TestCustomer(
        "张伟",
        "110105198503120012",
        "13800138001",
        (TestCard("6217990000000000014", 5_000_000), TestCard("6227990000000000013", 5_000_000)),
    ),
    TestCustomer(
        "王芳",
        "12010119900725002X",
        "13800138002",
        (TestCard("6217990000000000022", 2_000_000), TestCard("6230990000000000017", 2_000_000)),
    ),
    TestCustomer("李娜", "120110197801010039", "13800138003", (TestCard("6227990000000000021", 800_000),)),
    # BANKS.md gives no balance for the frozen card; ¥10,000.00 makes "frozen" the only reason a
    # debit fails.
    TestCustomer(
        "刘洋",
        "310104199511110047",
        "13800138004",
        (TestCard("6217990000000000030", 1_000_000, is_frozen=True),),
    ),
    TestCustomer("赵磊", "120101197001010069", "13800138006", (TestCard("6217990000000000519", 1_000),)),
    TestCustomer("陈静", "440305198808080055", "13800138005", (TestCard("6230990000000000025", 500_000),)),
)

INSTITUTIONAL_ACCOUNTS: tuple[InstitutionalAccount, ...] = (
    InstitutionalAccount("6217990000000000998", PLATFORM_NAME, AccountKind.RESERVE, RESERVE_OPENING_MINOR),
    InstitutionalAccount("6227990000000000997", PLATFORM_NAME, AccountKind.RESERVE, RESERVE_OPENING_MINOR),
    InstitutionalAccount("6230990000000000991", PLATFORM_NAME, AccountKind.RESERVE, RESERVE_OPENING_MINOR),
    InstitutionalAccount("6230990000000000033", "天津津门好物商贸有限公司", AccountKind.CORPORATE, 0),
)

RESERVE_ACCOUNTS: dict[str, str] = {
    "HBB": "6217990000000000998",
    "JHB": "6227990000000000997",
    "BCB": "6230990000000000991",
}

# Each bank's own fee income account: day-end charges move from the platform's reserve here
# (docs/clearing.md, banksim/core/dayend.py). 19-digit, Luhn-valid numbers on the bank's BIN, so
# every non-clearing account in the world keeps the same shape.
INCOME_ACCOUNTS: dict[str, str] = {
    "HBB": "6217990000000000881",
    "JHB": "6227990000000000880",
    "BCB": "6230990000000000884",
}
INCOME_HOLDERS: dict[str, str] = {
    "HBB": "华北银行手续费收入",
    "JHB": "津海银行手续费收入",
    "BCB": "滨海商业银行手续费收入",
}


def seed_bank(books: Books, bank_code: str, *, at: datetime) -> int:
    """Open this bank's share of the test world; returns how many accounts were created now."""
    created = 0
    for customer in TEST_CUSTOMERS:
        for card in customer.cards:
            if bank_of(card.acc_no) != bank_code:
                continue
            books.add_customer(Customer(customer.id_number, customer.name, customer.phone))
            created += _open_card(books, customer, card, at)
    for institutional in INSTITUTIONAL_ACCOUNTS:
        if bank_of(institutional.acc_no) != bank_code:
            continue
        account = Account(
            institutional.acc_no,
            institutional.holder_name,
            None,
            institutional.kind,
            AccountStatus.ACTIVE,
            institutional.balance_minor,
            None,
        )
        created += books.open_account(account, opened_at=at)
    if bank_code in INCOME_ACCOUNTS:
        income = Account(
            INCOME_ACCOUNTS[bank_code],
            INCOME_HOLDERS[bank_code],
            None,
            AccountKind.CORPORATE,
            AccountStatus.ACTIVE,
            0,
            None,
        )
        created += books.open_account(income, opened_at=at)
    clearing = Account(CLEARING_ACC_NO, "同业清算往来", None, AccountKind.CLEARING, AccountStatus.ACTIVE, 0, None)
    created += books.open_account(clearing, opened_at=at)
    return created


def _open_card(books: Books, customer: TestCustomer, card: TestCard, at: datetime) -> int:
    # Hashing is slow on purpose, so skip it for cards that already exist.
    if books.account(card.acc_no) is not None:
        return 0
    status = AccountStatus.FROZEN if card.is_frozen else AccountStatus.ACTIVE
    account = Account(
        card.acc_no,
        customer.name,
        customer.id_number,
        AccountKind.CARD,
        status,
        card.balance_minor,
        CARD_PER_TXN_LIMIT_MINOR,
    )
    opened = books.open_account(
        account, opened_at=at, login_hash=hash_secret(LOGIN_PASSWORD), pin_hash=hash_secret(CARD_PIN)
    )
    return int(opened)
