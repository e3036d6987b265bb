"""The housekeeping job on both databases with a settable clock: rows past their use are deleted, live
ones and everything a page, ``resend`` or a repeated request still reads are kept, reruns delete
nothing more, and two workers purging at once share the work without error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Table, func, select

from tests.bindings.conftest import ZHANG_WEI, register
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db.tables import (
    events,
    idempotency_records,
    member_sessions,
    merchant_user_sessions,
    operator_sessions,
    rate_limit_counters,
    request_replays,
    sms_codes,
    sms_outbox,
    webhook_attempts,
)
from tianpay.adapters.rate_limits import SqlLimitsStorage
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.member import SmsCode, SmsPurpose
from tianpay.domain.notifications import EventStatus
from tianpay.entrypoints.cashier.security import NONCE_MAX_AGE_S
from tianpay.entrypoints.console.routes import console_tools
from tianpay.entrypoints.demo_merchant import ensure_demo_merchant
from tianpay.entrypoints.demo_merchant_portal import ensure_demo_portal_login
from tianpay.entrypoints.demo_operator import ensure_demo_operator
from tianpay.entrypoints.merchant_portal.routes import portal_tools
from tianpay.entrypoints.worker import housekeeping_job
from tianpay.ports.outbox import AttemptOutcome, AttemptRecord
from tianpay.services import console, members, merchant_users
from tianpay.services.housekeeping import MIN_IDEMPOTENCY_RETENTION, HousekeepingPolicy, purge_once
from tianpay.services.idempotency import run_idempotent
from tianpay.services.pii import phone_fingerprint


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
    assert purged_by_two_workers(platform, clock, policy, "request_replays") == 1_200
    assert count(platform, request_replays) == 0


def store_answer(container: Container, merchant_id: str, scope: str, key: str) -> None:
    """An idempotent write as the services make one: the key claimed and its answer stored."""
    run_idempotent(container.uow, merchant_id=merchant_id, scope=scope, key=key, request_hash="h" * 64,
                   create=lambda uow: (201, {"id": key}))


def idempotency_keys(container: Container) -> set[str]:
    return keys(container, idempotency_records, "key")


def test_idempotency_records_go_after_the_retention_and_a_pending_one_stays(
    platform: Container, clock: SettableClock
) -> None:
    store_answer(platform, "mch_A", "payments", "T-old")
    store_answer(platform, "mch_tianpay_wallet", "wallet_withdrawals", "mbr_1:form-old")
    # A claim committed without its answer: the services never leave one (claim and answer share a
    # transaction), and the purge must not delete what a unit of work may still be completing.
    with platform.uow() as uow:
        assert uow.idempotency.claim("mch_A", "refunds", "R-pending", "h" * 64)
        uow.commit()

    policy = HousekeepingPolicy(idempotency_retention=timedelta(days=30))
    clock.advance(timedelta(days=29))
    store_answer(platform, "mch_A", "payouts", "P-recent")
    assert purge_once(platform.uow, clock.now(), policy)["idempotency_records"] == 0

    clock.advance(timedelta(days=2))
    assert purge_once(platform.uow, clock.now(), policy)["idempotency_records"] == 2
    assert idempotency_keys(platform) == {"R-pending", "P-recent"}
    with platform.uow() as uow:
        assert uow.idempotency.get("mch_A", "payments", "T-old") is None
        assert uow.idempotency.get("mch_A", "payouts", "P-recent") is not None
    assert purge_once(platform.uow, clock.now(), policy)["idempotency_records"] == 0


def test_the_worker_keeps_idempotency_records_for_the_configured_days(
    db_url: str, clock: SettableClock, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=db_url, idempotency_retention_days=10)
    container = build_container(settings, clock=clock)
    try:
        store_answer(container, "mch_A", "payments", "T-1")
        job = housekeeping_job(container)
        clock.advance(timedelta(days=9, hours=23))
        assert job.run_once(clock.now()) == 0
        clock.advance(timedelta(hours=2))
        assert job.run_once(clock.now()) == 1
        assert idempotency_keys(container) == set()
    finally:
        container.close()


def test_a_wallet_form_key_outlives_every_form_that_can_still_be_sent() -> None:
    # A form passes its CSRF check while the browser keeps the nonce cookie; its key must be kept longer,
    # or a resent withdrawal form would find no first withdrawal and make a second one.
    assert timedelta(seconds=NONCE_MAX_AGE_S) < MIN_IDEMPOTENCY_RETENTION
    with pytest.raises(ValueError, match="at least 8 days"):
        HousekeepingPolicy(idempotency_retention=MIN_IDEMPOTENCY_RETENTION - timedelta(seconds=1))
    with pytest.raises(ValidationError):
        Settings(idempotency_retention_days=MIN_IDEMPOTENCY_RETENTION.days - 1)
    assert Settings(idempotency_retention_days=MIN_IDEMPOTENCY_RETENTION.days).idempotency_retention_days == 8


def outbox_codes(container: Container, phone: str) -> list[str]:
    tools = container.member_tools
    return [message.text for message in tools.sms.messages_to(phone_fingerprint(tools.cipher, phone))]


def test_outbox_sms_go_after_a_day(platform: Container, clock: SettableClock) -> None:
    members.send_registration_code(platform.uow, platform.member_tools, "13700137001")
    clock.advance(timedelta(hours=23))
    members.send_registration_code(platform.uow, platform.member_tools, "13700137002")
    policy = HousekeepingPolicy()
    assert purge_once(platform.uow, clock.now(), policy)["sms_outbox"] == 0

    clock.advance(timedelta(hours=1, seconds=1))
    assert purge_once(platform.uow, clock.now(), policy)["sms_outbox"] == 1
    assert outbox_codes(platform, "13700137001") == []
    assert len(outbox_codes(platform, "13700137002")) == 1
    assert count(platform, sms_outbox) == 1
    assert purge_once(platform.uow, clock.now(), policy)["sms_outbox"] == 0


def test_two_workers_purging_old_idempotency_records_at_once_share_them(
    platform: Container, clock: SettableClock
) -> None:
    with platform.uow() as uow:
        for n in range(600):
            assert uow.idempotency.claim("mch_A", "payments", f"T-{n}", "h" * 64)
            uow.idempotency.complete("mch_A", "payments", f"T-{n}", 201, "{}")
        uow.commit()
    clock.advance(timedelta(days=31))
    policy = HousekeepingPolicy(batch_size=50)
    assert purged_by_two_workers(platform, clock, policy, "idempotency_records") == 600
    assert count(platform, idempotency_records) == 0


def purged_by_two_workers(platform: Container, clock: SettableClock, policy: HousekeepingPolicy, kind: str) -> int:
    """Two workers purge ``kind`` at once until nothing is left; returns how many rows they deleted together."""
    deleted: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker() -> None:
        start.wait()
        try:
            while done := purge_once(platform.uow, clock.now(), policy)[kind]:
                deleted.append(done)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return sum(deleted)
