"""The payments resource over real HTTP with signed requests, on SQLite and PostgreSQL.

Create (and its idempotency), retrieve with attempts, list with filters and a cursor, close; bad
input gets the error envelope and changes nothing.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from tianpay.ports.payments import PaymentFilter
from tianpay.services.housekeeping import HousekeepingPolicy, purge_once
from tianpay.services.payments import list_payments, start_attempt

from .conftest import ApiServer, MerchantFactory
from .rfc9421_client import SignedClient


def body(out_trade_no: str = "order-1", **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "out_trade_no": out_trade_no,
        "amount": 1999,
        "currency": "CNY",
        "method": "cashier",
        "subject": "一杯咖啡",
        "notify_url": "https://shop.example/notify",
        "return_url": "https://shop.example/done",
        "metadata": {"order": "42"},
    }
    fields.update(overrides)
    return fields


def error_of(response: requests.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_a_merchant_creates_a_payment_and_gets_its_cashier_url(api_client: SignedClient, api_server: ApiServer) -> None:
    response = api_client.post("/v1/payments", json=body())
    assert response.status_code == 201, response.text
    assert "Idempotent-Replayed" not in response.headers
    payment = response.json()
    assert payment["id"].startswith("pay_")
    assert payment["object"] == "payment"
    assert payment["merchant_id"] == api_client.credentials.merchant_id
    assert (payment["amount"], payment["currency"], payment["method"]) == (1999, "CNY", "cashier")
    assert (payment["status"], payment["fee_amount"], payment["refunded_amount"]) == ("created", 0, 0)
    assert payment["bank"] is None
    assert payment["metadata"] == {"order": "42"}
    assert payment["cashier_url"] == f"{api_server.settings.base_url}/cashier/{payment['id']}"
    created_at = datetime.fromisoformat(payment["created_at"].replace("Z", "+00:00"))
    expires_at = datetime.fromisoformat(payment["expires_at"].replace("Z", "+00:00"))
    assert expires_at - created_at == timedelta(minutes=30)


def test_a_repeated_create_returns_the_first_payment_and_says_so(api_client: SignedClient) -> None:
    first = api_client.post("/v1/payments", json=body("again-1"))
    again = api_client.post("/v1/payments", json=body("again-1"))
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_a_changed_body_under_the_same_out_trade_no_is_a_409(api_client: SignedClient) -> None:
    api_client.post("/v1/payments", json=body("conflict-1"))
    response = api_client.post("/v1/payments", json=body("conflict-1", amount=2000))
    assert response.status_code == 409
    error = error_of(response)
    assert (error["type"], error["code"]) == ("idempotency_error", "idempotency_conflict")
    assert error["param"] == "out_trade_no"


def test_a_repeat_whose_record_housekeeping_purged_is_a_409_naming_the_first_payment(
    api_client: SignedClient, api_server: ApiServer
) -> None:
    first = api_client.post("/v1/payments", json=body("purged-1"))
    assert first.status_code == 201, first.text
    container = api_server.container
    later = container.clock.now() + HousekeepingPolicy().idempotency_retention + timedelta(days=1)
    assert purge_once(container.uow, later, HousekeepingPolicy())["idempotency_records"] >= 1

    # With the first answer gone, the same body and a changed one cannot be told apart: neither is
    # carried out, and both are told which payment already has the number.
    for repeat in (body("purged-1"), body("purged-1", amount=2000)):
        response = api_client.post("/v1/payments", json=repeat)
        assert response.status_code == 409, response.text
        error = error_of(response)
        assert (error["type"], error["code"]) == ("idempotency_error", "idempotency_record_expired")
        assert error["param"] == "out_trade_no"
        assert first.json()["id"] in error["message"]
    merchant_id = api_client.credentials.merchant_id
    under_the_number = list_payments(container.uow, merchant_id, PaymentFilter(out_trade_no="purged-1")).payments
    assert [payment.id for payment in under_the_number] == [first.json()["id"]]
    shown = api_client.get(f"/v1/payments/{first.json()['id']}").json()
    assert {name: value for name, value in shown.items() if name != "attempts"} == first.json()


def test_concurrent_duplicate_creates_over_http_end_with_one_payment(
    api_server: ApiServer, merchant_factory: MerchantFactory
) -> None:
    credentials = merchant_factory("ed25519")
    ids: list[str] = []
    lock = threading.Lock()

    def create() -> None:
        client = SignedClient(api_server.base_url, credentials, api_server.platform_key)
        response = client.post("/v1/payments", json=body("race-1"))
        assert response.status_code == 201, response.text
        with lock:
            ids.append(response.json()["id"])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8
    assert len(set(ids)) == 1


def test_bad_input_gets_the_envelope_with_a_precise_code(api_client: SignedClient) -> None:
    cases = [
        (body(amount=0), "amount_too_small", "amount"),
        (body(amount="19.99"), "parameter_invalid", "amount"),
        (body(currency="USD"), "currency_unsupported", "currency"),
        (body(method="pos"), "parameter_invalid", "method"),
        (body(method="online_banking"), "bank_required", "bank"),
        (body(bank="HBB"), "bank_not_applicable", "bank"),
        (body(out_trade_no="has space"), "out_trade_no_invalid", "out_trade_no"),
        (body(subject=""), "subject_invalid", "subject"),
        (body(notify_url="ftp://shop.example/n"), "url_invalid", "notify_url"),
        (body(expires_at="2026-01-01T00:00:00"), "parameter_invalid", "expires_at"),
        (body(expires_at=(datetime.now(UTC) + timedelta(days=8)).isoformat()), "expires_at_invalid", "expires_at"),
        (body(metadata={"k": 1}), "parameter_invalid", "metadata.k"),
        (body(surprise=True), "parameter_unknown", "surprise"),
    ]
    for request_body, code, param in cases:
        response = api_client.post("/v1/payments", json=request_body)
        assert response.status_code == 400, (code, response.text)
        error = error_of(response)
        assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    listed = api_client.get("/v1/payments").json()
    assert listed["data"] == []


def test_online_banking_names_its_bank_and_has_a_cashier_url(api_client: SignedClient) -> None:
    response = api_client.post("/v1/payments", json=body("ob-1", method="online_banking", bank="HBB"))
    assert response.status_code == 201, response.text
    assert response.json()["bank"] == "HBB"
    assert response.json()["cashier_url"].endswith("/cashier/" + response.json()["id"])
    quick = api_client.post("/v1/payments", json=body("qp-1", method="quick_pay")).json()
    assert quick["cashier_url"] is None


def test_a_payment_is_retrieved_with_its_attempts(api_client: SignedClient, api_server: ApiServer) -> None:
    payment = api_client.post("/v1/payments", json=body("get-1")).json()
    empty = api_client.get(f"/v1/payments/{payment['id']}").json()
    assert empty["attempts"] == []
    container = api_server.container
    attempt = start_attempt(container.uow, container.clock, container.ids, payment["id"], channel="hbb", bank="HBB")
    shown = api_client.get(f"/v1/payments/{payment['id']}").json()
    assert shown["status"] == "processing"
    [only] = shown["attempts"]
    assert (only["id"], only["object"], only["bank"], only["status"], only["amount"]) == (
        attempt.id, "payment_attempt", "HBB", "created", 1999,
    )


def test_another_merchants_payment_is_not_found(
    api_client: SignedClient, api_server: ApiServer, merchant_factory: MerchantFactory
) -> None:
    payment = api_client.post("/v1/payments", json=body("mine-1")).json()
    stranger = SignedClient(api_server.base_url, merchant_factory("ed25519"), api_server.platform_key)
    for response in (
        stranger.get(f"/v1/payments/{payment['id']}"),
        stranger.post(f"/v1/payments/{payment['id']}/close"),
    ):
        assert response.status_code == 404
        assert error_of(response)["code"] == "resource_missing"
    assert api_client.get(f"/v1/payments/{payment['id']}").json()["status"] == "created"


def test_payments_are_listed_newest_first_with_filters_and_a_cursor(api_client: SignedClient) -> None:
    made = [
        api_client.post("/v1/payments", json=body(f"list-{n}", method="quick_pay" if n % 2 else "cashier")).json()
        for n in range(5)
    ]
    newest_first = [p["id"] for p in reversed(made)]
    first = api_client.get("/v1/payments?limit=2").json()
    assert (first["object"], first["has_more"]) == ("list", True)
    assert [p["id"] for p in first["data"]] == newest_first[:2]
    rest = api_client.get(f"/v1/payments?limit=10&starting_after={first['data'][-1]['id']}").json()
    assert [p["id"] for p in rest["data"]] == newest_first[2:]
    assert rest["has_more"] is False
    quick = api_client.get("/v1/payments?method=quick_pay").json()
    assert [p["id"] for p in quick["data"]] == [made[3]["id"], made[1]["id"]]
    by_number = api_client.get("/v1/payments?out_trade_no=list-2").json()
    assert [p["id"] for p in by_number["data"]] == [made[2]["id"]]
    assert api_client.get("/v1/payments?status=closed").json()["data"] == []
    later = quote((datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert api_client.get(f"/v1/payments?created_from={later}").json()["data"] == []
    bad = api_client.get("/v1/payments?limit=101")
    assert (bad.status_code, error_of(bad)["param"]) == (400, "limit")
    unknown = api_client.get("/v1/payments?starting_after=pay_nope")
    assert (unknown.status_code, error_of(unknown)["param"]) == (400, "starting_after")


def test_closing_a_created_payment_then_again_answers_closed(api_client: SignedClient, api_server: ApiServer) -> None:
    payment = api_client.post("/v1/payments", json=body("close-1")).json()
    closed = api_client.post(f"/v1/payments/{payment['id']}/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert api_client.post(f"/v1/payments/{payment['id']}/close").json()["status"] == "closed"
    events = api_client.get("/v1/events?type=payment.closed").json()["data"]
    assert [e["data"]["id"] for e in events] == [payment["id"]]


def test_a_payment_being_paid_cannot_be_closed(api_client: SignedClient, api_server: ApiServer) -> None:
    payment = api_client.post("/v1/payments", json=body("close-2")).json()
    container = api_server.container
    start_attempt(container.uow, container.clock, container.ids, payment["id"], channel="hbb", bank="HBB")
    response = api_client.post(f"/v1/payments/{payment['id']}/close")
    assert response.status_code == 409
    assert error_of(response)["code"] == "illegal_state_transition"
    page = list_payments(container.uow, api_client.credentials.merchant_id)
    assert [p.status.value for p in page.payments] == ["processing"]


def test_an_unsigned_request_is_refused(api_server: ApiServer) -> None:
    response = requests.post(api_server.url("/v1/payments"), json=body(), timeout=10)
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"
