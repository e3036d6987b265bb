"""Fixtures for TCS: a fresh copy of the seeded world per test, TCS's TCP listener on loopback
(its own event loop in a thread), and an onboarded acquirer with its zone keys.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from banksim.tcs.server import onboard
from banksim.world import World
from tests.banksim.conftest import copy_world
from tests.banksim.tcs.kit import Client, encrypted_pin_block

TERMINAL = "T0000001"
MERCHANT = "898120000000001"
PIN = "123456"


@dataclass
class Tcs:
    world: World
    port: int
    acquirer_id: str
    zpk: bytes
    zak: bytes
    stan: int = 0

    def client(self) -> Client:
        return Client("127.0.0.1", self.port, self.zak)

    def balance(self, bank: str, acc_no: str) -> int:
        account = self.world.books(bank).account(acc_no)
        assert account is not None
        return account.balance_minor

    def total_minor(self) -> int:
        return sum(c.books.total_minor() for c in self.world.contexts.values())

    def next_stan(self) -> str:
        self.stan += 1
        return f"{self.stan:06d}"

    def purchase(self, pan: str, amount_minor: int, *, pin: str = PIN, stan: str | None = None) -> dict[str, str]:
        return {
            **self.header("0200", stan),
            "2": pan,
            "3": "000000",
            "4": f"{amount_minor:012d}",
            "22": "021",
            "25": "00",
            "52": encrypted_pin_block(self.zpk, pin, pan),
            "53": "1600000000000000",
            "60": "22000001",
        }

    def header(self, mti: str, stan: str | None = None) -> dict[str, str]:
        return {
            "t": mti,
            "7": datetime.now().strftime("%m%d%H%M%S"),
            "11": stan or self.next_stan(),
            "32": self.acquirer_id,
            "41": TERMINAL,
            "42": MERCHANT,
            "49": "156",
        }


@pytest.fixture
def tcs(seeded_template: Path, tmp_path: Path) -> Iterator[Tcs]:
    world = copy_world(seeded_template, tmp_path)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(world.tcs.start("127.0.0.1", 0), loop).result(timeout=10)
    acquirer = onboard(world.tcs.switch, {"acquirer_id": "48990001", "name": "天付支付"})
    yield Tcs(world, world.tcs.iso_port, acquirer.acquirer_id, acquirer.zpk, acquirer.zak)
    asyncio.run_coroutine_threadsafe(world.tcs.stop(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    world.close()
