"""Signing details of the HTTP sender that the end-to-end tests do not pin down by themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from tianpay.adapters.webhooks import parse_retry_after, signed_headers

from .conftest import new_webhook_secret

SHANGHAI = timezone(timedelta(hours=8))


def test_a_time_in_another_zone_is_signed_as_the_same_instant_the_header_names() -> None:
    # Webhook.sign() replaces tzinfo instead of converting; a Shanghai time passed straight through
    # would be signed eight hours off and fail verification.
    secret = new_webhook_secret()
    moment = datetime.now(SHANGHAI)

    headers = signed_headers(secret, "evt_1", '{"type":"payment.succeeded"}', moment)

    assert headers["webhook-timestamp"] == str(int(moment.timestamp()))
    assert Webhook(secret).verify('{"type":"payment.succeeded"}', headers) == {"type": "payment.succeeded"}


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        signed_headers(new_webhook_secret(), "evt_1", "{}", datetime(2026, 11, 27, 2, 0))


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("Fri, 27 Nov 2026 02:05:00 GMT", now) == 300
    assert parse_retry_after("Fri, 27 Nov 2026 01:00:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
