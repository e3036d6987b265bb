"""`verify_webhook` accepts genuine, fresh Standard Webhooks notifications and nothing else."""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from standardwebhooks import Webhook

from tianpay_sdk import TianpayError, WebhookVerificationError, verify_webhook

SECRET = "whsec_" + base64.b64encode(b"tianpay-test-webhook-secret-0001").decode()
EVENT = {"type": "payment.succeeded", "timestamp": "2024-06-01T08:00:00Z", "data": {"id": "pay_1"}}


def _signed(
    event: object = EVENT, *, age: datetime.timedelta = datetime.timedelta(0), secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event, ensure_ascii=False)
    sent_at = datetime.datetime.now(datetime.UTC) - age
    signature = Webhook(secret).sign("msg_1", sent_at, body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def test_a_genuine_webhook_returns_its_event() -> None:
    body, headers = _signed()

    assert verify_webhook(body, headers, SECRET) == EVENT


def test_header_names_are_matched_without_regard_to_case() -> None:
    body, headers = _signed()

    assert verify_webhook(body, {k.title(): v for k, v in headers.items()}, SECRET) == EVENT


def test_a_tampered_body_is_rejected() -> None:
    body, headers = _signed()

    with pytest.raises(WebhookVerificationError):
        verify_webhook(body.replace(b"pay_1", b"pay_2"), headers, SECRET)


def test_a_webhook_signed_with_another_secret_is_rejected() -> None:
    other = "whsec_" + base64.b64encode(b"someone-else-entirely-0000000000").decode()
    body, headers = _signed(secret=other)

    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, SECRET)


@pytest.mark.parametrize("age_s", [6 * 60, -6 * 60])
def test_a_timestamp_more_than_five_minutes_away_is_rejected(age_s: int) -> None:
    body, headers = _signed(age=datetime.timedelta(seconds=age_s))

    with pytest.raises(WebhookVerificationError, match=r"too (old|new)"):
        verify_webhook(body, headers, SECRET)


def test_a_timestamp_within_five_minutes_is_accepted() -> None:
    body, headers = _signed(age=datetime.timedelta(minutes=4))

    assert verify_webhook(body, headers, SECRET)["type"] == "payment.succeeded"


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-signature": None},
        {"webhook-id": None},
        {"webhook-signature": "v1"},
        {"webhook-signature": "v1,***"},
        {"webhook-timestamp": "yesterday"},
    ],
)
def test_missing_or_malformed_headers_are_rejected_as_verification_errors(
    change: dict[str, str | None],
) -> None:
    body, headers = _signed()
    for name, value in change.items():
        headers.pop(name)
        if value is not None:
            headers[name] = value

    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, SECRET)


def test_a_signed_body_that_is_not_an_event_is_rejected() -> None:
    body, headers = _signed({"type": "payment.succeeded"})

    with pytest.raises(WebhookVerificationError, match="not an event"):
        verify_webhook(body, headers, SECRET)


def test_webhook_errors_are_tianpay_errors() -> None:
    assert issubclass(WebhookVerificationError, TianpayError)
