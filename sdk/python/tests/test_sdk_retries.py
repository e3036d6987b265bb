"""Only requests that are safe to repeat are retried, each attempt freshly signed."""

from __future__ import annotations

import pytest
from sdk_fake_platform import FakePlatform, Reply, error_reply
from sdk_support import ClientFactory, Sleeps

from tianpay_sdk import APIConnectionError, APIError, InvalidRequestError, RateLimitError
from tianpay_sdk.retries import MAX_DELAY_S, is_safe_to_repeat, parse_retry_after_s, retry_delay_s

UNAVAILABLE = error_reply(503, "api_error", "unavailable")


def test_a_get_that_meets_two_503s_succeeds_on_the_third_attempt_with_fresh_nonces(
    platform: FakePlatform, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    platform.then(UNAVAILABLE, UNAVAILABLE, Reply(json_body={"available": 100}))

    assert make_client().balance.retrieve() == {"available": 100}

    assert len(platform.received) == 3
    assert len({received.nonce for received in platform.received}) == 3
    assert len({received.header("signature") for received in platform.received}) == 3
    assert platform.verification_failures == []
    assert len(sleeps) == 2


def test_a_post_with_an_order_number_is_retried_after_the_connection_drops(
    platform: FakePlatform, make_client: ClientFactory
) -> None:
    platform.then(Reply(drop_connection=True), Reply(json_body={"id": "pay_1"}))

    payment = make_client().payments.create(out_trade_no="T-1", amount=100, currency="CNY")

    assert payment == {"id": "pay_1"}
    assert [received.body for received in platform.received] == [platform.received[0].body] * 2
    assert platform.received[0].nonce != platform.received[1].nonce


def test_a_post_without_an_order_number_is_not_retried_after_the_connection_drops(
    platform: FakePlatform, make_client: ClientFactory
) -> None:
    platform.then(Reply(drop_connection=True), Reply())

    with pytest.raises(APIConnectionError):
        make_client().payments.confirm("pay_1", sms_code="123456")

    assert len(platform.received) == 1


def test_a_post_without_an_order_number_is_not_retried_after_a_503(
    platform: FakePlatform, make_client: ClientFactory
) -> None:
    platform.then(UNAVAILABLE, Reply())

    with pytest.raises(APIError):
        make_client().payments.close("pay_1")

    assert len(platform.received) == 1


def test_retries_stop_after_max_retries_and_raise_the_last_error(
    platform: FakePlatform, make_client: ClientFactory
) -> None:
    platform.default_reply = lambda _: UNAVAILABLE

    with pytest.raises(APIError):
        make_client(max_retries=2).balance.retrieve()

    assert len(platform.received) == 3


def test_a_client_error_is_not_retried(platform: FakePlatform, make_client: ClientFactory) -> None:
    platform.then(error_reply(400, "invalid_request_error", "bad"), Reply())

    with pytest.raises(InvalidRequestError):
        make_client().payments.retrieve("pay_1")

    assert len(platform.received) == 1


def test_retry_after_is_honoured(platform: FakePlatform, make_client: ClientFactory, sleeps: Sleeps) -> None:
    platform.then(error_reply(429, "rate_limit_error", "rate_limited", headers={"Retry-After": "3"}), Reply())

    make_client().refunds.create("pay_1", out_refund_no="R-1", amount=50, currency="CNY")

    assert sleeps == [3.0]


def test_a_retry_after_longer_than_a_minute_is_not_waited_for(
    platform: FakePlatform, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    platform.then(error_reply(429, "rate_limit_error", "rate_limited", headers={"Retry-After": "600"}), Reply())

    with pytest.raises(RateLimitError):
        make_client().balance.retrieve()

    assert sleeps == []


@pytest.mark.parametrize(
    ("method", "body", "is_safe"),
    [
        ("GET", None, True),
        ("POST", {"out_trade_no": "T-1"}, True),
        ("POST", {"out_refund_no": "R-1"}, True),
        ("POST", {"out_payout_no": "P-1"}, True),
        ("POST", {"out_trade_no": ""}, False),
        ("POST", {"amount": 1}, False),
        ("POST", None, False),
        ("DELETE", None, False),
    ],
)
def test_only_gets_and_posts_with_an_order_number_are_safe_to_repeat(
    method: str, body: dict[str, object] | None, is_safe: bool
) -> None:
    assert is_safe_to_repeat(method, body) is is_safe


@pytest.mark.parametrize("retry_number", [1, 2, 3, 10])
def test_back_off_grows_exponentially_within_its_jitter_and_cap(retry_number: int) -> None:
    ceiling_s = min(MAX_DELAY_S, 0.5 * 2 ** (retry_number - 1))
    for _ in range(50):
        delay_s = retry_delay_s(retry_number)
        assert delay_s is not None
        assert ceiling_s / 2 <= delay_s <= ceiling_s


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after_s("2") == 2.0
    assert parse_retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after_s("soon") is None
    assert parse_retry_after_s("nan") is None
