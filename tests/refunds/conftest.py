"""Fixtures for the refund services against the real simulated banks, on SQLite and PostgreSQL.

One bank world runs per session (``python -m banksim serve`` on ephemeral ports); the platform is
onboarded to HBB and JHB in a temp data directory and reaches them through ``load_channels``, as
the composition root does. Payments are paid for real on the banks' pages before being refunded.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.channels.hbb.contract_kit import Payer, bank_world, read_page
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry, load_channels, onboard_banks
from tianpay.domain.merchant import FeePlan, FeeRate, Merchant, MerchantStatus
from tianpay.domain.money import Money
from tianpay.domain.payment import Payment, PaymentMethod, PaymentRequest
from tianpay.ports.channels import (
    ChannelResult,
    OnlineBankingChannel,
    OnlineBankingOrder,
    Outcome,
    RedirectForm,
    RefundChannel,
    RefundOrder,
)
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.payments import create_payment, get_payment, record_attempt_succeeded, start_attempt

# The adapters give up well before the banks' magic 96/97 hang (HANG_S in contract_kit) ends.
CHANNEL_TIMEOUT_S = 1.0
MERCHANT_ID = "mch_refunds"
FEE_BPS = 60
JHB_CARD = "6227990000000000013"
PASSWORD = "Passw0rd!"
# 张伟's cards and the platform's reserve accounts (BANKS.md "Test customers").
CARDS = {"HBB": "6217990000000000014", "JHB": "6227990000000000013"}
RESERVES = {"HBB": "6217990000000000998", "JHB": "6227990000000000997"}


class NotifyReceiver:
    """The platform's ``/channels/{bank}/notify`` in miniature: keeps every notification and acks it.

    It does not apply them: tests decide when a notification is handed to the refund service, so the
    outcomes the services reach by answer and by query are deterministic.
    """

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                bank = self.path.strip("/").split("/")[1] if self.path.count("/") >= 3 else ""
                with receiver._lock:
                    receiver.received.append((bank, body, self.headers.get("Content-Type", "")))
                reply = b'{"ret_code":"0000"}' if bank == "JHB" else b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def notify_url(self, bank: str) -> str:
        return f"{self.base_url}/channels/{bank}/notify"

    def of_bank(self, bank: str) -> list[tuple[bytes, str]]:
        with self._lock:
            return [(body, content_type) for b, body, content_type in self.received if b == bank]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class PlatformClock:
    """The adapters' clock, as the composition root gives them the platform's: the running test's
    settable clock (set by ``now_clock``), or real time between tests. HBB's and JHB's "no such
    refund" windows are judged by it, so a test moves them by moving its clock."""

    def __init__(self) -> None:
        self.clock: SettableClock | None = None

    def __call__(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)


@dataclass
class Banks:
    urls: dict[str, str]
    registry: ChannelRegistry
    clock: PlatformClock

    def set_faults(self, bank: str, **faults: object) -> None:
        """``POST /_sim/faults`` at ``bank`` (BANKS.md: latency, outage, …; ``reset=True`` clears them)."""
        httpx.post(f"{self.urls[bank]}/_sim/faults", json=faults, timeout=10).raise_for_status()

    def state(self, bank: str) -> dict[str, object]:
        answer: dict[str, object] = httpx.get(f"{self.urls[bank]}/_sim/state", timeout=10).json()
        return answer

    def balance_minor(self, bank: str, acc_no: str) -> int:
        accounts = self.state(bank)["accounts"]
        assert isinstance(accounts, list)
        return next(int(a["balance_minor"]) for a in accounts if a["acc_no"] == acc_no)

    def books(self, bank: str) -> tuple[int, int]:
        """(张伟's card, the platform's reserve) at ``bank``, in fen."""
        return self.balance_minor(bank, CARDS[bank]), self.balance_minor(bank, RESERVES[bank])


@pytest.fixture(scope="session")
def receiver() -> Iterator[NotifyReceiver]:
    receiver = NotifyReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def banks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Banks]:
    directory = tmp_path_factory.mktemp("refund-banks")
    with bank_world(directory) as urls:
        platform_dir: Path = directory / "tianpay"
        onboard_banks(platform_dir, {"HBB": urls["HBB"], "JHB": urls["JHB"]})
        platform_clock = PlatformClock()
        registry = load_channels(platform_dir, timeout_s=CHANNEL_TIMEOUT_S, clock=platform_clock)
        try:
            yield Banks(urls, registry, platform_clock)
        finally:
            registry.close()


class _CountingRefunds:
    def __init__(self, inner: RefundChannel, owner: CountingChannels) -> None:
        self.code = inner.code
        self._inner = inner
        self._owner = owner

    def refund(self, order: RefundOrder) -> ChannelResult:
        self._owner.count("refund", order.refund_id)
        return self._inner.refund(order)

    def query_refund(self, refund_id: str, created_at: datetime) -> ChannelResult:
        self._owner.count("query", refund_id)
        return self._inner.query_refund(refund_id, created_at)


class CountingChannels:
    """The real channel directory, counting each refund submission and query the banks receive."""

    def __init__(self, registry: ChannelRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self.submissions: Counter[str] = Counter()
        self.queries: Counter[str] = Counter()

    def count(self, kind: str, refund_id: str) -> None:
        with self._lock:
            (self.submissions if kind == "refund" else self.queries)[refund_id] += 1

    def online_banking(self, bank: str) -> OnlineBankingChannel:
        return self._registry.online_banking(bank)

    def refunds(self, bank: str) -> RefundChannel:
        return _CountingRefunds(self._registry.refunds(bank), self)

    def online_banking_banks(self) -> list[str]:
        return self._registry.online_banking_banks()


@pytest.fixture
def channels(banks: Banks) -> CountingChannels:
    return CountingChannels(banks.registry)


@pytest.fixture
def ids() -> UlidGenerator:
    return UlidGenerator()


@pytest.fixture
def now_clock(clock: SettableClock, banks: Banks) -> Iterator[SettableClock]:
    """The settable clock at the real time (the banks check payTimeout and ages against their own),
    also the adapters' clock for the test."""
    clock.set(datetime.now(UTC))
    banks.clock.clock = clock
    yield clock
    banks.clock.clock = None


@pytest.fixture
def merchant_id(uow_factory: UnitOfWorkFactory, now_clock: SettableClock) -> str:
    with uow_factory() as uow:
        uow.merchants.add(
            Merchant(MERCHANT_ID, "津门好物商城", MerchantStatus.ACTIVE, None, "whsec_test", now_clock.now())
        )
        uow.merchants.set_fee_plan(FeePlan.of(MERCHANT_ID, (FeeRate("online_banking", FEE_BPS),)))
        uow.commit()
    return MERCHANT_ID


def pay_at_hbb(banks: Banks, form: RedirectForm) -> None:
    payer = Payer(banks.urls["HBB"])
    try:
        assert read_page(payer.pay(form)).codes == ["00"]
    finally:
        payer.close()


class _FirstForm(HTMLParser):
    """The first form on a page: its action and every input that has a value."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.action:
            self.action = values.get("action", "")
        if tag == "input" and "value" in values:
            self.fields[values.get("name", "")] = values["value"]


def _first_form(page: httpx.Response) -> _FirstForm:
    parser = _FirstForm()
    parser.feed(page.text)
    assert parser.action, page.text
    return parser


def pay_at_jhb(form: RedirectForm) -> None:
    """The payer's browser on JHB's pages: submit the GET form, log in as 张伟, confirm."""
    assert form.method == "GET"
    with httpx.Client(timeout=10.0, follow_redirects=False) as browser:
        login_page = browser.get(form.url, params=dict(form.fields))
        login = _first_form(login_page)
        logged_in = browser.post(
            str(login_page.url.join(login.action)), data={**login.fields, "card_no": JHB_CARD, "password": PASSWORD}
        )
        assert logged_in.status_code == 303, logged_in.text
        confirm_page = browser.get(str(logged_in.url.join(logged_in.headers["location"])))
        confirm = _first_form(confirm_page)
        confirmed = browser.post(str(confirm_page.url.join(confirm.action)), data=confirm.fields)
        assert confirmed.status_code == 303, confirmed.text


@dataclass(frozen=True)
class Paid:
    payment: Payment
    attempt_ids: tuple[str, ...]


def paid_payment(
    uow_factory: UnitOfWorkFactory,
    clock: SettableClock,
    ids: UlidGenerator,
    banks: Banks,
    receiver: NotifyReceiver,
    *,
    bank: str,
    amount_minor: int,
    attempts: int = 1,
) -> Paid:
    """A payment paid for real at ``bank`` (``attempts`` times: later successes are late successes)."""
    request = PaymentRequest(
        merchant_id=MERCHANT_ID,
        out_trade_no=ids.new("order"),
        amount=Money.cny(amount_minor),
        method=PaymentMethod.ONLINE_BANKING,
        subject="保温杯",
        bank=bank,
    )
    payment = create_payment(uow_factory, clock, ids, request).payment
    channel = banks.registry.online_banking(bank)
    started = [
        start_attempt(uow_factory, clock, ids, payment.id, channel=f"{bank.lower()}_online_banking", bank=bank)
        for _ in range(attempts)
    ]
    for attempt in started:
        order = OnlineBankingOrder(
            attempt_id=attempt.id,
            amount=attempt.amount,
            subject=payment.subject,
            merchant_name="津门好物商城",
            created_at=attempt.created_at,
            expires_at=attempt.created_at + timedelta(minutes=30),
            notify_url=receiver.notify_url(bank),
            return_url="http://127.0.0.1:9/cashier/return",
        )
        form = channel.payment_form(order)
        if bank == "HBB":
            pay_at_hbb(banks, form)
        else:
            pay_at_jhb(form)
    for attempt in started:
        result = channel.query_payment(attempt.id, attempt.created_at)
        assert result.outcome is Outcome.SUCCEEDED, result
        assert result.bank_reference is not None
        record_attempt_succeeded(
            uow_factory, clock, payment.id, attempt.id, bank_reference=result.bank_reference, amount=attempt.amount
        )
    return Paid(get_payment(uow_factory, MERCHANT_ID, payment.id).payment, tuple(a.id for a in started))


def events_of(uow_factory: UnitOfWorkFactory) -> list[tuple[str, dict[str, object]]]:
    """The merchant's events, oldest first, as (type, data)."""
    with uow_factory() as uow:
        page = uow.outbox.list_events(MERCHANT_ID, limit=100)
    return [(event.type.value, json.loads(event.body)["data"]) for event in reversed(page.events)]


def balance_minor(uow_factory: UnitOfWorkFactory, code: str) -> int:
    with uow_factory() as uow:
        try:
            return uow.ledger.balance(code).minor
        except Exception:
            return 0
