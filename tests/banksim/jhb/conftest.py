"""Fixtures for JHB: the bank served on a loopback port, a notification sink, onboarded partners.

JHB runs with the framework's own server (`serve_all`) in a background thread with its own event
loop, next to a small sink app that plays the platform's notification endpoint. Retry delays are
scaled down by 1000 so a day of retries takes well under a second.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from jhbsim_kit import JhbTestClient, Partner, onboard
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from banksim.core.bank import PROFILES, BankContext, SimConfig
from banksim.core.clearing import Clearing
from banksim.core.clock import SimClock
from banksim.core.seed import seed_bank
from banksim.core.server import Listener, serve_all
from banksim.jhb import JhbBank, create_bank

HANG_S = 2.5


@dataclass
class Sink:
    """Plays the platform's notify endpoint; `/notify/fail/{n}/{tag}` refuses the first n attempts."""

    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def health(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        async def notify(request: Request) -> JSONResponse | PlainTextResponse:
            tag = request.path_params["tag"]
            failures = int(request.path_params.get("failures", 0))
            with self.lock:
                attempts = self.received.setdefault(tag, [])
                attempts.append(json.loads(await request.body()))
                count = len(attempts)
            if count <= failures:
                # Alternate between the two kinds of refusal: an error status, and 200 without 0000.
                if count % 2:
                    return PlainTextResponse("busy", status_code=500)
                return JSONResponse({"ret_code": "1999"})
            return JSONResponse({"ret_code": "0000"})

        async def plain_ok(request: Request) -> PlainTextResponse:
            with self.lock:
                self.received.setdefault(request.path_params["tag"], []).append(json.loads(await request.body()))
            return PlainTextResponse("ok")

        return Starlette(
            routes=[
                Route("/_sim/health", health),
                Route("/notify/ok/{tag}", notify, methods=["POST"]),
                Route("/notify/fail/{failures:int}/{tag}", notify, methods=["POST"]),
                Route("/notify/plain-ok/{tag}", plain_ok, methods=["POST"]),
            ]
        )

    def wait_for(self, tag: str, count: int = 1, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.received.get(tag, []))
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"expected {count} notifications for {tag}, got {len(got)}")

    def seen(self, tag: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received.get(tag, []))


@dataclass
class JhbWorld:
    url: str
    sink_url: str
    sink: Sink
    bank: JhbBank
    context: BankContext


@pytest.fixture(scope="session")
def jhb_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JhbWorld]:
    data_dir: Path = tmp_path_factory.mktemp("jhb-world")
    config = SimConfig(data_dir=data_dir, notify_scale=0.001, hang_s=HANG_S, notify_timeout_s=2.0)
    clock = SimClock()
    clearing = Clearing(config.banks_dir / "clearing.sqlite", {}, clock)
    context = BankContext(PROFILES["JHB"], config, clock, clearing)
    seed_bank(context.books, "JHB", at=clock.now())
    clearing.add_bank("JHB", context.books)
    bank = create_bank(context)
    sink = Sink()
    urls: dict[str, str] = {}
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def on_ready(found: dict[str, str]) -> None:
        urls.update(found)
        ready.set()

    async def main() -> None:
        await bank.start()
        try:
            listeners = [Listener("JHB", bank.asgi_app(), 0), Listener("SINK", sink.app(), 0)]
            await serve_all(listeners, "127.0.0.1", on_ready, stop)
        finally:
            await bank.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(20), "JHB did not start"
    yield JhbWorld(urls["JHB"], urls["SINK"], sink, bank, context)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    context.books.close()
    clearing.close()


@pytest.fixture
def http(jhb_world: JhbWorld) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jhb_world.url, timeout=10.0) as client:
        yield client


@pytest.fixture
def partner(http: httpx.Client) -> Partner:
    """A freshly onboarded partner per test, so tests never share order numbers or keys."""
    return onboard(http)


@pytest.fixture
def jhb(http: httpx.Client, partner: Partner) -> JhbTestClient:
    return JhbTestClient(http, partner)


@pytest.fixture
def clock_reset(jhb_world: JhbWorld) -> Iterator[SimClock]:
    """For tests that move JHB's clock: it is put back afterwards."""
    yield jhb_world.context.clock
    jhb_world.context.clock.reset()
