"""Delivers one webhook over HTTP: a Standard Webhooks signed POST with httpx, never raising.

The signature is made by the ``standardwebhooks`` library itself, so every library that verifies
Standard Webhooks agrees with us by construction. Errors are reported as short texts that name the
failure but never carry the secret, the signature or the endpoint's credentials.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks import Webhook

from tianpay.ports.outbox import DeliveryTarget
from tianpay.ports.webhooks import DeliveryResult

USER_AGENT = "Tianpay-Webhooks/1"
# Enough of the merchant's answer to debug a refusal from the event log, not enough to store pages.
RESPONSE_EXCERPT_CHARS = 200


class HttpxWebhookSender:
    def __init__(self, *, timeout_s: float = 10.0, client: httpx.Client | None = None) -> None:
        # Redirects are not followed: a webhook endpoint that answers 3xx is misconfigured, and
        # following it could send a signed body somewhere the merchant did not register.
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._owns_client = client is None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def send(self, target: DeliveryTarget, webhook_id: str, body: str, timestamp: datetime) -> DeliveryResult:
        if not target.url:
            return DeliveryResult(response_status=None, latency_ms=0, error="no webhook endpoint configured")
        headers = signed_headers(target.secret, webhook_id, body, timestamp)
        started = time.perf_counter()
        try:
            response = self._client.post(target.url, content=body.encode(), headers=headers)
        except httpx.TimeoutException as exc:
            return DeliveryResult(None, _elapsed_ms(started), error=f"timeout ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return DeliveryResult(None, _elapsed_ms(started), error=_describe(exc, target.url))
        latency_ms = _elapsed_ms(started)
        if 200 <= response.status_code < 300:
            return DeliveryResult(response.status_code, latency_ms)
        excerpt = response.text[:RESPONSE_EXCERPT_CHARS].strip()
        error = f"HTTP {response.status_code}" + (f": {excerpt}" if excerpt else "")
        return DeliveryResult(
            response.status_code,
            latency_ms,
            error=error,
            retry_after_s=parse_retry_after(response.headers.get("retry-after"), timestamp),
        )


def signed_headers(secret: str, webhook_id: str, body: str, timestamp: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` sent at ``timestamp``.

    ``Webhook.sign`` replaces the datetime's tzinfo with UTC instead of converting it, so an aware
    non-UTC or a naive local time would be signed as a different instant than the header says;
    converting to UTC first makes the two agree.
    """
    if timestamp.tzinfo is None:
        raise ValueError("naive datetimes are refused: pass an aware UTC time")
    moment = timestamp.astimezone(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(math.floor(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, moment, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _describe(exc: httpx.HTTPError, url: str) -> str:
    """The exception's kind and message, with the URL's userinfo and query replaced.

    httpx messages can quote the URL, and merchants sometimes put tokens in it.
    """
    text = str(exc)
    safe_url = _redact_url(url)
    if url in text:
        text = text.replace(url, safe_url)
    return f"{type(exc).__name__}: {text}"[:300]


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
