"""Fixtures for the JHB contract suite: the real bank world in a subprocess, a notification receiver.

The world runs as `python -m banksim serve --base-port 0 --json` on free loopback ports with the
notification schedule compressed and magic 96/97 holding requests for `HANG_S` seconds, longer
than the adapter's `CLIENT_TIMEOUT_S`. The adapter meets it only over HTTP, as it would a bank.
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
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tianpay.channels.jhb import JhbChannel, build_jhb_channel
from tianpay.channels.jhb.onboarding import config_from_onboarding, onboard
from tianpay.ports.channels import BankNotification, InvalidNotification

HANG_S = 3.0
CLIENT_TIMEOUT_S = 1.0
WORLD_START_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class World:
    jhb_url: str
    directory: Path


@pytest.fixture(scope="session")
def jhb_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("jhb-world")
    env = {**os.environ, "BANKSIM_NOTIFY_SCALE": "0.001", "BANKSIM_HANG_S": str(HANG_S)}
    log_path = directory / "banksim.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "banksim", "serve", "--data-dir", str(directory), "--base-port", "0", "--json"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        try:
            assert process.stdout is not None
            line = _readline_within(process, WORLD_START_TIMEOUT_S)
            if not line:
                process.wait(timeout=10)
                pytest.fail(f"banksim did not start:\n{log_path.read_text()}")
            yield World(jhb_url=json.loads(line)["JHB"], directory=directory)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _readline_within(process: subprocess.Popen[str], timeout_s: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        return ""


@dataclass
class Received:
    raw: bytes
    notification: BankNotification | None
    error: str = ""


@dataclass
class Receiver:
    """Plays the platform's notify endpoint: parses with the adapter and acks with its ack."""

    url: str = ""
    # One adapter per onboarded platform, by the last segment of the notify URL.
    channels: dict[str, JhbChannel] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def notify_url(self, name: str) -> str:
        return f"{self.url}/notify/{name}"

    def handle(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, str]:
        channel = self.channels[path.rsplit("/", 1)[-1]]
        try:
            item = Received(body, channel.parse_notification(body, content_type))
        except InvalidNotification as exc:
            item = Received(body, None, str(exc))
        with self.lock:
            self.received.append(item)
            self.lock.notify_all()
        ack = channel.notification_ack(item.notification is not None)
        return ack.status_code, ack.body, ack.content_type

    def wait_for(
        self, reference: str, predicate: Callable[[BankNotification], bool] = lambda n: True, timeout_s: float = 10.0
    ) -> Received:
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while True:
                for item in self.received:
                    n = item.notification
                    if n is not None and n.platform_reference == reference and predicate(n):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no notification for {reference} within {timeout_s}s")
                self.lock.wait(left)

    def count_for(self, reference: str) -> int:
        with self.lock:
            return sum(1 for i in self.received if i.notification and i.notification.platform_reference == reference)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            status, body, content_type = state.handle(
                self.path, self.rfile.read(length), self.headers.get("Content-Type", "")
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Platform:
    name: str
    data_dir: Path
    channel: JhbChannel
    notify_url: str


def connect(data_dir: Path, http: httpx.Client, clock: Callable[[], datetime] | None = None) -> JhbChannel:
    """The adapter as the composition root builds it, from what onboarding left on disk."""
    config = config_from_onboarding(data_dir, timeout_s=CLIENT_TIMEOUT_S)
    if clock is None:
        return build_jhb_channel(config, http_client=http)
    return build_jhb_channel(config, http_client=http, clock=clock)


def onboard_platform(world: World, data_dir: Path, receiver: Receiver, name: str, http: httpx.Client) -> Platform:
    onboard(data_dir, world.jhb_url, http=http)
    channel = connect(data_dir, http)
    receiver.channels[name] = channel
    return Platform(name, data_dir, channel, receiver.notify_url(name))


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture(scope="session")
def platform(
    jhb_world: World, receiver: Receiver, http: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> Platform:
    return onboard_platform(jhb_world, tmp_path_factory.mktemp("platform-data"), receiver, "main", http)
