"""Every failure of the merchant API answers with the error envelope, signed, with the right param.

Validation is exercised through a route mounted only in these tests that uses the shared schema
types (``AmountMinor``, ``CurrencyCode``, ``RequestModel``), plus a route that raises, to show a
500 carries no stack trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import requests
from fastapi import APIRouter
from pydantic import Field

from tianpay.domain.errors import IdempotencyConflict, NotFound
from tianpay.entrypoints.api.deps import AuthenticatedMerchant
from tianpay.entrypoints.api.schemas import AmountMinor, CurrencyCode, RequestModel

from .rfc9421_client import SignedClient, verify_platform_signature

charges_router = APIRouter(prefix="/v1/test-only")


class Charge(RequestModel):
    amount: AmountMinor
    currency: CurrencyCode
    subject: str = Field(max_length=20)


@charges_router.post("/charges")
async def create_charge(body: Charge, merchant: AuthenticatedMerchant) -> dict[str, Any]:
    return {"merchant_id": merchant.merchant_id, "amount": body.amount, "currency": body.currency}


@charges_router.get("/explode")
async def explode(merchant: AuthenticatedMerchant) -> None:
    raise RuntimeError("secret internals: password=hunter2")


@charges_router.get("/explode-in-thread")
def explode_in_thread(merchant: AuthenticatedMerchant) -> None:
    raise ZeroDivisionError("also internal")


@charges_router.get("/missing")
async def missing(merchant: AuthenticatedMerchant) -> None:
    raise NotFound("no payment pay_123", param="id")


@charges_router.get("/conflict")
async def conflict(merchant: AuthenticatedMerchant) -> None:
    raise IdempotencyConflict("out_trade_no 'A1' was already used", param="out_trade_no")


outside_router = APIRouter(prefix="/outside-v1")


@outside_router.get("/whoami")
async def whoami(merchant: AuthenticatedMerchant) -> dict[str, str]:
    return {"merchant_id": merchant.merchant_id, "request_id": merchant.request_id}


@pytest.fixture(scope="module")
def api_extra_routers() -> Sequence[APIRouter]:
    return (charges_router, outside_router)


def _error(response: requests.Response, status: int, type_: str, code: str, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param", "request_id"}
    assert (error["type"], error["code"], error["param"]) == (type_, code, param)
    assert error["request_id"] == response.headers["Request-Id"]
    return error


GOOD = {"amount": 1999, "currency": "CNY", "subject": "tea"}


def test_a_valid_body_passes(api_client: SignedClient) -> None:
    response = api_client.post("/v1/test-only/charges", json=GOOD)
    assert response.status_code == 200, response.text
    assert response.json()["amount"] == 1999


@pytest.mark.parametrize(
    ("change", "code", "param"),
    [
        ({"amount": 0}, "amount_too_small", "amount"),
        ({"amount": -1}, "amount_too_small", "amount"),
        ({"amount": 10**12 + 1}, "amount_too_large", "amount"),
        ({"amount": 19.99}, "parameter_invalid", "amount"),
        ({"amount": 20.0}, "parameter_invalid", "amount"),
        ({"amount": "1999"}, "parameter_invalid", "amount"),
        ({"amount": True}, "parameter_invalid", "amount"),
        ({"currency": "USD"}, "currency_unsupported", "currency"),
        ({"currency": 156}, "parameter_invalid", "currency"),
        ({"subject": "x" * 21}, "parameter_invalid", "subject"),
        ({"colour": "red"}, "parameter_unknown", "colour"),
    ],
)
def test_an_invalid_field_is_named_in_the_envelope(
    api_client: SignedClient, change: dict[str, Any], code: str, param: str
) -> None:
    response = api_client.post("/v1/test-only/charges", json={**GOOD, **change})
    _error(response, 400, "invalid_request_error", code, param)


def test_the_largest_amount_is_accepted(api_client: SignedClient) -> None:
    assert api_client.post("/v1/test-only/charges", json={**GOOD, "amount": 10**12}).status_code == 200


def test_a_missing_field_is_named(api_client: SignedClient) -> None:
    body = {k: v for k, v in GOOD.items() if k != "currency"}
    _error(api_client.post("/v1/test-only/charges", json=body), 400, "invalid_request_error",
           "parameter_missing", "currency")


def test_malformed_json_is_refused(api_client: SignedClient) -> None:
    response = api_client.request("POST", "/v1/test-only/charges", data=b'{"amount": 1999,')
    _error(response, 400, "invalid_request_error", "invalid_json", None)


def test_a_json_array_body_is_refused(api_client: SignedClient) -> None:
    response = api_client.request("POST", "/v1/test-only/charges", data=b"[1, 2]")
    _error(response, 400, "invalid_request_error", "invalid_json", None)


def test_an_unknown_route_is_404(api_client: SignedClient) -> None:
    _error(api_client.get("/v1/no-such-thing"), 404, "invalid_request_error", "resource_missing", None)


def test_an_unknown_route_outside_the_api_is_404_with_the_envelope(api_client: SignedClient) -> None:
    response = requests.get(api_client.base_url + "/nowhere", timeout=10)
    _error(response, 404, "invalid_request_error", "resource_missing", None)
    verify_platform_signature(response, api_client.platform_key)


def test_a_wrong_method_is_405(api_client: SignedClient) -> None:
    _error(api_client.request("DELETE", "/v1/balance"), 405, "invalid_request_error", "method_not_allowed", None)


def test_domain_errors_map_by_code(api_client: SignedClient) -> None:
    _error(api_client.get("/v1/test-only/missing"), 404, "invalid_request_error", "resource_missing", "id")
    _error(api_client.get("/v1/test-only/conflict"), 409, "idempotency_error", "idempotency_conflict",
           "out_trade_no")


@pytest.mark.parametrize("path", ["/v1/test-only/explode", "/v1/test-only/explode-in-thread"])
def test_a_crash_is_a_signed_500_without_a_stack_trace(api_client: SignedClient, path: str) -> None:
    response = api_client.get(path)
    error = _error(response, 500, "api_error", "internal_error", None)
    for leak in ("Traceback", "hunter2", "RuntimeError", "ZeroDivision", "internal:", ".py"):
        assert leak not in response.text
    assert "request id" in error["message"]


def test_the_dependency_authenticates_routes_outside_v1_by_itself(api_client: SignedClient) -> None:
    response = api_client.get("/outside-v1/whoami")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "merchant_id": api_client.credentials.merchant_id, "request_id": response.headers["Request-Id"]
    }
    unsigned = requests.get(api_client.base_url + "/outside-v1/whoami", timeout=10)
    _error(unsigned, 401, "authentication_error", "signature_missing", None)
    verify_platform_signature(unsigned, api_client.platform_key)
