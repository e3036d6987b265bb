"""Fixtures for payouts against the real simulated banks, on SQLite and PostgreSQL.

One bank world per test module (``python -m banksim serve``: HBB, JHB, BCB), onboarded and reached
through ``load_channels`` as the composition root does. A merchant's available balance is funded by
a balanced ledger entry from the reserve (what a settlement would have moved there).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from sqlalchemy import Engine

from tests.api.rfc9421_client import MerchantCredentials, PlatformKey, SignedClient
from tests.gateway.conftest import HANG_S, WORLD_START_TIMEOUT_S, _readline_within
from tests.members.conftest import build_tools
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.bootstrap import Container
from tianpay.channels.registry import ChannelRegistry, load_channels, onboard_banks
from tianpay.domain.ledger import JournalEntry, bank_reserve, credit, debit, merchant_available
from tianpay.domain.merchant import Merchant, MerchantStatus
from tianpay.domain.money import Money
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.member_tools import MemberTools
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

# The adapters give up well before the banks' magic 96/97 hang (HANG_S) ends.
CHANNEL_TIMEOUT_S = 1.0
MERCHANT_ID = "mch_payouts"
# Payees among the seeded customers (BANKS.md "Test customers").
WANG_FANG_HBB = ("HBB", "6217990000000000022", "王芳")
WANG_FANG_BCB = ("BCB", "6230990000000000017", "王芳")
LI_NA_JHB = ("JHB", "6227990000000000021", "李娜")
SHOP_BCB = ("BCB", "6230990000000000033", "天津津门好物商贸有限公司")
RESERVES = {"HBB": "6217990000000000998", "JHB": "6227990000000000997", "BCB": "6230990000000000991"}


class PayoutWorld:
    def __init__(self, urls: dict[str, str], data_dir: Path) -> None:
        self.urls = urls
        self.data_dir = data_dir

    def state(self, bank: str) -> dict[str, Any]:
        response = httpx.get(self.urls[bank] + "/_sim/state", timeout=10.0)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def balance(self, bank: str, acc_no: str) -> int:
        accounts = self.state(bank)["accounts"]
        return int(next(a["balance_minor"] for a in accounts if a["acc_no"] == acc_no))


@pytest.fixture(scope="module")
def payout_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PayoutWorld]:
    directory = tmp_path_factory.mktemp("payout-world")
    env = {**os.environ, "BANKSIM_NOTIFY_SCALE": "0.001", "BANKSIM_HANG_S": str(HANG_S)}
    log_path = directory / "banksim.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "banksim", "serve", "--data-dir", str(directory), "--base-port", "0", "--json"],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env,
        )
        try:
            line = _readline_within(process, WORLD_START_TIMEOUT_S)
            if not line:
                process.kill()
                process.wait(timeout=10)
                pytest.fail(f"banksim did not start:\n{log_path.read_text()}")
            urls = {code: url for code, url in json.loads(line).items() if code in ("HBB", "JHB", "BCB")}
            yield PayoutWorld(urls, directory)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture(scope="module")
def payout_data_dir(payout_world: PayoutWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A platform data directory onboarded at HBB, JHB and BCB."""
    data_dir = tmp_path_factory.mktemp("payout-platform")
    assert sorted(onboard_banks(data_dir, payout_world.urls)) == ["BCB", "HBB", "JHB"]
    return data_dir


@pytest.fixture(scope="module")
def channels(payout_data_dir: Path) -> Iterator[ChannelRegistry]:
    registry = load_channels(payout_data_dir, timeout_s=CHANNEL_TIMEOUT_S)
    yield registry
    registry.close()


@pytest.fixture
def clock() -> SettableClock:
    # The banks run on real time (txnTime, the 30-minute "never received" window), so our clock
    # starts there and only tests that need "later" move it forward.
    return SettableClock(datetime.now(UTC))


@pytest.fixture
def ids() -> UlidGenerator:
    return UlidGenerator()


@pytest.fixture
def tools(engine: Engine, clock: SettableClock) -> MemberTools:
    return build_tools(engine, clock)


def fund_merchant(uow_factory: UnitOfWorkFactory, clock: SettableClock, minor: int, *, source: str = "funding") -> str:
    """The merchant (created on first use) with ``minor`` more fen in ``available``, as a settlement
    would have moved there; the money is the HBB reserve's."""
    with uow_factory() as uow:
        if uow.merchants.get(MERCHANT_ID) is None:
            shop = Merchant(MERCHANT_ID, "津门好物商城", MerchantStatus.ACTIVE, None, "whsec_test", clock.now())
            uow.merchants.add(shop)
        amount = Money.cny(minor)
        uow.ledger.post(JournalEntry(
            "test.available_funded", source,
            (debit(bank_reserve("HBB"), amount), credit(merchant_available(MERCHANT_ID), amount)),
            "test funding of the available balance",
        ))
        uow.commit()
    return MERCHANT_ID


def available_minor(uow_factory: UnitOfWorkFactory, merchant_id: str = MERCHANT_ID) -> int:
    with uow_factory() as uow:
        return uow.ledger.balance(f"merchant:{merchant_id}:available").minor


def funded_merchant_client(
    container: Container, base_url: str, name: str, *, bank: str, funds_minor: int
) -> SignedClient:
    """A new merchant with ``funds_minor`` available (as if settled from ``bank``'s reserve) and a signed
    API client for the server at ``base_url``; the caller closes the client's session."""
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    created = create_merchant(container.uow, tools, NewMerchant(name, KeyRequest(), None, 60))
    assert created.key.private_key_path is not None
    with container.uow() as uow:
        amount = Money.cny(funds_minor)
        uow.ledger.post(JournalEntry(
            "test.available_funded", created.merchant_id,
            (debit(bank_reserve(bank), amount), credit(merchant_available(created.merchant_id), amount)),
        ))
        uow.commit()
    credentials = MerchantCredentials(
        merchant_id=created.merchant_id, key_id=created.key.key_id,
        private_key_pem=created.key.private_key_path.read_bytes(), webhook_secret=created.webhook_secret,
        algorithm=created.key.algorithm.value, hmac_secret=created.key.hmac_secret,
    )
    key = container.platform_key
    return SignedClient(base_url, credentials, PlatformKey(key.key_id, key.public_key_pem.encode()), requests.Session())
