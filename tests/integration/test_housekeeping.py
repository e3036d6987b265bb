"""The housekeeping job on both databases with a settable clock: rows past their use are deleted, live
ones and everything a page or ``resend`` still reads are kept, reruns delete nothing more, and two
workers purging at once share the work without error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Table, func, select

from tests.bindings.conftest import ZHANG_WEI, register
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db.tables import (
    events,
    member_sessions,
    merchant_user_sessions,
    operator_sessions,
    rate_limit_counters,
    request_replays,
    sms_codes,
    webhook_attempts,
)
from tianpay.adapters.rate_limits import SqlLimitsStorage
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.member import SmsCode, SmsPurpose
from tianpay.domain.notifications import EventStatus
from tianpay.entrypoints.console.routes import console_tools
from tianpay.entrypoints.demo_merchant import ensure_demo_merchant
from tianpay.entrypoints.demo_merchant_portal import ensure_demo_portal_login
from tianpay.entrypoints.demo_operator import ensure_demo_operator
from tianpay.entrypoints.merchant_portal.routes import portal_tools
from tianpay.entrypoints.worker import housekeeping_job
from tianpay.ports.outbox import AttemptOutcome, AttemptRecord
from tianpay.services import console, members, merchant_users
from tianpay.services.housekeeping import HousekeepingPolicy, purge_once


@pytest.fixture
def platform(db_url: str, clock: SettableClock, tmp_path: Path) -> Iterator[Container]:
    settings = Settings(
        data_dir=tmp_path, database_url=db_url, argon2_time_cost=1, argon2_memory_cost_kib=8, argon2_parallelism=1
    )
    container = build_container(settings, clock=clock)
    yield container
    container.close()


def count(container: Container, table: Table) -> int:
    with container.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def keys(container: Container, table: Table, column: str) -> set[str]:
    with container.engine.connect() as connection:
        return set(connection.execute(select(table.c[column])).scalars())


class Sessions:
    """One wallet, one portal and one console session, opened through the real sign-in services."""

    def __init__(self, container: Container) -> None:
        self.container = container
        merchant_id = ensure_demo_merchant(container).merchant_id
        operator = ensure_demo_operator(container)
        portal = ensure_demo_portal_login(container, merchant_id)
        self.member_id = register(container.uow, container.member_tools, merchant_id, ZHANG_WEI)
        self.operator = console.log_in(container.uow, console_tools(container), operator.username, operator.password)
        self.user = merchant_users.log_in(container.uow, portal_tools(container), portal.username, portal.password)

    def open(self) -> tuple[str, str, str]:
        c = self.container
        return (
            members.start_session(c.uow, c.member_tools, self.member_id),
            merchant_users.start_session(c.uow, portal_tools(c), self.user),
            console.start_session(c.uow, console_tools(c), self.operator),
        )

    def are_signed_in(self, tokens: tuple[str, str, str]) -> tuple[bool, bool, bool]:
        c = self.container
        wallet, portal, operator = tokens
        return (
            members.member_of_session(c.uow, c.member_tools, wallet) is not None,
            merchant_users.signed_in(c.uow, portal_tools(c), portal) is not None,
            console.signed_in(c.uow, console_tools(c), operator) is not None,
        )


def add_sms_code(container: Container, code_id: str) -> None:
    now = container.clock.now()
    with container.uow() as uow:
        uow.sms_codes.add(SmsCode(code_id, "fp-phone", SmsPurpose.REGISTER, "hash", now + timedelta(minutes=5), now))
        uow.commit()


def remember(container: Container, fingerprints: list[str], lifetime: timedelta) -> None:
    with container.uow() as uow:
        assert uow.replays.remember(fingerprints, container.clock.now() + lifetime)
        uow.commit()


def test_rows_past_their_use_are_deleted_and_live_ones_kept(platform: Container, clock: SettableClock) -> None:
    sessions = Sessions(platform)
    limits = SqlLimitsStorage(platform.engine, clock)
    old_tokens = sessions.open()
    add_sms_code(platform, "sms_old")
    limits.incr("test:old", 60)
    remember(platform, ["fp-old"], timedelta(minutes=5))

    clock.advance(timedelta(days=3))
    new_tokens = sessions.open()
    add_sms_code(platform, "sms_new")
    limits.incr("test:new", 3600)
    remember(platform, ["fp-new"], timedelta(minutes=5))
    assert sessions.are_signed_in(old_tokens) == (False, False, False)

    job = housekeeping_job(platform)
    assert job.run_once(clock.now()) == 6
    for table in (member_sessions, merchant_user_sessions, operator_sessions):
        assert count(platform, table) == 1, table.name
    assert sessions.are_signed_in(new_tokens) == (True, True, True)
    assert keys(platform, sms_codes, "id") == {"sms_new"}
    assert "test:old" not in keys(platform, rate_limit_counters, "key")
    assert limits.get("test:new") == 1
    assert keys(platform, request_replays, "fingerprint") == {"fp-new"}

    # After a batch the job looks again at once; after a run that found nothing it waits its interval.
    assert job.run_once(clock.now()) == 0
    remember(platform, ["fp-already-expired"], timedelta(seconds=-1))
    clock.advance(timedelta(seconds=platform.settings.housekeeping_interval_s / 2))
    assert job.run_once(clock.now()) == 0
    assert "fp-already-expired" in keys(platform, request_replays, "fingerprint")
    clock.advance(timedelta(seconds=platform.settings.housekeeping_interval_s))
    assert job.run_once(clock.now()) == 1
    clock.advance(timedelta(minutes=10))
    assert job.run_once(clock.now()) == 2
    assert count(platform, sms_codes) == 0
    assert keys(platform, request_replays, "fingerprint") == set()
    assert limits.get("test:new") == 1


def deliver(container: Container, outcomes: dict[str, EventStatus]) -> None:
    """Claims the due events as the dispatcher does and records one attempt for each named event."""
    now = container.clock.now()
    with container.uow() as uow:
        claimed = uow.outbox.claim_due(now, worker_id="w1", lease_until=now + timedelta(minutes=1), limit=10)
        assert set(outcomes) <= {event.id for event in claimed}
        for event_id, status in outcomes.items():
            is_delivered = status is EventStatus.DELIVERED
            attempt = AttemptRecord(1, now, is_delivered, 200 if is_delivered else 500, 5, None)
            assert uow.outbox.record_attempt(
                AttemptOutcome(event_id, "w1", attempt, status, None, now if is_delivered else None)
            )
        uow.commit()


def test_delivered_events_go_after_the_retention_and_pending_or_failed_ones_stay(
    platform: Container, clock: SettableClock
) -> None:
    merchant_id = ensure_demo_merchant(platform).merchant_id
    with platform.uow() as uow:
        old_delivered, pending, failed = (
            uow.outbox.add_event(merchant_id, "payment.succeeded", {"id": f"pay_{n}"}) for n in range(3)
        )
        uow.commit()
    deliver(platform, {old_delivered: EventStatus.DELIVERED, failed: EventStatus.FAILED})

    policy = HousekeepingPolicy(event_retention=timedelta(days=30))
    clock.advance(timedelta(days=29))
    with platform.uow() as uow:
        recent = uow.outbox.add_event(merchant_id, "payment.succeeded", {"id": "pay_recent"})
        uow.commit()
    deliver(platform, {recent: EventStatus.DELIVERED})
    assert purge_once(platform.uow, clock.now(), policy)["delivered_events"] == 0

    clock.advance(timedelta(days=2))
    assert purge_once(platform.uow, clock.now(), policy)["delivered_events"] == 1
    assert keys(platform, events, "id") == {pending, failed, recent}
    assert keys(platform, webhook_attempts, "event_id") == {failed, recent}
    with platform.uow() as uow:
        assert uow.outbox.get_event(merchant_id, old_delivered) is None
        assert uow.outbox.get_event(merchant_id, failed) is not None
    assert purge_once(platform.uow, clock.now(), policy)["delivered_events"] == 0


def test_two_workers_purging_at_once_share_the_backlog(platform: Container, clock: SettableClock) -> None:
    remember(platform, [f"fp-{n}" for n in range(1_200)], timedelta(minutes=5))
    clock.advance(timedelta(minutes=10))
    policy = HousekeepingPolicy(batch_size=100)
    deleted: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker() -> None:
        start.wait()
        try:
            while done := purge_once(platform.uow, clock.now(), policy)["request_replays"]:
                deleted.append(done)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sum(deleted) == 1_200
    assert count(platform, request_replays) == 0
