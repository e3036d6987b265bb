"""Tools for the contract suite: a real bank world in a subprocess, a payer's browser, a notify receiver.

Only HTTP crosses between the adapter and HBB's simulator; nothing here imports ``banksim``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import httpx

from tianpay.channels.hbb import HbbChannel
from tianpay.ports.channels import InvalidNotification, RedirectForm

ZHANG_WEI_CARD = "6217990000000000014"
PASSWORD = "Passw0rd!"
# Magic 96/97 hold a request this long (BANKSIM_HANG_S); the adapter's timeout is well below it.
HANG_S = 3.0


@contextmanager
def bank_world(data_dir: Path) -> Iterator[dict[str, str]]:
    """Runs ``python -m banksim serve`` on ephemeral ports with the notification schedule compressed."""
    env = {**os.environ, "BANKSIM_NOTIFY_SCALE": "0.001", "BANKSIM_HANG_S": str(HANG_S)}
    log_path = data_dir / "banksim.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "banksim",
                "serve",
                "--data-dir",
                str(data_dir / "world"),
                "--base-port",
                "0",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                process.wait(timeout=10)
                raise RuntimeError(f"banksim did not start:\n{log_path.read_text()}")
            yield json.loads(line)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Receiver:
    """The platform's notify endpoint in miniature: verifies with the adapter and acknowledges as it says."""

    def __init__(self) -> None:
        self.channel: HbbChannel | None = None
        self.deliveries: list[tuple[bytes, str, int]] = []
        self._refuse: set[str] = set()
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, reply = receiver._handle(body, self.headers.get("Content-Type", ""))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/channels/hbb/notify"

    def refuse_once(self, order_id: str) -> None:
        with self._lock:
            self._refuse.add(order_id)

    def _handle(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        order_id = _order_id(body)
        with self._lock:
            refuse = order_id in self._refuse
            self._refuse.discard(order_id)
        accepted = not refuse
        if self.channel is not None and accepted:
            try:
                self.channel.parse_notification(body, content_type)
            except InvalidNotification:
                accepted = False
        ack = self.channel.notification_ack(accepted) if self.channel else None
        status, reply = (ack.status_code, ack.body) if ack else (200, b"ok")
        with self._lock:
            self.deliveries.append((body, content_type, status))
            self._lock.notify_all()
        return status, reply

    def wait_for(self, order_id: str, *, count: int = 1, timeout_s: float = 10.0) -> list[tuple[bytes, str, int]]:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                found = [d for d in self.deliveries if _order_id(d[0]) == order_id]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)} of {count} notifications for {order_id} arrived")
                self._lock.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _order_id(body: bytes) -> str:
    try:
        return dict(parse_qsl(body.decode("utf-8"))).get("orderId", "")
    except UnicodeDecodeError:
        return ""


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.actions: list[str] = []
        self.hidden: dict[str, str] = {}
        self.codes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.actions.append(values.get("action", ""))
        if tag == "input" and values.get("type") == "hidden":
            self.hidden[values.get("name", "")] = values.get("value", "")
        if "data-resp-code" in values:
            self.codes.append(values["data-resp-code"])


def read_page(response: httpx.Response) -> _Forms:
    parser = _Forms()
    parser.feed(response.text)
    return parser


class Payer:
    """A payer's browser on HBB's online-banking pages (login with card + password, then confirm)."""

    def __init__(self, hbb_url: str) -> None:
        self._hbb_url = hbb_url
        self._client = httpx.Client(base_url=hbb_url, timeout=10.0, follow_redirects=True)

    def open(self, form: RedirectForm, *, timeout_s: float = 10.0) -> httpx.Response:
        assert form.method == "POST"
        return self._client.post(form.url, data=dict(form.fields), timeout=timeout_s)

    def login(self, page: httpx.Response, card_no: str = ZHANG_WEI_CARD, password: str = PASSWORD) -> httpx.Response:
        action = _one(read_page(page).actions, "/login")
        return self._client.post(action, data={"card_no": card_no, "password": password})

    def confirm(self, page: httpx.Response, *, timeout_s: float = 10.0) -> httpx.Response:
        action = _one(read_page(page).actions, "/confirm")
        return self._client.post(action, timeout=timeout_s)

    def pay(self, form: RedirectForm) -> httpx.Response:
        """Opens the form, logs in as 张伟 and confirms; returns HBB's result page."""
        return self.confirm(self.login(self.open(form)))

    def close(self) -> None:
        self._client.close()


def _one(actions: list[str], suffix: str) -> str:
    found = [a for a in actions if re.search(re.escape(suffix) + r"$", a)]
    assert len(found) == 1, f"expected one form ending in {suffix}, found {actions}"
    return found[0]
