"""The merchant's webhook endpoint for the fault suite: verifies every delivery and remembers it.

Unlike the demo's receiver it checks the timestamp against the platform's shifted clock: the fault
scenarios move the whole platform past midnight, and a merchant whose clock is kept in sync (NTP)
with the platform's must not refuse what it sends then. The signature is checked in full.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from tianpay.adapters.clock import OffsetFileClock

TOLERANCE_S = 300


@dataclass(frozen=True, slots=True)
class Arrival:
    """One delivery as it arrived: its webhook id and the event, or None when it did not verify."""

    webhook_id: str
    event: dict[str, Any] | None


class WebhookReceiver:
    """A loopback HTTP server that answers 204 to a verified webhook and 400 to anything else."""

    def __init__(self, secret: str, clock: OffsetFileClock) -> None:
        self._webhook = Webhook(secret)
        self._clock = clock
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhooks"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def events_by_id(self) -> dict[str, dict[str, Any]]:
        """Each verified event once, keyed by webhook id (delivery is at least once)."""
        return {a.webhook_id: a.event for a in self.arrivals() if a.event is not None}

    def duplicates_of_the_same_fact(self) -> dict[tuple[str, str], int]:
        """(event type, subject id) announced under more than one webhook id: must stay empty."""
        counts = Counter(
            (str(event["type"]), str(event["data"].get("id"))) for event in self.events_by_id().values()
        )
        return {fact: n for fact, n in counts.items() if n > 1}

    def unverified(self) -> int:
        return sum(1 for a in self.arrivals() if a.event is None)

    def _verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        try:
            msg_id = headers["webhook-id"]
            sent_at = int(headers["webhook-timestamp"])
            offered = headers["webhook-signature"].split()
        except (KeyError, ValueError):
            return None
        if abs(self._clock.now().timestamp() - sent_at) > TOLERANCE_S:
            return None
        expected = self._webhook.sign(msg_id, datetime.fromtimestamp(sent_at, UTC), body.decode()).split(",", 1)[1]
        if not any(hmac.compare_digest(s.split(",", 1)[-1], expected) for s in offered):
            return None
        event = json.loads(body)
        return event if isinstance(event, dict) else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                event = receiver._verify(body, headers)
                with receiver._lock:
                    receiver._arrivals.append(Arrival(headers.get("webhook-id", ""), event))
                self.send_response(HTTPStatus.NO_CONTENT if event is not None else HTTPStatus.BAD_REQUEST)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
