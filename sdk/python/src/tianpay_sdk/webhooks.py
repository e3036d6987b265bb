"""Checks that a notification came from Tianpay, using the Standard Webhooks scheme.

The `standardwebhooks` library verifies the `v1,` HMAC-SHA256 signature over
`{webhook-id}.{webhook-timestamp}.{body}` in constant time and refuses timestamps more than
five minutes from now; this module only turns its many failure modes into one error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook
from standardwebhooks.webhooks import WebhookVerificationError as _LibraryVerificationError

from .errors import WebhookVerificationError

EVENT_FIELDS = ("type", "timestamp", "data")


def verify_webhook(body: bytes, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """Returns the event `{type, timestamp, data}` if the notification is genuine and fresh.

    `body` must be the raw request body as received, before any JSON parsing, and `secret` the
    merchant's webhook secret in `whsec_<base64>` form. Use the `webhook-id` header to drop
    repeats: delivery is at least once.
    """
    try:
        webhook = Webhook(secret)
    except (EmptyWebhookSecretError, ValueError) as exc:
        raise WebhookVerificationError(f"webhook secret is not valid: {exc}") from exc
    try:
        event = webhook.verify(body, dict(headers))
    except _LibraryVerificationError as exc:
        raise WebhookVerificationError(f"webhook rejected: {exc}") from exc
    except ValueError as exc:
        # The library lets malformed signature headers, non-UTF-8 bodies and bad JSON escape as
        # ValueError (JSON and Unicode errors are its subclasses); all of them mean "do not trust".
        raise WebhookVerificationError(f"webhook is malformed: {exc}") from exc
    if not isinstance(event, dict) or any(field not in event for field in EVENT_FIELDS):
        raise WebhookVerificationError("webhook body is not an event with type, timestamp and data")
    return event
