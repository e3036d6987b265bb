"""The ledger on a real database: balanced entries, replays, overdraft refusal and the DB's own guard."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.exc import DBAPIError

from tianpay.adapters.db.tables import journal_entries, ledger_accounts, postings
from tianpay.domain.errors import Conflict, InsufficientBalance
from tianpay.domain.ledger import (
    PLATFORM_FEE_INCOME,
    JournalEntry,
    bank_reserve,
    credit,
    debit,
    member_wallet,
    merchant_pending,
)
from tianpay.domain.money import Money
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.ledger import post_entry, verify_ledger

CNY = Money.cny


def payment_entry(source: str, amount: int, fee: int, merchant: str = "mch_A") -> JournalEntry:
    return JournalEntry(
        "payment.succeeded",
        source,
        (
            debit(bank_reserve("HBB"), CNY(amount)),
            credit(merchant_pending(merchant), CNY(amount)),
            debit(merchant_pending(merchant), CNY(fee)),
            credit(PLATFORM_FEE_INCOME, CNY(fee)),
        ),
    )


def top_up(member: str, amount: int, source: str) -> JournalEntry:
    return JournalEntry(
        "wallet.topped_up",
        source,
        (debit(bank_reserve("JHB"), CNY(amount)), credit(member_wallet(member), CNY(amount))),
    )


def wallet_payment(member: str, amount: int, source: str) -> JournalEntry:
    return JournalEntry(
        "wallet.paid",
        source,
        (debit(member_wallet(member), CNY(amount)), credit(merchant_pending("mch_A"), CNY(amount))),
    )


def test_a_payment_entry_moves_money_and_fees_into_the_right_accounts(uow_factory: UnitOfWorkFactory) -> None:
    result = post_entry(uow_factory, payment_entry("pay_1", 10_000, 60))
    assert result.created
    with uow_factory() as uow:
        balances = uow.ledger.balances(["bank:HBB:reserve", "merchant:mch_A:pending", "platform:fee_income"])
    assert balances["bank:HBB:reserve"] == CNY(10_000)
    assert balances["merchant:mch_A:pending"] == CNY(9_940)
    assert balances["platform:fee_income"] == CNY(60)
    assert verify_ledger(uow_factory).is_sound


def test_replaying_the_same_event_is_a_no_op(uow_factory: UnitOfWorkFactory) -> None:
    first = post_entry(uow_factory, payment_entry("pay_2", 500, 3))
    again = post_entry(uow_factory, payment_entry("pay_2", 500, 3))
    assert first.created
    assert not again.created
    assert first.entry_id == again.entry_id
    with uow_factory() as uow:
        assert uow.ledger.balance("merchant:mch_A:pending") == CNY(497)


def test_the_same_event_with_other_postings_is_a_conflict(uow_factory: UnitOfWorkFactory) -> None:
    post_entry(uow_factory, payment_entry("pay_3", 500, 3))
    with pytest.raises(Conflict):
        post_entry(uow_factory, payment_entry("pay_3", 600, 3))


def test_a_wallet_cannot_pay_more_than_it_holds(uow_factory: UnitOfWorkFactory) -> None:
    post_entry(uow_factory, top_up("mbr_1", 1_000, "top_1"))
    with pytest.raises(InsufficientBalance):
        post_entry(uow_factory, wallet_payment("mbr_1", 1_001, "w_1"))
    post_entry(uow_factory, wallet_payment("mbr_1", 1_000, "w_2"))
    with uow_factory() as uow:
        assert uow.ledger.balance("member:mbr_1:wallet") == CNY(0)
        assert uow.ledger.balance("merchant:mch_A:pending") == CNY(1_000)
    assert verify_ledger(uow_factory).is_sound


def test_concurrent_wallet_payments_never_overdraw(uow_factory: UnitOfWorkFactory) -> None:
    post_entry(uow_factory, top_up("mbr_2", 10 * 300, "top_2"))
    outcomes: list[str] = []
    lock = threading.Lock()

    def pay(i: int) -> None:
        try:
            post_entry(uow_factory, wallet_payment("mbr_2", 300, f"cw_{i}"))
            result = "ok"
        except InsufficientBalance:
            result = "short"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 10
    assert outcomes.count("short") == 20
    with uow_factory() as uow:
        assert uow.ledger.balance("member:mbr_2:wallet") == CNY(0)
    assert verify_ledger(uow_factory).is_sound


def test_a_refused_overdraft_in_a_unit_of_work_that_commits_leaves_the_merchant_untouched(
    uow_factory: UnitOfWorkFactory,
) -> None:
    # The merchant's pending balance is written at commit; a post refused halfway must leave nothing
    # for that commit to write, even when the caller goes on and commits other work.
    post_entry(uow_factory, top_up("mbr_3", 500, "top_3"))
    with uow_factory() as uow:
        with pytest.raises(InsufficientBalance):
            uow.ledger.post(wallet_payment("mbr_3", 501, "w_3a"))
        uow.ledger.post(wallet_payment("mbr_3", 200, "w_3b"))
        uow.commit()
    with uow_factory() as uow:
        assert uow.ledger.balance("merchant:mch_A:pending") == CNY(200)
        assert uow.ledger.balance("member:mbr_3:wallet") == CNY(300)
    assert verify_ledger(uow_factory).is_sound


def test_a_balance_read_inside_the_unit_of_work_sees_the_entries_just_posted(uow_factory: UnitOfWorkFactory) -> None:
    post_entry(uow_factory, top_up("mbr_4", 900, "top_4"))
    with uow_factory() as uow:
        uow.ledger.post(wallet_payment("mbr_4", 400, "w_4a"))
        uow.ledger.post(wallet_payment("mbr_4", 100, "w_4b"))
        assert uow.ledger.balance("merchant:mch_A:pending") == CNY(500)
        uow.ledger.post(wallet_payment("mbr_4", 50, "w_4c"))
        uow.commit()
    with uow_factory() as uow:
        assert uow.ledger.balance("merchant:mch_A:pending") == CNY(550)


def test_an_uncommitted_unit_of_work_writes_no_deferred_balance(uow_factory: UnitOfWorkFactory) -> None:
    post_entry(uow_factory, top_up("mbr_5", 900, "top_5"))
    post_entry(uow_factory, wallet_payment("mbr_5", 100, "w_5a"))
    with uow_factory() as uow:
        uow.ledger.post(wallet_payment("mbr_5", 400, "w_5b"))
    with uow_factory() as uow:
        assert uow.ledger.balance("merchant:mch_A:pending") == CNY(100)
        assert uow.ledger.balance("member:mbr_5:wallet") == CNY(800)
    assert verify_ledger(uow_factory).is_sound


def test_many_concurrent_payments_to_one_merchant_keep_its_stored_balance_exact(uow_factory: UnitOfWorkFactory) -> None:
    members = [f"mbr_c{i}" for i in range(12)]
    for member in members:
        post_entry(uow_factory, top_up(member, 1_000, f"top_{member}"))
    errors: list[BaseException] = []

    def pay(member: str) -> None:
        try:
            for n in range(5):
                post_entry(uow_factory, wallet_payment(member, 7 + n, f"{member}_{n}"))
        except BaseException as exc:  # collected and asserted below, so a thread's failure is seen
            errors.append(exc)

    threads = [threading.Thread(target=pay, args=(member,)) for member in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with uow_factory() as uow:
        assert uow.ledger.balance("merchant:mch_A:pending") == CNY(len(members) * (7 + 8 + 9 + 10 + 11))
    assert verify_ledger(uow_factory).is_sound


def test_the_database_itself_refuses_an_unbalanced_entry(engine: Engine, uow_factory: UnitOfWorkFactory) -> None:
    post_entry(uow_factory, payment_entry("pay_4", 100, 1))
    with engine.connect() as connection:
        account_id = connection.execute(text("SELECT min(id) FROM ledger_accounts")).scalar_one()
    with pytest.raises(DBAPIError, match="unbalanced"), engine.begin() as connection:
        connection.execute(
            insert(postings).values(entry_id="je_bad", account_id=account_id, amount_minor=5, currency="CNY")
        )
        connection.execute(
            insert(postings).values(entry_id="je_bad", account_id=account_id, amount_minor=-4, currency="CNY")
        )
        connection.execute(
            insert(journal_entries).values(
                id="je_bad", event="x", source_id="y", description="", created_at=datetime.now(UTC)
            )
        )
    assert verify_ledger(uow_factory).is_sound


def test_the_database_refuses_edits_to_postings(engine: Engine, uow_factory: UnitOfWorkFactory) -> None:
    post_entry(uow_factory, payment_entry("pay_5", 100, 1))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text("UPDATE postings SET amount_minor = amount_minor + 1"))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text("DELETE FROM journal_entries"))


def test_verify_names_a_posting_altered_behind_its_back(engine: Engine, uow_factory: UnitOfWorkFactory) -> None:
    entry = payment_entry("pay_6", 2_000, 12)
    post_entry(uow_factory, entry)
    post_entry(uow_factory, payment_entry("pay_7", 3_000, 18))
    _tamper(
        engine,
        "UPDATE postings SET amount_minor = amount_minor + 1 WHERE id = "
        f"(SELECT min(id) FROM postings WHERE entry_id = '{entry.id}')",
    )
    report = verify_ledger(uow_factory)
    assert report.problem is not None
    assert report.problem.invariant == "balanced_entries"
    assert report.problem.subject == entry.id


def test_verify_names_a_stored_balance_that_drifted(engine: Engine, uow_factory: UnitOfWorkFactory) -> None:
    post_entry(uow_factory, top_up("mbr_3", 700, "top_3"))
    with engine.begin() as connection:
        connection.execute(
            ledger_accounts.update().where(ledger_accounts.c.code == "member:mbr_3:wallet").values(balance_minor=701)
        )
    report = verify_ledger(uow_factory)
    assert report.problem is not None
    assert report.problem.invariant == "stored_balance_equals_postings"
    assert report.problem.subject == "member:mbr_3:wallet"


def _tamper(engine: Engine, statement: str) -> None:
    """Alters the ledger the way only someone bypassing the application (and its triggers) could."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            connection.execute(text(statement))
        else:
            connection.execute(text("DROP TRIGGER postings_no_update"))
            connection.execute(text(statement))
