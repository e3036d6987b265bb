"""The refunds resource over real HTTP with signed requests, against HBB's simulator, on both databases.

A payment is paid for real on HBB's pages, then refunded through ``POST /v1/payments/{id}/refunds``;
retrieval, listing, idempotency and every refusal use the merchant API's error envelope.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from tests.channels.hbb.contract_kit import Payer, bank_world, read_page
from tianpay.channels.registry import onboard_banks
from tianpay.ports.channels import OnlineBankingOrder, Outcome
from tianpay.services.housekeeping import HousekeepingPolicy, purge_once
from tianpay.services.payments import record_attempt_succeeded, start_attempt

from .conftest import ApiServer, MerchantFactory
from .rfc9421_client import SignedClient

pytestmark = pytest.mark.e2e

REFUND_KEYS = {
    "id", "object", "payment_id", "out_refund_no", "amount", "currency", "fee_returned", "status",
    "failure_code", "created_at", "succeeded_at",
}


@pytest.fixture(scope="module")
def hbb_url(api_server: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HBB's simulator, with the API server's platform onboarded to it."""
    with bank_world(tmp_path_factory.mktemp("api-refund-banks")) as urls:
        onboard_banks(api_server.settings.data_dir, {"HBB": urls["HBB"]})
        # The container reads the onboarding material on first use; drop anything read before it.
        api_server.container.__dict__.pop("channels", None)
        yield urls["HBB"]


def error_of(response: requests.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def paid_payment(api_client: SignedClient, api_server: ApiServer, hbb_url: str, amount_minor: int = 10_000) -> str:
    """A payment created through the API and paid by 张伟 on HBB's pages; returns its id."""
    created = api_client.post("/v1/payments", json={
        "out_trade_no": f"order-{amount_minor}", "amount": amount_minor, "currency": "CNY",
        "method": "online_banking", "bank": "HBB", "subject": "保温杯",
    })
    assert created.status_code == 201, created.text
    payment_id: str = created.json()["id"]
    container = api_server.container
    attempt = start_attempt(container.uow, container.clock, container.ids, payment_id,
                            channel="hbb_online_banking", bank="HBB")
    channel = container.channels.online_banking("HBB")
    form = channel.payment_form(OnlineBankingOrder(
        attempt_id=attempt.id, amount=attempt.amount, subject="保温杯", merchant_name="Test shop",
        created_at=attempt.created_at, expires_at=attempt.created_at + timedelta(minutes=30),
        notify_url="http://127.0.0.1:9/channels/HBB/notify", return_url="http://127.0.0.1:9/return",
    ))
    payer = Payer(hbb_url)
    try:
        assert read_page(payer.pay(form)).codes == ["00"]
    finally:
        payer.close()
    result = channel.query_payment(attempt.id, attempt.created_at)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.bank_reference is not None
    record_attempt_succeeded(container.uow, container.clock, payment_id, attempt.id,
                             bank_reference=result.bank_reference, amount=attempt.amount)
    return payment_id


def test_a_merchant_refunds_part_of_a_payment_and_reads_it_back(
    api_client: SignedClient, api_server: ApiServer, hbb_url: str
) -> None:
    payment_id = paid_payment(api_client, api_server, hbb_url)

    response = api_client.post(f"/v1/payments/{payment_id}/refunds",
                               json={"out_refund_no": "R1", "amount": 2_500, "reason": "one cup broken"})
    assert response.status_code == 201, response.text
    assert "Idempotent-Replayed" not in response.headers
    refund = response.json()
    assert set(refund) == REFUND_KEYS
    assert refund["id"].startswith("rfd_")
    assert (refund["object"], refund["payment_id"], refund["out_refund_no"]) == ("refund", payment_id, "R1")
    assert (refund["amount"], refund["currency"], refund["fee_returned"]) == (2_500, "CNY", 15)
    assert (refund["status"], refund["failure_code"]) == ("succeeded", None)
    assert refund["succeeded_at"] is not None

    fetched = api_client.get(f"/v1/refunds/{refund['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == refund
    listed = api_client.get(f"/v1/payments/{payment_id}/refunds")
    assert listed.status_code == 200
    assert listed.json()["data"] == [refund]
    payment = api_client.get(f"/v1/payments/{payment_id}").json()
    assert payment["refunded_amount"] == 2_500

    repeated = api_client.post(f"/v1/payments/{payment_id}/refunds",
                               json={"out_refund_no": "R1", "amount": 2_500, "reason": "one cup broken"})
    assert repeated.status_code == 201
    assert repeated.headers["Idempotent-Replayed"] == "true"
    assert repeated.json() == refund

    changed = api_client.post(f"/v1/payments/{payment_id}/refunds", json={"out_refund_no": "R1", "amount": 2_600})
    assert changed.status_code == 409
    assert (error_of(changed)["code"], error_of(changed)["param"]) == ("idempotency_conflict", "out_refund_no")


def test_a_refund_over_what_is_left_is_refused_and_changes_nothing(
    api_client: SignedClient, api_server: ApiServer, hbb_url: str
) -> None:
    payment_id = paid_payment(api_client, api_server, hbb_url, amount_minor=8_000)
    assert api_client.post(f"/v1/payments/{payment_id}/refunds",
                           json={"out_refund_no": "R1", "amount": 5_000}).status_code == 201

    refused = api_client.post(f"/v1/payments/{payment_id}/refunds", json={"out_refund_no": "R2", "amount": 3_001})

    assert refused.status_code == 400
    assert (error_of(refused)["code"], error_of(refused)["param"]) == ("refund_exceeds_payment", "amount")
    assert api_client.get(f"/v1/payments/{payment_id}").json()["refunded_amount"] == 5_000
    assert len(api_client.get(f"/v1/payments/{payment_id}/refunds").json()["data"]) == 1
    # The number was not used up by the refusal.
    fitted = api_client.post(f"/v1/payments/{payment_id}/refunds", json={"out_refund_no": "R2", "amount": 3_000})
    assert fitted.status_code == 201
    assert fitted.json()["status"] == "succeeded"


def test_a_full_refund_repeated_after_housekeeping_purged_its_record_is_a_409_naming_it(
    api_client: SignedClient, api_server: ApiServer, hbb_url: str
) -> None:
    payment_id = paid_payment(api_client, api_server, hbb_url, amount_minor=6_000)
    request = {"out_refund_no": "R-late", "amount": 6_000, "reason": "returned"}
    refund = api_client.post(f"/v1/payments/{payment_id}/refunds", json=request).json()
    assert refund["status"] == "succeeded"
    container = api_server.container
    later = container.clock.now() + HousekeepingPolicy().idempotency_retention + timedelta(days=1)
    assert purge_once(container.uow, later, HousekeepingPolicy())["idempotency_records"] >= 1

    # Nothing is left to refund, so the rules alone would answer refund_exceeds_payment: the number
    # already naming a refund is the clearer answer, and the merchant reads that refund instead.
    repeated = api_client.post(f"/v1/payments/{payment_id}/refunds", json=request)
    assert repeated.status_code == 409, repeated.text
    error = error_of(repeated)
    assert (error["type"], error["code"], error["param"]) == (
        "idempotency_error", "idempotency_record_expired", "out_refund_no"
    )
    assert refund["id"] in error["message"]
    assert api_client.get(f"/v1/payments/{payment_id}/refunds").json()["data"] == [refund]
    assert api_client.get(f"/v1/payments/{payment_id}").json()["refunded_amount"] == 6_000


def test_an_unpaid_payment_is_not_refundable(api_client: SignedClient) -> None:
    created = api_client.post("/v1/payments", json={
        "out_trade_no": "unpaid", "amount": 1_000, "currency": "CNY", "method": "cashier", "subject": "茶",
    }).json()
    refused = api_client.post(f"/v1/payments/{created['id']}/refunds", json={"out_refund_no": "R1", "amount": 100})
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "payment_not_refundable"


def test_unknown_or_foreign_payments_and_refunds_are_404(
    api_client: SignedClient, api_server: ApiServer, merchant_factory: MerchantFactory
) -> None:
    missing = api_client.post("/v1/payments/pay_nope/refunds", json={"out_refund_no": "R1", "amount": 100})
    assert (missing.status_code, error_of(missing)["code"]) == (404, "resource_missing")
    assert api_client.get("/v1/refunds/rfd_nope").status_code == 404
    assert api_client.get("/v1/payments/pay_nope/refunds").status_code == 404

    other = SignedClient(api_server.base_url, merchant_factory("ed25519"), api_server.platform_key, requests.Session())
    theirs = other.post("/v1/payments", json={
        "out_trade_no": "theirs", "amount": 1_000, "currency": "CNY", "method": "cashier", "subject": "茶",
    }).json()
    foreign = api_client.post(f"/v1/payments/{theirs['id']}/refunds", json={"out_refund_no": "R1", "amount": 100})
    assert foreign.status_code == 404
    other.session.close()


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"out_refund_no": "R1", "amount": 100, "currency": "CNY"}, "parameter_unknown", "currency"),
        ({"out_refund_no": "R1", "amount": 0}, "amount_too_small", "amount"),
        ({"out_refund_no": "R1", "amount": "100"}, "parameter_invalid", "amount"),
        ({"amount": 100}, "parameter_missing", "out_refund_no"),
        ({"out_refund_no": "R 1", "amount": 100}, "out_refund_no_invalid", "out_refund_no"),
    ],
)
def test_a_malformed_refund_request_is_refused_with_the_field_at_fault(
    api_client: SignedClient, body: dict[str, Any], code: str, param: str
) -> None:
    refused = api_client.post("/v1/payments/pay_any/refunds", json=body)
    assert refused.status_code == 400, refused.text
    assert (error_of(refused)["code"], error_of(refused)["param"]) == (code, param)
