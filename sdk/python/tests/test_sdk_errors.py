"""Each error the platform can return arrives as its own class, carrying the request id."""

from __future__ import annotations

import pytest
from sdk_fake_platform import FakePlatform, Reply, error_reply
from sdk_support import ClientFactory

from tianpay_sdk import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    RateLimitError,
    TianpayClient,
    TianpayError,
)


@pytest.mark.parametrize(
    ("status", "type_", "code", "error_class"),
    [
        (400, "invalid_request_error", "parameter_missing", InvalidRequestError),
        (404, "invalid_request_error", "resource_missing", InvalidRequestError),
        (422, "invalid_request_error", "amount_too_large", InvalidRequestError),
        (401, "authentication_error", "signature_invalid", AuthenticationError),
        (409, "idempotency_error", "idempotency_conflict", IdempotencyError),
        (429, "rate_limit_error", "rate_limited", RateLimitError),
        (500, "api_error", "internal", APIError),
    ],
)
def test_each_error_type_raises_its_own_class_with_the_envelope_fields(
    status: int,
    type_: str,
    code: str,
    error_class: type[TianpayError],
    platform: FakePlatform,
    make_client: ClientFactory,
) -> None:
    platform.then(error_reply(status, type_, code, "it failed", param="amount", request_id="req_42"))

    # A POST without an order number is never retried, so one scripted reply is enough.
    with pytest.raises(error_class) as raised:
        make_client().payments.close("pay_1")

    error = raised.value
    assert (error.http_status, error.code, error.param, error.message) == (
        status,
        code,
        "amount",
        "it failed",
    )
    assert error.request_id == "req_42"
    assert str(error) == "Request req_42: it failed"
    assert isinstance(error, TianpayError)


def test_a_body_that_is_not_the_envelope_falls_back_to_the_status_and_request_id_header(
    platform: FakePlatform, make_client: ClientFactory
) -> None:
    platform.then(Reply(status=502, text="<html>bad gateway</html>", content_type="text/html"))

    with pytest.raises(APIError) as raised:
        make_client().payments.close("pay_1")

    assert raised.value.request_id == "req_from_header"
    assert "502" in str(raised.value)


def test_a_rate_limit_error_carries_the_retry_after_hint(platform: FakePlatform, make_client: ClientFactory) -> None:
    platform.then(error_reply(429, "rate_limit_error", "rate_limited", headers={"Retry-After": "7"}))

    with pytest.raises(RateLimitError) as raised:
        make_client().payments.close("pay_1")

    assert raised.value.retry_after_s == 7.0


def test_an_unreachable_platform_is_a_connection_error() -> None:
    client = TianpayClient("http://127.0.0.1:9", "M1", "k", b"s" * 32, algorithm="hmac-sha256", max_retries=0)

    with client, pytest.raises(APIConnectionError) as raised:
        client.balance.retrieve()

    assert raised.value.http_status is None
