"""The webhook sender port: one signed HTTP POST to a merchant's endpoint, and what came back.

The sender never raises for a network problem or a non-2xx answer; it reports them, so the
dispatcher can record the attempt and schedule the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.ports.outbox import DeliveryTarget


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The merchant's answer (or its absence). Success is any 2xx status, nothing else."""

    response_status: int | None
    latency_ms: int
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.response_status is not None and 200 <= self.response_status < 300


class WebhookSender(Protocol):
    def send(self, target: DeliveryTarget, webhook_id: str, body: str, timestamp: datetime) -> DeliveryResult:
        """POSTs ``body`` to ``target.url`` signed per Standard Webhooks at ``timestamp`` (aware UTC)."""
        ...
