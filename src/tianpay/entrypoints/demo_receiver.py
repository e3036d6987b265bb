"""A merchant's own little web server on loopback, for ``tianpay demo`` and the end-to-end tests.

It receives notifications at ``/webhooks`` and checks each with the ``standardwebhooks`` library
(as any merchant would, knowing nothing of Tianpay's code), and it serves the page the cashier sends
the payer back to at ``/return``, remembering the query each visit carried.
"""

from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from standardwebhooks.webhooks import Webhook

WEBHOOK_PATH = "/webhooks"
RETURN_PATH = "/return"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification as it arrived; ``event`` is None when it did not verify."""

    webhook_id: str
    headers: dict[str, str]
    body: bytes
    event: dict[str, Any] | None

    @property
    def is_verified(self) -> bool:
        return self.event is not None


@dataclass
class _Records:
    secret: str
    deliveries: list[Delivery] = field(default_factory=list)
    returns: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        try:
            event = Webhook(self.secret).verify(body, headers)
        except Exception:
            # Whatever the library objects to (signature, age, shape), the merchant must not trust it.
            return None
        return event if isinstance(event, dict) else None


class MerchantSite:
    """Starts on a free loopback port; ``stop()`` shuts it down. Thread-safe reads of what arrived."""

    def __init__(self, webhook_secret: str, host: str = "127.0.0.1") -> None:
        self._records = _Records(webhook_secret)
        self._server = ThreadingHTTPServer((host, 0), _handler_for(self._records))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="merchant-site", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    def return_url(self, order: str) -> str:
        return f"{self.base_url}{RETURN_PATH}?order={order}"

    def start(self) -> MerchantSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MerchantSite:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def deliveries(self) -> list[Delivery]:
        with self._records.lock:
            return list(self._records.deliveries)

    def returns(self) -> list[dict[str, str]]:
        with self._records.lock:
            return list(self._records.returns)

    def events_about(self, subject_id: str) -> list[dict[str, Any]]:
        """Verified events whose ``data.id`` is ``subject_id``, once per webhook id, oldest first.

        Delivery is at least once, so a merchant de-duplicates on the webhook id; counting distinct
        ids is what tells whether the platform announced something once or twice.
        """
        seen: set[str] = set()
        found: list[dict[str, Any]] = []
        for delivery in self.deliveries():
            event = delivery.event
            if event is None or delivery.webhook_id in seen:
                continue
            data = event.get("data")
            if isinstance(data, dict) and data.get("id") == subject_id:
                seen.add(delivery.webhook_id)
                found.append(event)
        return found

    def unverified_count(self) -> int:
        return sum(1 for delivery in self.deliveries() if not delivery.is_verified)


def _handler_for(records: _Records) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if urlsplit(self.path).path != WEBHOOK_PATH:
                self._answer(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            event = records.verify(body, headers)
            with records.lock:
                records.deliveries.append(Delivery(headers.get("webhook-id", ""), headers, body, event))
            # A refused notification is sent again by the platform, which is what a merchant wants.
            status = HTTPStatus.NO_CONTENT if event is not None else HTTPStatus.BAD_REQUEST
            self._answer(status, b"", "text/plain")

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != RETURN_PATH:
                self._answer(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
                return
            query = dict(parse_qsl(parts.query))
            with records.lock:
                records.returns.append(query)
            self._answer(HTTPStatus.OK, _return_page(query), "text/html; charset=utf-8")

        def _answer(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Quiet: the demo draws its own progress, and tests read the records instead.
            return

    return Handler


def _return_page(query: dict[str, str]) -> bytes:
    facts = html.escape(json.dumps(query, ensure_ascii=False))
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>津门好物商城</title></head>"
        f"<body><h1 id='thanks'>谢谢惠顾 · Thank you</h1><pre id='query'>{facts}</pre></body></html>"
    ).encode()
