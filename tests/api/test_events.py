"""The notification log over the signed merchant API: list, show and resend events.

A real merchant endpoint receives the webhooks; the worker's dispatch job runs with a settable
clock so the retry schedule takes no real time, and what it recorded is read back through
``GET /v1/events`` exactly as a merchant would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from tests.notifications.merchant_endpoint import MerchantEndpoint
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.webhooks import HttpxWebhookSender
from tianpay.config import WEBHOOK_RETRY_SCHEDULE_S
from tianpay.domain.notifications import EventType
from tianpay.services.notifications import DispatchPolicy, dispatch_due_events, get_event

from .conftest import ApiServer, MerchantFactory
from .rfc9421_client import SignedClient

POLICY = DispatchPolicy(retry_schedule_s=WEBHOOK_RETRY_SCHEDULE_S, retry_scale=0.001, timeout_s=2)


@pytest.fixture
def merchant_endpoint() -> Iterator[MerchantEndpoint]:
    endpoint = MerchantEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def sender() -> Iterator[HttpxWebhookSender]:
    sender = HttpxWebhookSender(timeout_s=2)
    yield sender
    sender.close()


@pytest.fixture
def clock() -> SettableClock:
    # The API's container runs on the system clock; the dispatcher's clock starts there too.
    return SettableClock(datetime.now(UTC))


@pytest.fixture
def hooked_client(
    api_server: ApiServer, merchant_factory: MerchantFactory, merchant_endpoint: MerchantEndpoint
) -> Iterator[SignedClient]:
    """A signed client for a merchant whose webhooks go to the live test endpoint."""
    credentials = merchant_factory("ed25519", webhook_url=merchant_endpoint.url)
    client = SignedClient(api_server.base_url, credentials, api_server.platform_key)
    yield client
    client.session.close()


def add_event(api_server: ApiServer, merchant_id: str, event_type: EventType, data: dict[str, object]) -> str:
    with api_server.container.uow() as uow:
        event_id = uow.outbox.add_event(merchant_id, event_type, data)
        uow.commit()
    return event_id


def run_until_settled(
    api_server: ApiServer, sender: HttpxWebhookSender, clock: SettableClock, merchant_id: str, event_id: str
) -> None:
    uow = api_server.container.uow
    for _ in range(40):
        clock.set(max(clock.now(), datetime.now(UTC)))
        dispatch_due_events(uow, sender, clock, POLICY, worker_id="api-test", now=clock.now())
        event = get_event(uow, merchant_id, event_id)
        if event.status.value != "pending":
            return
        assert event.next_attempt_at is not None
        clock.set(max(clock.now(), event.next_attempt_at))
    raise AssertionError("the event never settled")


def test_seven_attempts_of_an_endpoint_that_failed_six_times_are_shown_in_the_event_log(
    api_server: ApiServer,
    hooked_client: SignedClient,
    merchant_endpoint: MerchantEndpoint,
    sender: HttpxWebhookSender,
    clock: SettableClock,
) -> None:
    merchant_id = hooked_client.credentials.merchant_id
    merchant_endpoint.fail_next(6, status=500)
    event_id = add_event(api_server, merchant_id, EventType.PAYMENT_SUCCEEDED, {"id": "pay_1", "amount": 100})

    run_until_settled(api_server, sender, clock, merchant_id, event_id)

    response = hooked_client.get("/v1/events")
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["object"] == "list"
    assert page["has_more"] is False
    [event] = page["data"]
    assert event["id"] == event_id
    assert event["type"] == "payment.succeeded"
    assert event["status"] == "delivered"
    assert event["attempt_count"] == 7
    assert event["data"] == {"id": "pay_1", "amount": 100}
    assert event["delivered_at"] is not None
    assert [a["attempt_no"] for a in event["attempts"]] == [1, 2, 3, 4, 5, 6, 7]
    assert [a["response_status"] for a in event["attempts"]] == [500] * 6 + [200]
    assert [a["succeeded"] for a in event["attempts"]] == [False] * 6 + [True]
    assert all(isinstance(a["latency_ms"], int) and a["latency_ms"] >= 0 for a in event["attempts"])
    assert [r.webhook_id for r in merchant_endpoint.received] == [event_id] * 7

    single = hooked_client.get(f"/v1/events/{event_id}")
    assert single.status_code == 200
    assert single.json() == event


def test_a_failed_event_is_resent_through_the_api_and_delivered(
    api_server: ApiServer,
    hooked_client: SignedClient,
    merchant_endpoint: MerchantEndpoint,
    sender: HttpxWebhookSender,
    clock: SettableClock,
) -> None:
    merchant_id = hooked_client.credentials.merchant_id
    merchant_endpoint.fail_next(1000)
    event_id = add_event(api_server, merchant_id, EventType.REFUND_SUCCEEDED, {"id": "rfd_1"})
    run_until_settled(api_server, sender, clock, merchant_id, event_id)
    assert hooked_client.get(f"/v1/events/{event_id}").json()["status"] == "failed"

    merchant_endpoint.fail_next(0)
    response = hooked_client.post(f"/v1/events/{event_id}/resend")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert response.json()["attempt_count"] == 16
    run_until_settled(api_server, sender, clock, merchant_id, event_id)
    event = hooked_client.get(f"/v1/events/{event_id}").json()
    assert event["status"] == "delivered"
    assert event["attempts"][-1]["attempt_no"] == 17
    assert event["attempts"][-1]["response_status"] == 200
    assert len(merchant_endpoint.received) == 17


def test_events_page_newest_first_with_a_cursor_and_filter_by_type(
    api_server: ApiServer, api_client: SignedClient
) -> None:
    merchant_id = api_client.credentials.merchant_id
    kinds = [EventType.PAYMENT_SUCCEEDED, EventType.REFUND_SUCCEEDED] * 3
    ids = [add_event(api_server, merchant_id, kind, {"n": n}) for n, kind in enumerate(kinds)]

    first = api_client.get("/v1/events?limit=4").json()
    second = api_client.get(f"/v1/events?limit=4&starting_after={first['data'][-1]['id']}").json()
    refunds = api_client.get("/v1/events?type=refund.succeeded").json()

    assert [e["id"] for e in first["data"] + second["data"]] == ids[::-1]
    assert (first["has_more"], second["has_more"]) == (True, False)
    assert [e["id"] for e in refunds["data"]] == [ids[5], ids[3], ids[1]]
    assert all(e["status"] == "pending" and e["attempts"] == [] for e in first["data"])


def test_another_merchants_event_is_not_found_and_cannot_be_resent(
    api_server: ApiServer, api_client: SignedClient, merchant_factory: MerchantFactory
) -> None:
    other = merchant_factory("ed25519")
    event_id = add_event(api_server, other.merchant_id, EventType.PAYOUT_FAILED, {"id": "pyo_1"})

    shown = api_client.get(f"/v1/events/{event_id}")
    resent = api_client.post(f"/v1/events/{event_id}/resend")

    for response in (shown, resent):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "resource_missing"
    assert api_client.get("/v1/events").json()["data"] == []


@pytest.mark.parametrize("query", ["type=payment.exploded", "limit=0", "limit=101"])
def test_a_bad_query_is_refused_with_the_error_envelope(api_client: SignedClient, query: str) -> None:
    response = api_client.get(f"/v1/events?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_events_require_a_signed_request(api_server: ApiServer) -> None:
    response = requests.get(api_server.url("/v1/events"), timeout=10)
    assert response.status_code == 401
