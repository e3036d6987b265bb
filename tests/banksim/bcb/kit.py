"""A private banksim world for BCB payout and statement tests, and a notify endpoint that records posts.

These tests move the world's clock by whole days (a statement is only published once its date is
over), so they run their own world instead of the session's shared one. The world is the real
`python -m banksim serve` on loopback with the notification schedule compressed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

HANG_S = 2.0
WORLD_START_TIMEOUT_S = 60.0
BCB_RESERVE = "6230990000000000991"
BCB_INCOME = "6230990000000000884"
WANG_FANG_BCB = "6230990000000000017"
WANG_FANG_HBB = "6217990000000000022"
CHEN_JING_BCB = "6230990000000000025"
CORPORATE_BCB = "6230990000000000033"


@contextmanager
def bank_world(directory: Path) -> Iterator[dict[str, str]]:
    """The simulated banks as a subprocess; yields their URLs by code."""
    env = {**os.environ, "BANKSIM_NOTIFY_SCALE": "0.001", "BANKSIM_HANG_S": str(HANG_S)}
    log_path = directory / "banksim.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "banksim", "serve", "--data-dir", str(directory), "--base-port", "0", "--json"],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env,
        )
        try:
            line = _readline_within(process, WORLD_START_TIMEOUT_S)
            assert line, log_path.read_text()
            yield dict(json.loads(line))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _readline_within(process: subprocess.Popen[str], timeout_s: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        return ""


def state(url: str) -> dict[str, object]:
    found: dict[str, object] = httpx.get(url + "/_sim/state", timeout=10).json()
    return found


def balance(url: str, acc_no: str) -> int:
    accounts = state(url)["accounts"]
    assert isinstance(accounts, list)
    return int(next(a["balance_minor"] for a in accounts if a["acc_no"] == acc_no))


def business_date(url: str) -> date:
    return date.fromisoformat(httpx.get(url + "/_sim/clock", timeout=10).json()["business_date"])


def advance_days(url: str, days: int = 1) -> None:
    httpx.post(url + "/_sim/clock", json={"advance_s": days * 86_400}, timeout=10).raise_for_status()


def reserve_moved_on(url: str, statement_date: date) -> int:
    """How much the books moved BCB's reserve on a statement date, day-end charges included."""
    transfers = state(url)["transfers"]
    assert isinstance(transfers, list)
    moved = 0
    for t in transfers:
        if t["statement_date"] != statement_date.isoformat():
            continue
        if t["credit_acc"] == BCB_RESERVE:
            moved += int(t["amount_minor"])
        if t["debit_acc"] == BCB_RESERVE:
            moved -= int(t["amount_minor"])
    return moved


def reserve_items_on(url: str, statement_date: date) -> set[str]:
    """The bank_refs of the reserve's movements on a date other than day-end charges."""
    transfers = state(url)["transfers"]
    assert isinstance(transfers, list)
    return {
        str(t["bank_ref"]) for t in transfers
        if t["statement_date"] == statement_date.isoformat() and t["kind"] != "day_end_fee"
        and BCB_RESERVE in (t["credit_acc"], t["debit_acc"])
    }


@dataclass
class Post:
    path: str
    body: bytes
    content_type: str


@dataclass
class NotifyEndpoint:
    """Plays the platform's notify URL: records each POST and answers with ``answer(post)``."""

    url: str = ""
    answer: Callable[[Post], tuple[int, bytes, str]] = lambda post: (200, b"", "text/plain")
    posts: list[Post] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def handle(self, post: Post) -> tuple[int, bytes, str]:
        with self.lock:
            self.posts.append(post)
            self.lock.notify_all()
        return self.answer(post)

    def wait_for(self, predicate: Callable[[Post], bool], count: int = 1, timeout_s: float = 15.0) -> list[Post]:
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while True:
                found = [p for p in self.posts if predicate(p)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)} of {count} posts arrived within {timeout_s}s")
                self.lock.wait(left)


@contextmanager
def notify_endpoint() -> Iterator[NotifyEndpoint]:
    endpoint = NotifyEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            status, body, content_type = endpoint.handle(
                Post(self.path, self.rfile.read(length), self.headers.get("Content-Type", ""))
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def settled_notifications(url: str, event_ref: str, count: int, timeout_s: float = 15.0) -> list[tuple[str, int]]:
    """(status, attempts) of a bank's notifications for one event, once `count` of them are no longer
    pending (the bank records a delivery only after the receiver's answer reached it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        notifications = state(url)["notifications"]
        assert isinstance(notifications, list)
        found = sorted((str(n["status"]), int(n["attempts"])) for n in notifications if n["event_ref"] == event_ref)
        if len([f for f in found if f[0] != "pending"]) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
