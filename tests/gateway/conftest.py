"""Fixtures for gateway mode: the real bank world, an onboarded platform, and a payer's browser.

The bank world runs as ``python -m banksim serve --base-port 0 --json`` once per test module, with
the notification schedule compressed and magic 96/97 holding requests for ``HANG_S`` seconds, longer
than the platform's ``BANK_TIMEOUT_S``. The platform is onboarded into a temporary data directory
and meets the banks only over HTTP, through the channel registry ``tianpay serve`` would build.
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
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ORDER_NOT_FOUND_CODES, ChannelRegistry, load_channels, onboard_banks
from tianpay.domain.merchant import FeePlan, FeeRate, Merchant, MerchantStatus
from tianpay.domain.money import Money
from tianpay.domain.payment import Payment, PaymentMethod, PaymentRequest
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.gateway import GatewaySettings
from tianpay.services.payments import create_payment

HANG_S = 2.5
BANK_TIMEOUT_S = 1.0
WORLD_START_TIMEOUT_S = 60.0
HBB_CARD = "6217990000000000014"
HBB_RESERVE = "6217990000000000998"
JHB_CARD = "6227990000000000013"
JHB_RESERVE = "6227990000000000997"
PASSWORD = "Passw0rd!"
MERCHANT_NAME = "津门好物商城"
# The merchant pays 0.60 % at the cashier and 0.50 % (at least ¥1.00) for online banking.
FEE_RATES = (FeeRate("cashier", 60), FeeRate("online_banking", 50, 100))


@dataclass(frozen=True, slots=True)
class BankWorld:
    urls: dict[str, str]
    data_dir: Path

    def state(self, bank: str) -> dict[str, Any]:
        response = httpx.get(self.urls[bank] + "/_sim/state", timeout=10.0)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def balance(self, bank: str, acc_no: str) -> int:
        accounts = self.state(bank)["accounts"]
        return int(next(a["balance_minor"] for a in accounts if a["acc_no"] == acc_no))


def _readline_within(process: subprocess.Popen[str], timeout_s: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        return ""


@pytest.fixture(scope="module")
def bank_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BankWorld]:
    directory = tmp_path_factory.mktemp("bank-world")
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
            line = _readline_within(process, WORLD_START_TIMEOUT_S)
            if not line:
                process.kill()
                process.wait(timeout=10)
                pytest.fail(f"banksim did not start:\n{log_path.read_text()}")
            urls = {code: url for code, url in json.loads(line).items() if code in ("HBB", "JHB")}
            yield BankWorld(urls, directory)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture(scope="module")
def onboarded_dir(bank_world: BankWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A platform data directory onboarded at HBB and JHB."""
    data_dir = tmp_path_factory.mktemp("platform-data")
    assert sorted(onboard_banks(data_dir, bank_world.urls)) == ["HBB", "JHB"]
    return data_dir


@pytest.fixture(scope="module")
def channels(onboarded_dir: Path) -> Iterator[ChannelRegistry]:
    registry = load_channels(onboarded_dir, timeout_s=BANK_TIMEOUT_S)
    yield registry
    registry.close()


def gateway_settings_for(base_url: str) -> GatewaySettings:
    return GatewaySettings(
        base_url=base_url,
        requery_first_after_s=60.0,
        requery_max_interval_s=1800.0,
        absent_order_margin_s=900.0,
        order_not_found_codes=ORDER_NOT_FOUND_CODES,
    )


def now_clock() -> SettableClock:
    # The banks run on real time (txnTime, payTimeout, expire_time), so our clock starts there and
    # only tests that need "later" move it forward.
    return SettableClock(datetime.now(UTC))


def add_merchant(uow_factory: UnitOfWorkFactory, clock: SettableClock, merchant_id: str) -> str:
    with uow_factory() as uow:
        if uow.merchants.get(merchant_id) is None:
            merchant = Merchant(merchant_id, MERCHANT_NAME, MerchantStatus.ACTIVE, None, "whsec_test", clock.now())
            uow.merchants.add(merchant)
            uow.merchants.set_fee_plan(FeePlan.of(merchant_id, FEE_RATES))
            uow.commit()
    return merchant_id


_counter = iter(range(1, 1_000_000))


def new_payment(
    uow_factory: UnitOfWorkFactory,
    clock: SettableClock,
    ids: Any,
    merchant_id: str,
    amount_minor: int,
    *,
    method: PaymentMethod = PaymentMethod.CASHIER,
    bank: str | None = None,
) -> Payment:
    request = PaymentRequest(
        merchant_id=merchant_id,
        out_trade_no=f"order-{time.time_ns()}-{next(_counter)}",
        amount=Money.cny(amount_minor),
        method=method,
        subject="津门好物 茶叶礼盒",
        bank=bank,
        notify_url="https://shop.example/notify",
        return_url="https://shop.example/paid?from=tianpay",
    )
    return create_payment(uow_factory, clock, ids, request).payment


# ---- a payer's browser ----------------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    choices: dict[str, list[str]] = field(default_factory=dict)
    form_id: str = ""


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.codes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            method = values.get("method", "get").lower()
            self.forms.append(Form(values.get("action", ""), method, form_id=values.get("id", "")))
        if tag == "input" and self.forms:
            name = values.get("name", "")
            if values.get("type") == "radio":
                self.forms[-1].choices.setdefault(name, []).append(values.get("value", ""))
            elif "value" in values:
                self.forms[-1].fields[name] = values["value"]
        if "data-resp-code" in values:
            self.codes.append(values["data-resp-code"])


def forms_on(page: httpx.Response) -> list[Form]:
    parser = _Forms()
    parser.feed(page.text)
    return parser.forms


def resp_codes_on(page: httpx.Response) -> list[str]:
    parser = _Forms()
    parser.feed(page.text)
    return parser.codes


def form_ending(page: httpx.Response, suffix: str) -> Form:
    found = [f for f in forms_on(page) if f.action.endswith(suffix)]
    assert len(found) == 1, f"expected one form ending in {suffix}: {[f.action for f in forms_on(page)]}\n{page.text}"
    return found[0]


def pay_on_hbb_pages(browser: httpx.Client, form_page_or_fields: tuple[str, dict[str, str]], *,
                     confirm_timeout_s: float = 10.0) -> httpx.Response:
    """Posts the signed form to HBB, logs in as 张伟 and confirms; returns HBB's result page."""
    url, fields = form_page_or_fields
    login_page = browser.post(url, data=fields)
    assert login_page.status_code == 200, login_page.text
    login = form_ending(login_page, "/login")
    confirm_page = browser.post(str(login_page.url.join(login.action)),
                                data={**login.fields, "card_no": HBB_CARD, "password": PASSWORD})
    assert confirm_page.status_code == 200, confirm_page.text
    confirm = form_ending(confirm_page, "/confirm")
    return browser.post(str(confirm_page.url.join(confirm.action)), data=confirm.fields, timeout=confirm_timeout_s)


def pay_on_jhb_pages(browser: httpx.Client, url: str, fields: dict[str, str]) -> httpx.Response:
    """Opens JHB's GET form, logs in with 张伟's JHB card and confirms; returns JHB's last answer (a 303)."""
    login_page = browser.get(url, params=fields)
    assert login_page.status_code == 200, login_page.text
    login = forms_on(login_page)[0]
    logged_in = browser.post(str(login_page.url.join(login.action)),
                             data={**login.fields, "card_no": JHB_CARD, "password": PASSWORD})
    assert logged_in.status_code == 303, logged_in.text
    confirm_page = browser.get(str(logged_in.url.join(logged_in.headers["location"])))
    assert confirm_page.status_code == 200, confirm_page.text
    confirm = forms_on(confirm_page)[0]
    return browser.post(str(confirm_page.url.join(confirm.action)), data=confirm.fields)


def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s}s")
        time.sleep(0.05)


# ---- the platform's own fixtures ------------------------------------------------------------------------


@pytest.fixture
def clock() -> SettableClock:
    """Overrides the suite's fixed clock: the simulated banks refuse orders timed in their past."""
    return now_clock()


@pytest.fixture
def ids() -> UlidGenerator:
    return UlidGenerator()
