"""Idempotent writes on both databases: replay returns the first answer, a changed body is a 409,
a failed create leaves the key free, and concurrent duplicates end with exactly one resource."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.lock_waits import wait_until_sessions_wait_on_locks
from tianpay.adapters.db.tables import idempotency_records, ledger_accounts
from tianpay.domain.errors import DomainError, IdempotencyConflict, IdempotencyRecordExpired
from tianpay.domain.ledger import AccountSpec, AccountType
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services.idempotency import StoredResponse, request_hash, run_idempotent


def _create_account(code: str) -> Any:
    """A stand-in resource: a ledger account whose code is unique, as a payment's id would be."""

    def create(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        uow.ledger.ensure_accounts([AccountSpec(code, AccountType.LIABILITY)])
        return 201, {"id": code, "amount": 1999, "nested": {"ok": True}}

    return create


def _run(uow_factory: UnitOfWorkFactory, key: str, body: dict[str, Any], code: str) -> StoredResponse:
    return run_idempotent(
        uow_factory, merchant_id="mch_A", scope="payments", key=key, request_hash=request_hash(body),
        create=_create_account(code), param="out_trade_no",
    )


def _accounts(engine: Engine, prefix: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(
            select(func.count()).select_from(ledger_accounts).where(ledger_accounts.c.code.like(prefix + "%"))
        ).scalar_one())


def test_the_hash_ignores_key_order_but_not_values() -> None:
    assert request_hash({"a": 1, "b": [1, 2]}) == request_hash({"b": [1, 2], "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})


def test_a_repeat_returns_the_first_answer_without_creating_again(
    uow_factory: UnitOfWorkFactory, engine: Engine
) -> None:
    first = _run(uow_factory, "T1", {"amount": 1999}, "acct:T1:first")
    again = _run(uow_factory, "T1", {"amount": 1999}, "acct:T1:second")
    assert (first.status_code, first.replayed) == (201, False)
    assert (again.status_code, again.replayed) == (201, True)
    assert again.body == first.body == {"id": "acct:T1:first", "amount": 1999, "nested": {"ok": True}}
    assert _accounts(engine, "acct:T1:") == 1


def test_the_same_key_with_another_body_is_a_conflict(uow_factory: UnitOfWorkFactory) -> None:
    _run(uow_factory, "T2", {"amount": 1999}, "acct:T2:a")
    with pytest.raises(IdempotencyConflict) as raised:
        _run(uow_factory, "T2", {"amount": 2000}, "acct:T2:b")
    assert raised.value.param == "out_trade_no"
    assert raised.value.code == "idempotency_conflict"
    assert raised.value.kind == "idempotency_error"


def test_keys_are_per_merchant_and_scope(uow_factory: UnitOfWorkFactory) -> None:
    body = {"amount": 1}
    run_idempotent(uow_factory, merchant_id="mch_A", scope="payments", key="K", request_hash=request_hash(body),
                   create=_create_account("acct:K:1"))
    other_merchant = run_idempotent(
        uow_factory, merchant_id="mch_B", scope="payments", key="K", request_hash=request_hash(body),
        create=_create_account("acct:K:2"))
    other_scope = run_idempotent(
        uow_factory, merchant_id="mch_A", scope="refunds", key="K", request_hash=request_hash(body),
        create=_create_account("acct:K:3"))
    assert not other_merchant.replayed
    assert not other_scope.replayed


def test_a_failed_create_stores_nothing_and_leaves_the_key_free(
    uow_factory: UnitOfWorkFactory, engine: Engine
) -> None:
    def refuse(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        uow.ledger.ensure_accounts([AccountSpec("acct:T3:half-done", AccountType.LIABILITY)])
        raise DomainError("refused", param="amount")

    with pytest.raises(DomainError):
        run_idempotent(uow_factory, merchant_id="mch_A", scope="payments", key="T3",
                       request_hash=request_hash({}), create=refuse)
    assert _accounts(engine, "acct:T3:") == 0
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(idempotency_records)).scalar_one() == 0
    assert not _run(uow_factory, "T3", {"amount": 5}, "acct:T3:ok").replayed


def test_a_refusal_is_passed_on_unchanged_when_no_resource_holds_the_key(uow_factory: UnitOfWorkFactory) -> None:
    # ``taken_by`` turns a refusal into IdempotencyRecordExpired only when a resource has the key (a
    # record housekeeping purged); a new request refused on its own merits keeps its own error.
    asked: list[str] = []

    def refuse(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        raise DomainError("refused", param="amount")

    def taken_by(uow: UnitOfWork) -> str | None:
        asked.append("T8")
        return None

    with pytest.raises(DomainError) as raised:
        run_idempotent(uow_factory, merchant_id="mch_A", scope="payments", key="T8",
                       request_hash=request_hash({}), create=refuse, param="out_trade_no", taken_by=taken_by)
    assert type(raised.value) is DomainError
    assert asked == ["T8"]

    def taken(uow: UnitOfWork) -> str | None:
        return "acct:T8:first"

    with pytest.raises(IdempotencyRecordExpired) as expired:
        run_idempotent(uow_factory, merchant_id="mch_A", scope="payments", key="T8",
                       request_hash=request_hash({}), create=refuse, param="out_trade_no", taken_by=taken)
    assert (expired.value.code, expired.value.kind, expired.value.param) == (
        "idempotency_record_expired", "idempotency_error", "out_trade_no"
    )
    assert "acct:T8:first" in expired.value.message


def test_concurrent_duplicates_create_exactly_one_resource(uow_factory: UnitOfWorkFactory, engine: Engine) -> None:
    results: list[StoredResponse] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            result = _run(uow_factory, "T4", {"amount": 1999}, f"acct:T4:{i}")
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 8
    assert sum(not r.replayed for r in results) == 1
    assert len({r.body["id"] for r in results}) == 1
    assert _accounts(engine, "acct:T4:") == 1


# ---- a second request while the first is still open (PostgreSQL) --------------------------------------
# The barrier above starts the threads together but cannot promise that their claims overlap. These
# tests make the overlap certain: the first request stops inside ``create`` with its key claimed and its
# transaction open, and the second is let go only once PostgreSQL shows it waiting on a lock (its claim
# waits on the first's uncommitted row). SQLite is left out: there BEGIN IMMEDIATE makes the second
# wait before its claim, where no lock is visible to wait for.


class _InThread:
    """Runs ``work()`` in a thread; ``join`` returns its answer, or the error it raised."""

    def __init__(self, work: Callable[[], StoredResponse]) -> None:
        self.result: StoredResponse | BaseException | None = None
        self._work = work
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._work()
        except BaseException as error:
            self.result = error

    def join(self) -> StoredResponse | BaseException | None:
        self._thread.join()
        return self.result


class _HeldOpen(_InThread):
    """A request whose ``create`` claims its key and then waits to be told to finish (or to fail)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, key: str, code: str, *, fail: bool = False) -> None:
        self.claimed = threading.Event()
        self.finish = threading.Event()
        inner = _create_account(code)

        def create(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            answer: tuple[int, dict[str, Any]] = inner(uow)
            self.claimed.set()
            self.finish.wait()
            if fail:
                raise DomainError("refused after the claim", param="amount")
            return answer

        def work() -> StoredResponse:
            try:
                return run_idempotent(
                    uow_factory, merchant_id="mch_A", scope="payments", key=key,
                    request_hash=request_hash({"amount": 1999}), create=create, param="out_trade_no",
                )
            finally:
                # Also on an early error, so that the test waiting for the claim goes on and fails.
                self.claimed.set()

        super().__init__(work)


@pytest.fixture
def pg_uow_factory(uow_factory: UnitOfWorkFactory, engine: Engine) -> UnitOfWorkFactory:
    if engine.dialect.name != "postgresql":
        pytest.skip("the overlap is observed through PostgreSQL's lock waits")
    return uow_factory


def test_a_repeat_that_arrives_while_the_first_is_open_waits_and_gets_the_first_answer(
    pg_uow_factory: UnitOfWorkFactory, engine: Engine
) -> None:
    first = _HeldOpen(pg_uow_factory, "T5", "acct:T5:first")
    first.claimed.wait()
    second = _InThread(lambda: _run(pg_uow_factory, "T5", {"amount": 1999}, "acct:T5:second"))
    wait_until_sessions_wait_on_locks(engine)
    first.finish.set()
    won, repeated = first.join(), second.join()
    assert isinstance(won, StoredResponse), won
    assert isinstance(repeated, StoredResponse), repeated
    assert (won.replayed, repeated.replayed) == (False, True)
    assert repeated.body == won.body == {"id": "acct:T5:first", "amount": 1999, "nested": {"ok": True}}
    assert _accounts(engine, "acct:T5:") == 1


def test_a_changed_body_that_arrives_while_the_first_is_open_is_a_conflict_once_the_first_commits(
    pg_uow_factory: UnitOfWorkFactory, engine: Engine
) -> None:
    first = _HeldOpen(pg_uow_factory, "T6", "acct:T6:first")
    first.claimed.wait()
    second = _InThread(lambda: _run(pg_uow_factory, "T6", {"amount": 2000}, "acct:T6:second"))
    wait_until_sessions_wait_on_locks(engine)
    first.finish.set()
    assert isinstance(first.join(), StoredResponse)
    assert isinstance(second.join(), IdempotencyConflict)
    assert _accounts(engine, "acct:T6:") == 1


def test_a_repeat_waiting_on_a_first_request_that_fails_creates_the_resource_itself(
    pg_uow_factory: UnitOfWorkFactory, engine: Engine
) -> None:
    first = _HeldOpen(pg_uow_factory, "T7", "acct:T7:first", fail=True)
    first.claimed.wait()
    second = _InThread(lambda: _run(pg_uow_factory, "T7", {"amount": 1999}, "acct:T7:second"))
    wait_until_sessions_wait_on_locks(engine)
    first.finish.set()
    assert isinstance(first.join(), DomainError)
    taken_over = second.join()
    assert isinstance(taken_over, StoredResponse)
    assert not taken_over.replayed
    assert taken_over.body["id"] == "acct:T7:second"
    assert _accounts(engine, "acct:T7:") == 1
