"""A real merchant webhook endpoint for tests: an HTTP server on a loopback ephemeral port.

It records every request (headers and the exact body bytes) and can be told to fail the next N
requests, to answer with a ``Retry-After``, or to answer slowly, so retries and timeouts are
exercised over real HTTP rather than through a fake sender.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    answered_status: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class MerchantEndpoint:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[ReceivedWebhook] = []
        self._failures_left = 0
        self._failure_status = 500
        self._retry_after: str | None = None
        self.delay_s = 0.0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval makes shutdown quick; the default half second would slow every test.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhooks/tianpay"

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self._lock:
            return list(self._received)

    def fail_next(self, count: int, *, status: int = 500, retry_after: str | None = None) -> None:
        with self._lock:
            self._failures_left = count
            self._failure_status = status
            self._retry_after = retry_after

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str | None]:
        with self._lock:
            if self._failures_left > 0:
                self._failures_left -= 1
                status, retry_after = self._failure_status, self._retry_after
            else:
                status, retry_after = 200, None
            self._received.append(ReceivedWebhook(path, headers, body, status))
            return status, retry_after

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                status, retry_after = endpoint._answer(self.path, headers, body)
                if endpoint.delay_s:
                    time.sleep(endpoint.delay_s)
                reply = b"ok" if status < 300 else b"endpoint says no"
                try:
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    # The sender gave up (a timeout test); the request is recorded all the same.
                    pass

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
