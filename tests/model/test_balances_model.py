"""A model-based test of the money (the TigerBeetle auditor idea), on PostgreSQL through the signed API.

Hypothesis drives random sequences of wallet top-ups, wallet payments, partial and full refunds and
end-of-day settlements against a model that knows only the published rules (fee rates, half-up
rounding, pro-rata fee return, T+1 settlement); after every step the platform's ``GET /v1/balance``
and its ledger (member wallet, platform fee income) must equal the model to the fen, and the ledger
must verify.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.conftest import _DatabaseFactory
from tianpay.adapters.clock import SettableClock
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.errors import NotFound
from tianpay.domain.merchant import FeePlan, FeeRate
from tianpay.domain.money import Money
from tianpay.entrypoints.api.app import create_app
from tianpay.services import payments, wallet
from tianpay.services.ledger import verify_ledger
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant
from tianpay.services.settlement import settle_date
from tianpay_sdk import TianpayClient
from tianpay_sdk.errors import InvalidRequestError, TianpayError

pytestmark = pytest.mark.postgres

SHANGHAI = timezone(timedelta(hours=8))
WALLET_BPS = 30  # the model's merchant pays 0.30 % on wallet payments
PAYMENT_PASSWORD = "135792"
_numbers = itertools.count(1)


def half_up(numerator: int, denominator: int) -> int:
    """The model's own rounding (四舍五入) of a non-negative fraction, independent of tianpay.domain.money."""
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass
class Platform:
    base_url: str
    container: Container
    clock: SettableClock
    data_dir: Path


@pytest.fixture(scope="module")
def platform(database_factory: _DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    import socket

    url = database_factory.postgresql()
    data_dir = tmp_path_factory.mktemp("model-platform")
    clock = SettableClock(datetime.now(UTC))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings_ = Settings(data_dir=data_dir, database_url=url, public_base_url=base_url, argon2_time_cost=1,
                         argon2_memory_cost_kib=64, signature_window_s=365 * 86_400)  # fmt: skip
    container = build_container(settings_, clock=clock)
    server = uvicorn.Server(uvicorn.Config(create_app(container), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield Platform(base_url, container, clock, data_dir)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        container.close()


@dataclass
class PaidOrder:
    payment_id: str
    amount: int
    fee: int
    business_date: date
    refunded: int = 0
    fee_returned: int = 0


@dataclass
class Model:
    """What the balances must be, from the published rules alone."""

    pending_by_date: dict[date, int] = field(default_factory=dict)
    available: int = 0
    wallet: int = 0  # change since the example began (the member may be shared between examples)
    fee_income: int = 0  # change since the example began (the platform's account is shared)
    orders: list[PaidOrder] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return sum(self.pending_by_date.values())


class BalancesMachine(RuleBasedStateMachine):
    platform: Platform

    @initialize()
    def open_shop(self) -> None:
        container = self.platform.container
        tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
        created = create_merchant(container.uow, tools, NewMerchant("模型商店", KeyRequest(), None, 60))
        self.merchant_id = created.merchant_id
        with container.uow() as uow:
            uow.merchants.set_fee_plan(FeePlan.of(self.merchant_id, (FeeRate("wallet", WALLET_BPS),)))
            uow.commit()
        assert created.key.private_key_path is not None
        # Responses are not verified here: the platform's clock runs days ahead of the client's, and
        # this test is about money (response signatures have their own tests in tests/api).
        self.client = TianpayClient(self.platform.base_url, created.merchant_id, created.key.key_id,
                                    created.key.private_key_path.read_bytes())  # fmt: skip
        member = self.client.members.create(external_id=f"model-{next(_numbers)}", name="张伟",
                                            id_number="110105198503120012", phone="13800138001")  # fmt: skip
        self.member_id = str(member["id"])
        # The same person registered by an earlier example's merchant is the same member: the
        # password it set then stands (changing it needs an SMS code).
        with contextlib.suppress(InvalidRequestError):
            self.client.request("POST", f"/v1/members/{self.member_id}/payment-password",
                                json={"payment_password": PAYMENT_PASSWORD})  # fmt: skip
        self.model = Model()
        self.wallet_base = self._ledger(f"member:{self.member_id}:wallet")
        self.fee_income_base = self._ledger("platform:fee_income")

    def teardown(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()

    # ---- rules -------------------------------------------------------------------------------------

    @rule(amount=st.integers(min_value=1_00, max_value=5_000_00))
    def top_up(self, amount: int) -> None:
        """The payer tops the wallet up at HBB (recorded as the bank confirms it: the one non-API step)."""
        container = self.platform.container
        tools = container.member_tools
        started = wallet.start_top_up(container.uow, tools, self.member_id, Money.cny(amount),
                                      return_url="https://pay.example/wallet", bank="HBB")  # fmt: skip
        attempt = payments.start_attempt(container.uow, container.clock, container.ids, started.payment.id,
                                         channel="hbb.online_banking", bank="HBB")  # fmt: skip
        payments.record_attempt_succeeded(container.uow, container.clock, started.payment.id, attempt.id,
                                          bank_reference=f"ref-{attempt.id}", amount=Money.cny(amount))  # fmt: skip
        self.model.wallet += amount

    @rule(amount=st.integers(min_value=1, max_value=3_000_00))
    def pay_from_wallet(self, amount: int) -> None:
        payment = self.client.payments.create(out_trade_no=f"m-{next(_numbers)}", amount=amount, currency="CNY",
                                              method="wallet", subject="一杯咖啡")  # fmt: skip
        affordable = self.model.wallet + self.wallet_base >= amount
        try:
            confirmed = self.client.payments.confirm(str(payment["id"]), member_id=self.member_id,
                                                     payment_password=PAYMENT_PASSWORD)  # fmt: skip
        except TianpayError as error:
            refusal = str(error)
        else:
            refusal = ""
        if refusal:
            assert not affordable, f"an affordable wallet payment was refused: {refusal}"
            return
        assert affordable, "a wallet payment beyond the balance was accepted"
        assert confirmed["status"] == "succeeded"
        fee = half_up(amount * WALLET_BPS, 10_000)
        today = self._business_date()
        self.model.wallet -= amount
        self.model.fee_income += fee
        self.model.pending_by_date[today] = self.model.pending_by_date.get(today, 0) + amount - fee
        self.model.orders.append(PaidOrder(str(payment["id"]), amount, fee, today))

    @precondition(lambda self: any(o.refunded < o.amount and o.business_date == self._business_date()
                                   for o in self.model.orders))  # fmt: skip
    @rule(data=st.data(), full=st.booleans())
    def refund(self, data: st.DataObject, full: bool) -> None:
        """Refunds part or all of a payment of today (a settled day's refund is the settlement's business)."""
        today = self._business_date()
        open_orders = [o for o in self.model.orders if o.refunded < o.amount and o.business_date == today]
        order = data.draw(st.sampled_from(open_orders))
        left = order.amount - order.refunded
        amount = left if full else data.draw(st.integers(min_value=1, max_value=left))
        refund = self.client.refunds.create(order.payment_id, out_refund_no=f"r-{next(_numbers)}", amount=amount,
                                            reason="model")  # fmt: skip
        assert refund["status"] == "succeeded"
        # Pro rata and cumulative, so the refunds of a payment return exactly its fee (docs/refunds.md).
        returned = half_up(order.fee * (order.refunded + amount), order.amount) - half_up(
            order.fee * order.refunded, order.amount
        )
        order.refunded += amount
        order.fee_returned += returned
        self.model.wallet += amount
        self.model.fee_income -= returned
        self.model.pending_by_date[today] -= amount - returned

    @rule()
    def end_the_day_and_settle(self) -> None:
        """Moves to the next business day and settles the day that ended (T+1), as the worker would."""
        ended = self._business_date()
        self.platform.clock.advance(timedelta(days=1))
        settle_date(self.platform.container.uow, self.platform.clock, business_date=ended, required_banks=[],
                    merchant_id=self.merchant_id)  # fmt: skip
        self.model.available += self.model.pending_by_date.pop(ended, 0)

    # ---- the auditor ---------------------------------------------------------------------------------

    @invariant()
    def balances_equal_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        balance = self.client.balance.retrieve()
        assert balance["pending"]["amount"] == self.model.pending
        assert balance["available"]["amount"] == self.model.available
        assert self._ledger(f"member:{self.member_id}:wallet") - self.wallet_base == self.model.wallet
        assert self._ledger("platform:fee_income") - self.fee_income_base == self.model.fee_income
        assert self._ledger(f"merchant:{self.merchant_id}:pending") == self.model.pending
        assert self._ledger(f"merchant:{self.merchant_id}:available") == self.model.available

    def _ledger(self, code: str) -> int:
        with self.platform.container.uow() as uow:
            try:
                return uow.ledger.balance(code).minor
            except NotFound:
                return 0

    def _business_date(self) -> date:
        return self.platform.clock.now().astimezone(SHANGHAI).date()


def test_balances_follow_the_model_through_random_operations(platform: Platform) -> None:
    BalancesMachine.platform = platform
    runner: Any = BalancesMachine.TestCase
    runner.settings = settings(max_examples=10, stateful_step_count=15, deadline=None,
                               suppress_health_check=list(HealthCheck))  # fmt: skip
    runner().runTest()
    report = verify_ledger(platform.container.uow)
    assert report.problem is None, report.problem
