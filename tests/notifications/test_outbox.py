"""The transactional outbox on a real database: an event commits or rolls back with its change."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db.tables import events, journal_entries
from tianpay.domain.ledger import JournalEntry, bank_reserve, credit, debit, merchant_pending
from tianpay.domain.money import Money
from tianpay.domain.notifications import EventStatus, EventType
from tianpay.ports.outbox import AttemptOutcome, AttemptRecord
from tianpay.ports.unit_of_work import UnitOfWorkFactory

from .conftest import MakeMerchant


def count(engine: Engine, table: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def payment_entry(merchant_id: str) -> JournalEntry:
    amount = Money.cny(10_000)
    return JournalEntry(
        "payment.succeeded",
        "pay_1",
        (debit(bank_reserve("HBB"), amount), credit(merchant_pending(merchant_id), amount)),
    )


def test_an_event_added_in_a_committed_unit_of_work_is_pending_and_due_now(
    engine: Engine, uow_factory: UnitOfWorkFactory, clock: SettableClock, make_merchant: MakeMerchant
) -> None:
    merchant_id, _ = make_merchant("http://127.0.0.1:9/hook")
    with uow_factory() as uow:
        event_id = uow.outbox.add_event(merchant_id, EventType.PAYMENT_SUCCEEDED, {"id": "pay_1"})
        uow.commit()

    assert event_id.startswith("evt_")
    with uow_factory() as uow:
        event = uow.outbox.get_event(merchant_id, event_id)
    assert event is not None
    assert event.status is EventStatus.PENDING
    assert event.attempt_count == 0
    assert event.next_attempt_at == clock.now()
    assert json.loads(event.body) == {
        "type": "payment.succeeded",
        "timestamp": "2026-11-27T02:00:00.000Z",
        "data": {"id": "pay_1"},
    }


def test_a_rolled_back_unit_of_work_leaves_neither_the_change_nor_its_event(
    engine: Engine, uow_factory: UnitOfWorkFactory, make_merchant: MakeMerchant
) -> None:
    merchant_id, _ = make_merchant("http://127.0.0.1:9/hook")

    class BankSaidNo(Exception):
        pass

    with pytest.raises(BankSaidNo), uow_factory() as uow:
        uow.ledger.post(payment_entry(merchant_id))
        uow.outbox.add_event(merchant_id, EventType.PAYMENT_SUCCEEDED, {"id": "pay_1"})
        raise BankSaidNo

    assert count(engine, journal_entries) == 0
    assert count(engine, events) == 0

    with uow_factory() as uow:
        uow.ledger.post(payment_entry(merchant_id))
        uow.outbox.add_event(merchant_id, EventType.PAYMENT_SUCCEEDED, {"id": "pay_1"})
        uow.commit()

    assert count(engine, journal_entries) == 1
    assert count(engine, events) == 1


def test_an_unknown_event_type_is_refused(uow_factory: UnitOfWorkFactory, make_merchant: MakeMerchant) -> None:
    merchant_id, _ = make_merchant(None)
    with uow_factory() as uow, pytest.raises(ValueError, match=r"payment\.exploded"):
        uow.outbox.add_event(merchant_id, "payment.exploded", {})


def test_a_string_event_type_from_the_list_is_accepted(
    uow_factory: UnitOfWorkFactory, make_merchant: MakeMerchant
) -> None:
    merchant_id, _ = make_merchant(None)
    with uow_factory() as uow:
        event_id = uow.outbox.add_event(merchant_id, "refund.succeeded", {"id": "rfd_1"})
        uow.commit()
    with uow_factory() as uow:
        event = uow.outbox.get_event(merchant_id, event_id)
    assert event is not None
    assert event.type is EventType.REFUND_SUCCEEDED


def test_a_lease_keeps_other_workers_off_until_it_expires_and_a_lost_lease_records_nothing(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, make_merchant: MakeMerchant
) -> None:
    merchant_id, _ = make_merchant("http://127.0.0.1:9/hook")
    with uow_factory() as uow:
        event_id = uow.outbox.add_event(merchant_id, EventType.PAYOUT_SUCCEEDED, {"id": "pyo_1"})
        uow.commit()

    def claim(worker_id: str) -> list[str]:
        now = clock.now()
        with uow_factory() as uow:
            claimed = uow.outbox.claim_due(now, worker_id=worker_id, lease_until=now + timedelta(seconds=60), limit=10)
            uow.commit()
        return [event.id for event in claimed]

    assert claim("worker-a") == [event_id]
    assert claim("worker-b") == []
    clock.advance(timedelta(seconds=61))
    assert claim("worker-b") == [event_id]

    def record(worker_id: str) -> bool:
        outcome = AttemptOutcome(
            event_id=event_id,
            worker_id=worker_id,
            attempt=AttemptRecord(1, clock.now(), True, 200, 5, None),
            status=EventStatus.DELIVERED,
            next_attempt_at=None,
            delivered_at=clock.now(),
        )
        with uow_factory() as uow:
            recorded = uow.outbox.record_attempt(outcome)
            uow.commit()
        return recorded

    assert record("worker-a") is False
    assert record("worker-b") is True
    with uow_factory() as uow:
        event = uow.outbox.get_event(merchant_id, event_id)
    assert event is not None
    assert event.status is EventStatus.DELIVERED
    assert [a.attempt_no for a in event.attempts] == [1]


def test_another_merchants_event_is_invisible(uow_factory: UnitOfWorkFactory, make_merchant: MakeMerchant) -> None:
    owner, _ = make_merchant(None)
    stranger, _ = make_merchant(None)
    with uow_factory() as uow:
        event_id = uow.outbox.add_event(owner, EventType.PAYMENT_CLOSED, {"id": "pay_1"})
        uow.commit()
    with uow_factory() as uow:
        assert uow.outbox.get_event(stranger, event_id) is None
        assert uow.outbox.list_events(stranger).events == ()
