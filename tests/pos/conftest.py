"""Fixtures for POS acquiring against the real bank world: TCS and the issuers in a subprocess.

The world runs as ``python -m banksim serve --base-port 0 --json`` once per module (as in
tests/gateway/conftest.py); TCS announces itself in ``<data-dir>/banks/tcs/endpoint.json``
(docs/banks/tcs.md §1). Each test gets a fresh platform database, an onboarding with TCS (the
same acquirer id, so the same zone keys) and a terminal with a random TID, so STANs never collide
at TCS across tests (TCS keys duplicates by acquirer + terminal + business day, §4).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import _readline_within
from tests.payments.conftest import add_merchant
from tests.pos.terminal import Terminal
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.adapters.vault import AesGcmVault
from tianpay.channels.tcs.client import TcsClient
from tianpay.channels.tcs.onboarding import load_tcs_config, onboard_tcs
from tianpay.entrypoints.pos_front.server import PosFront, serve
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.pos import create_terminal

WORLD_START_TIMEOUT_S = 60.0
SWITCH_TIMEOUT_S = 1.0
HBB_RESERVE = "6217990000000000998"
MERCHANT_ID = "mch_A"


@dataclass(frozen=True, slots=True)
class CardWorld:
    """The running bank world: the HTTP banks, and TCS's ISO address and admin URL."""

    urls: dict[str, str]
    directory: Path
    iso_host: str
    iso_port: int
    admin_url: str

    def state(self, bank: str) -> dict[str, Any]:
        url = self.admin_url if bank == "TCS" else self.urls[bank]
        response = httpx.get(url + "/_sim/state", timeout=10.0)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def balance(self, bank: str, acc_no: str) -> int:
        accounts = self.state(bank)["accounts"]
        return int(next(a["balance_minor"] for a in accounts if a["acc_no"] == acc_no))

    def faults(self, **changes: object) -> None:
        httpx.post(self.admin_url + "/_sim/faults", json=changes, timeout=10.0).raise_for_status()

    def tcs_transaction(self, terminal_id: str, stan: str) -> dict[str, Any]:
        txns = self.state("TCS")["transactions"]
        return next(t for t in txns if t["terminal_id"] == terminal_id and t["stan"] == stan)


def start_world(directory: Path) -> tuple[subprocess.Popen[str], CardWorld]:
    log = (directory / "banksim.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "banksim", "serve", "--data-dir", str(directory), "--base-port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=dict(os.environ),
    )  # fmt: skip
    line = _readline_within(process, WORLD_START_TIMEOUT_S)
    if not line:
        stop_world(process)
        pytest.fail(f"banksim did not start:\n{(directory / 'banksim.log').read_text()}")
    endpoint = json.loads((directory / "banks" / "tcs" / "endpoint.json").read_text())
    world = CardWorld(
        json.loads(line), directory, endpoint["iso_host"], int(endpoint["iso_port"]), endpoint["admin_url"]
    )
    return process, world


def stop_world(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def card_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardWorld]:
    process, world = start_world(tmp_path_factory.mktemp("card-world"))
    try:
        yield world
    finally:
        stop_world(process)


@pytest.fixture
def acquirer(card_world: CardWorld, tmp_path: Path) -> Iterator[Path]:
    """A platform data directory onboarded at TCS; TCS's faults are cleared afterwards."""
    onboard_tcs(tmp_path, card_world.admin_url)
    yield tmp_path
    card_world.faults(reset=True)


@dataclass
class Acquiring:
    """The platform side of one test: the database, the vault, the terminal's identity."""

    uow: UnitOfWorkFactory
    clock: SettableClock
    vault: AesGcmVault
    data_dir: Path
    tid: str
    mid: str
    tmk: bytes

    def front(self) -> PosFront:
        config = load_tcs_config(self.data_dir, timeout_s=SWITCH_TIMEOUT_S)
        assert config is not None
        return PosFront(self.uow, self.clock, UlidGenerator(), self.vault, TcsClient(config))

    @asynccontextmanager
    async def running(self, front: PosFront | None = None) -> AsyncIterator[tuple[Terminal, PosFront]]:
        """pos-front served in this event loop, and a fresh terminal pointed at it."""
        front = front or self.front()
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(front, "127.0.0.1", 0, ready=lambda _h, p: bound.set_result(p)))
        port = await bound
        try:
            yield Terminal("127.0.0.1", port, self.tid, self.mid, self.tmk), front
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
def acquiring(uow_factory: UnitOfWorkFactory, clock: SettableClock, acquirer: Path) -> Acquiring:
    add_merchant(uow_factory, clock, MERCHANT_ID)
    vault = AesGcmVault(bytes(32))
    tmk = secrets.token_bytes(16)
    tid = f"{secrets.randbelow(10**8):08d}"
    mid = f"898120{secrets.randbelow(10**9):09d}"
    create_terminal(uow_factory, clock, merchant_id=MERCHANT_ID, tid=tid, mid=mid,
                    tmk_ciphertext=vault.seal(tmk, context=f"terminal:{tid}:tmk"))  # fmt: skip
    return Acquiring(uow_factory, clock, vault, acquirer, tid, mid, tmk)
