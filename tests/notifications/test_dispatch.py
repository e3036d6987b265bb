"""Outbox dispatch over real HTTP to a live merchant endpoint, on SQLite and PostgreSQL.

The clock is a SettableClock moved to each event's next attempt, so a schedule of a day runs in a
fraction of a second; the HTTP, signatures, database and leases are all real.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db.tables import merchants
from tianpay.adapters.webhooks import HttpxWebhookSender
from tianpay.config import WEBHOOK_RETRY_SCHEDULE_S
from tianpay.domain.errors import NotFound
from tianpay.domain.notifications import EventStatus, EventType
from tianpay.ports.outbox import EventRecord
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.notifications import (
    DispatchPolicy,
    DispatchReport,
    dispatch_due_events,
    get_event,
    list_events,
    resend_event,
)

from .conftest import MakeMerchant, new_webhook_secret
from .merchant_endpoint import MerchantEndpoint

POLICY = DispatchPolicy(retry_schedule_s=WEBHOOK_RETRY_SCHEDULE_S, retry_scale=0.001, batch_size=10, timeout_s=2)


@pytest.fixture
def sender() -> Iterator[HttpxWebhookSender]:
    sender = HttpxWebhookSender(timeout_s=2)
    yield sender
    sender.close()


def add_event(uow_factory: UnitOfWorkFactory, merchant_id: str, data: dict[str, object] | None = None) -> str:
    with uow_factory() as uow:
        event_id = uow.outbox.add_event(merchant_id, EventType.PAYMENT_SUCCEEDED, data or {"id": "pay_1"})
        uow.commit()
    return event_id


def dispatch(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    worker_id: str = "worker-1",
    policy: DispatchPolicy = POLICY,
) -> DispatchReport:
    return dispatch_due_events(uow_factory, sender, clock, policy, worker_id=worker_id, now=clock.now())


def run_until_settled(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    merchant_id: str,
    event_id: str,
) -> EventRecord:
    """Dispatches, then jumps the clock to the next attempt, until the event is no longer pending."""
    for _ in range(40):
        dispatch(uow_factory, sender, clock)
        event = get_event(uow_factory, merchant_id, event_id)
        if event.status is not EventStatus.PENDING:
            return event
        assert event.next_attempt_at is not None
        clock.set(max(clock.now(), event.next_attempt_at))
    raise AssertionError("the event never settled")


def test_a_delivered_webhook_verifies_with_the_standard_webhooks_library(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    # The library checks the timestamp against the real time, so this test runs the clock at it.
    clock.set(datetime.now(UTC))
    merchant_id, secret = make_merchant(merchant_endpoint.url)
    event_id = add_event(uow_factory, merchant_id, {"id": "pay_1", "amount": 1234, "currency": "CNY"})

    report = dispatch(uow_factory, sender, clock)

    assert report.delivered == 1
    [request] = merchant_endpoint.received
    assert request.path == "/webhooks/tianpay"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == event_id
    assert request.headers["webhook-signature"].startswith("v1,")
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "payment.succeeded"
    assert payload["data"] == {"id": "pay_1", "amount": 1234, "currency": "CNY"}
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert secret not in json.dumps(request.headers)

    event = get_event(uow_factory, merchant_id, event_id)
    assert event.status is EventStatus.DELIVERED
    assert event.delivered_at is not None
    [attempt] = event.attempts
    assert (attempt.attempt_no, attempt.succeeded, attempt.response_status, attempt.error) == (1, True, 200, None)
    assert attempt.latency_ms >= 0


def test_a_signature_made_with_another_secret_does_not_verify(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    clock.set(datetime.now(UTC))
    merchant_id, _ = make_merchant(merchant_endpoint.url)
    add_event(uow_factory, merchant_id)
    dispatch(uow_factory, sender, clock)
    [request] = merchant_endpoint.received
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(request.body, request.headers)


def test_an_endpoint_that_fails_six_times_then_succeeds_gets_the_event_exactly_once_more(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    merchant_id, _ = make_merchant(merchant_endpoint.url)
    merchant_endpoint.fail_next(6, status=503)
    event_id = add_event(uow_factory, merchant_id)
    created_at = clock.now()

    event = run_until_settled(uow_factory, sender, clock, merchant_id, event_id)

    assert event.status is EventStatus.DELIVERED
    assert event.attempt_count == 7
    assert [a.response_status for a in event.attempts] == [503] * 6 + [200]
    assert [a.succeeded for a in event.attempts] == [False] * 6 + [True]
    assert [a.attempt_no for a in event.attempts] == [1, 2, 3, 4, 5, 6, 7]
    assert all(a.latency_ms >= 0 for a in event.attempts)
    assert all(a.error == "HTTP 503: endpoint says no" for a in event.attempts[:6])
    # The tries followed the compressed schedule: 15s, 15s, 30s, 3m, 10m, 20m at 1/1000.
    gaps_s = [
        (later.started_at - earlier.started_at).total_seconds()
        for earlier, later in zip(event.attempts, event.attempts[1:], strict=False)
    ]
    assert gaps_s == pytest.approx([0.015, 0.015, 0.03, 0.18, 0.6, 1.2])
    assert event.attempts[0].started_at == created_at

    # Every retry is the same webhook: same id and same bytes, so the merchant can de-duplicate.
    received = merchant_endpoint.received
    assert len(received) == 7
    assert {r.webhook_id for r in received} == {event_id}
    assert len({r.body for r in received}) == 1

    # Nothing more is sent, however long the worker keeps running.
    clock.advance(timedelta(days=2))
    assert dispatch(uow_factory, sender, clock).claimed == 0
    assert len(merchant_endpoint.received) == 7


def test_after_sixteen_failed_tries_the_event_is_failed_and_a_resend_delivers_it(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    merchant_id, _ = make_merchant(merchant_endpoint.url)
    merchant_endpoint.fail_next(1000)
    event_id = add_event(uow_factory, merchant_id)

    event = run_until_settled(uow_factory, sender, clock, merchant_id, event_id)

    assert event.status is EventStatus.FAILED
    assert event.attempt_count == 16
    assert event.next_attempt_at is None
    assert len(merchant_endpoint.received) == 16
    clock.advance(timedelta(days=2))
    assert dispatch(uow_factory, sender, clock).claimed == 0

    merchant_endpoint.fail_next(0)
    resent = resend_event(uow_factory, clock, merchant_id, event_id)
    assert resent.status is EventStatus.PENDING
    assert resent.next_attempt_at == clock.now()

    report = dispatch(uow_factory, sender, clock)

    assert report.delivered == 1
    event = get_event(uow_factory, merchant_id, event_id)
    assert event.status is EventStatus.DELIVERED
    assert event.attempt_count == 17
    assert event.attempts[-1].attempt_no == 17
    assert event.attempts[-1].response_status == 200
    assert len(merchant_endpoint.received) == 17


def test_a_resend_that_fails_again_after_the_schedule_is_used_up_fails_at_once(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    merchant_id, _ = make_merchant(merchant_endpoint.url)
    merchant_endpoint.fail_next(1000)
    event_id = add_event(uow_factory, merchant_id)
    run_until_settled(uow_factory, sender, clock, merchant_id, event_id)

    resend_event(uow_factory, clock, merchant_id, event_id)
    dispatch(uow_factory, sender, clock)

    event = get_event(uow_factory, merchant_id, event_id)
    assert event.status is EventStatus.FAILED
    assert event.attempt_count == 17


def test_a_delivered_event_can_be_resent_and_is_delivered_again_with_the_same_id(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    merchant_id, _ = make_merchant(merchant_endpoint.url)
    event_id = add_event(uow_factory, merchant_id)
    dispatch(uow_factory, sender, clock)
    clock.advance(timedelta(minutes=5))

    resend_event(uow_factory, clock, merchant_id, event_id)
    dispatch(uow_factory, sender, clock)

    first, second = merchant_endpoint.received
    assert first.webhook_id == second.webhook_id == event_id
    assert first.body == second.body
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 300
    assert get_event(uow_factory, merchant_id, event_id).attempt_count == 2


def test_resending_an_unknown_or_foreign_event_is_not_found(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, make_merchant: MakeMerchant
) -> None:
    owner, _ = make_merchant(None)
    stranger, _ = make_merchant(None)
    event_id = add_event(uow_factory, owner)
    with pytest.raises(NotFound):
        resend_event(uow_factory, clock, stranger, event_id)
    with pytest.raises(NotFound):
        resend_event(uow_factory, clock, owner, "evt_nope")


def test_a_merchant_without_an_endpoint_spends_tries_visibly_and_gets_the_event_once_configured(
    engine: Engine,
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    merchant_id, _ = make_merchant(None)
    event_id = add_event(uow_factory, merchant_id)

    dispatch(uow_factory, sender, clock)

    event = get_event(uow_factory, merchant_id, event_id)
    assert event.status is EventStatus.PENDING
    [attempt] = event.attempts
    assert (attempt.succeeded, attempt.response_status, attempt.error) == (
        False,
        None,
        "no webhook endpoint configured",
    )

    with engine.begin() as connection:
        connection.execute(
            update(merchants).where(merchants.c.id == merchant_id).values(webhook_url=merchant_endpoint.url)
        )
    event = run_until_settled(uow_factory, sender, clock, merchant_id, event_id)
    assert event.status is EventStatus.DELIVERED
    assert event.attempt_count == 2


def test_an_unreachable_endpoint_is_a_failed_attempt_with_an_error_and_no_status(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    make_merchant: MakeMerchant,
) -> None:
    # Port 9 (discard) on loopback is closed in the test environment: the connection is refused.
    merchant_id, secret = make_merchant("http://user:hunter2@127.0.0.1:9/hook?token=abc")
    event_id = add_event(uow_factory, merchant_id)

    report = dispatch(uow_factory, sender, clock)

    assert report.retried == 1
    [attempt] = get_event(uow_factory, merchant_id, event_id).attempts
    assert attempt.response_status is None
    assert attempt.error is not None
    assert attempt.error.startswith("ConnectError")
    for leaked in ("hunter2", "token=abc", secret):
        assert leaked not in attempt.error


def test_a_slow_endpoint_times_out_and_the_event_is_retried(
    uow_factory: UnitOfWorkFactory,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    merchant_id, _ = make_merchant(merchant_endpoint.url)
    event_id = add_event(uow_factory, merchant_id)
    merchant_endpoint.delay_s = 0.5
    impatient = HttpxWebhookSender(timeout_s=0.1)

    report = dispatch(uow_factory, impatient, clock)

    assert report.retried == 1
    [attempt] = get_event(uow_factory, merchant_id, event_id).attempts
    assert attempt.response_status is None
    assert attempt.error is not None
    assert attempt.error.startswith("timeout")
    impatient.close()


def test_retry_after_from_the_merchant_lengthens_the_wait(
    uow_factory: UnitOfWorkFactory,
    sender: HttpxWebhookSender,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    merchant_id, _ = make_merchant(merchant_endpoint.url)
    merchant_endpoint.fail_next(1, status=429, retry_after="120")
    event_id = add_event(uow_factory, merchant_id)
    started = clock.now()

    dispatch(uow_factory, sender, clock)

    event = get_event(uow_factory, merchant_id, event_id)
    assert event.next_attempt_at == started + timedelta(seconds=120 * POLICY.retry_scale)


def test_events_are_listed_newest_first_with_a_cursor_and_a_type_filter(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, make_merchant: MakeMerchant
) -> None:
    merchant_id, _ = make_merchant(None)
    ids = []
    for index in range(5):
        with uow_factory() as uow:
            kind = EventType.REFUND_SUCCEEDED if index % 2 else EventType.PAYMENT_SUCCEEDED
            ids.append(uow.outbox.add_event(merchant_id, kind, {"n": index}))
            uow.commit()
        clock.advance(timedelta(seconds=1))

    first = list_events(uow_factory, merchant_id, limit=2)
    second = list_events(uow_factory, merchant_id, limit=2, starting_after=first.events[-1].id)
    third = list_events(uow_factory, merchant_id, limit=2, starting_after=second.events[-1].id)
    refunds = list_events(uow_factory, merchant_id, type=EventType.REFUND_SUCCEEDED)

    assert [e.id for e in first.events + second.events + third.events] == ids[::-1]
    assert (first.has_more, second.has_more, third.has_more) == (True, True, False)
    assert [e.id for e in refunds.events] == [ids[3], ids[1]]


@pytest.mark.timeout(60)
def test_two_workers_running_at_once_never_deliver_the_same_attempt_twice(
    uow_factory: UnitOfWorkFactory,
    clock: SettableClock,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    merchant_id, _ = make_merchant(merchant_endpoint.url)
    event_ids = {add_event(uow_factory, merchant_id, {"n": n}) for n in range(50)}
    policy = DispatchPolicy(retry_schedule_s=WEBHOOK_RETRY_SCHEDULE_S, retry_scale=0.001, batch_size=5)
    start = threading.Barrier(2)
    claimed_by: dict[str, int] = {}
    errors: list[BaseException] = []

    def work(worker_id: str) -> None:
        sender = HttpxWebhookSender(timeout_s=5)
        try:
            start.wait()
            total = 0
            while (report := dispatch(uow_factory, sender, clock, worker_id, policy)).claimed:
                total += report.claimed
                assert report.lost_leases == 0
            claimed_by[worker_id] = total
        except BaseException as exc:
            errors.append(exc)
        finally:
            sender.close()

    threads = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    deliveries = Counter(r.webhook_id for r in merchant_endpoint.received)
    assert set(deliveries) == event_ids
    assert set(deliveries.values()) == {1}
    assert sum(claimed_by.values()) == 50
    page = list_events(uow_factory, merchant_id, limit=100)
    assert {(e.status, e.attempt_count) for e in page.events} == {(EventStatus.DELIVERED, 1)}
