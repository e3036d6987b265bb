"""HBB's statement and payout adapters against the real simulator, over loopback HTTP.

The bank world runs in a subprocess (tests/gateway/conftest.py); a payment is made through HBB's
pages, payouts through the payout channel, then HBB's clock ends the day and the downloaded file is
parsed and compared with what the bank booked (``/_sim/state``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.banksim.acp_kit import Browser, Receiver, wait_for
from tests.gateway import conftest as world
from tests.gateway.conftest import BankWorld
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.hbb import load_hbb_config
from tianpay.channels.hbb.statement import build_hbb_statement_channel
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.money import Money
from tianpay.ports.channels import OnlineBankingOrder, Outcome
from tianpay.ports.payouts import KIND_PAYOUT, PayoutBatch, PayoutOrder
from tianpay.ports.statements import (
    StatementItemKind,
    StatementLine,
    StatementNotReady,
    StatementUnavailable,
)

pytestmark = pytest.mark.e2e

bank_world, onboarded_dir, channels = world.bank_world, world.onboarded_dir, world.channels

HBB_RESERVE = "6217990000000000998"
ZHANG_WEI_HBB = "6217990000000000014"
WANG_FANG_HBB = "6217990000000000022"
ZHANG_WEI_JHB = "6227990000000000013"
K = StatementItemKind
_ids = UlidGenerator()
_amounts = itertools.count(3_000, 100)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def _order(account_no: str, name: str, bank: str, amount_minor: int | None = None) -> PayoutOrder:
    amount = Money.cny(amount_minor if amount_minor is not None else next(_amounts))
    return PayoutOrder(_ids.new("pyo"), amount, account_no, name, bank, "结算款", datetime.now(UTC))


def _batch(*orders: PayoutOrder, notify_url: str = "") -> PayoutBatch:
    return PayoutBatch(_ids.new("pob"), orders, datetime.now(UTC), notify_url=notify_url)


def _bank_day(bank_world: BankWorld) -> date:
    clock = httpx.get(bank_world.urls["HBB"] + "/_sim/clock", timeout=10).json()
    return date.fromisoformat(clock["business_date"])


def _end_day(bank_world: BankWorld) -> None:
    httpx.post(bank_world.urls["HBB"] + "/_sim/clock", json={"advance_s": 86_400}, timeout=10).raise_for_status()


def _reserve_day(bank_world: BankWorld, day: date) -> list[tuple[str, int]]:
    """What the bank booked on the reserve for ``day``, charges aside: (bank_ref, signed amount)."""
    moved = []
    for transfer in reversed(bank_world.state("HBB")["transfers"]):
        if transfer["statement_date"] != day.isoformat() or transfer["kind"] == "day_end_fee":
            continue
        if HBB_RESERVE in (transfer["debit_acc"], transfer["credit_acc"]):
            sign = 1 if transfer["credit_acc"] == HBB_RESERVE else -1
            moved.append((transfer["bank_ref"], sign * transfer["amount_minor"]))
    return moved


def test_payouts_answer_per_item_and_the_unknown_one_is_found_by_query(
    channels: ChannelRegistry, bank_world: BankWorld, receiver: Receiver
) -> None:
    payouts = channels.payouts("HBB")
    wang_fang = bank_world.balance("HBB", WANG_FANG_HBB)
    zhang_wei_jhb = bank_world.balance("JHB", ZHANG_WEI_JHB)
    paid = _order(WANG_FANG_HBB, "王芳", "HBB", 4_000)
    across = _order(ZHANG_WEI_JHB, "张伟", "JHB", 6_000)
    wrong_name = _order(WANG_FANG_HBB, "王小芳", "HBB", 4_000)
    refused = _order(WANG_FANG_HBB, "王芳", "HBB", 4_091)
    lost = _order(WANG_FANG_HBB, "王芳", "HBB", 4_096)
    batch = _batch(paid, across, wrong_name, refused, lost, notify_url=f"{receiver.url}/hbb-payout")

    results = payouts.submit_payouts(batch)

    assert results[paid.payout_id].outcome is Outcome.SUCCEEDED
    assert results[paid.payout_id].bank_reference
    assert results[across.payout_id].outcome is Outcome.SUCCEEDED
    assert (results[wrong_name.payout_id].outcome, results[wrong_name.payout_id].bank_code) == (Outcome.FAILED, "56")
    assert results[refused.payout_id].outcome is Outcome.NOT_SUBMITTED
    assert results[lost.payout_id].outcome is Outcome.UNKNOWN
    queried = payouts.query_payouts(batch)
    assert queried[lost.payout_id].outcome is Outcome.SUCCEEDED
    assert queried[paid.payout_id].bank_reference == results[paid.payout_id].bank_reference
    # HBB never recorded the 91, and its absence is not final until the documented window has passed.
    assert queried[refused.payout_id].outcome is Outcome.UNKNOWN
    assert bank_world.balance("HBB", WANG_FANG_HBB) == wang_fang + 4_000 + 4_096
    assert bank_world.balance("JHB", ZHANG_WEI_JHB) == zhang_wei_jhb + 6_000

    wait_for(lambda: len(receiver.at("/hbb-payout")) >= 2, timeout_s=10)
    notice = next(r.fields for r in receiver.at("/hbb-payout") if r.fields["orderId"] == "pyo" + paid.payout_id[4:])
    parsed = payouts.parse_notification(urlencode(notice).encode(), "application/x-www-form-urlencoded")
    assert (parsed.kind, parsed.platform_reference, parsed.result.outcome) == (
        KIND_PAYOUT, paid.payout_id, Outcome.SUCCEEDED
    )
    assert parsed.result.amount == Money.cny(4_000)


def test_the_downloaded_statement_is_what_hbb_booked_on_the_reserve(
    channels: ChannelRegistry, bank_world: BankWorld, tmp_path: Path
) -> None:
    hbb = channels.online_banking("HBB")
    attempt_id = _ids.new("att")
    created = datetime.now(UTC)
    form = hbb.payment_form(
        OnlineBankingOrder(
            attempt_id, Money.cny(10_000), "保温杯", "津门好物商城", created, created + timedelta(minutes=15),
            "http://127.0.0.1:9/notify", "http://127.0.0.1:9/return",
        )
    )  # fmt: skip
    browser = Browser(bank_world.urls["HBB"])
    assert browser.pay(form.fields, ZHANG_WEI_HBB).front_post["respCode"] == "00"
    browser.close()
    payout = _order(WANG_FANG_HBB, "王芳", "HBB", 3_000)
    assert channels.payouts("HBB").submit_payouts(_batch(payout))[payout.payout_id].outcome is Outcome.SUCCEEDED
    day = _bank_day(bank_world)
    statements = channels.statements("HBB")
    with pytest.raises(StatementNotReady):
        statements.download_statement(day, tmp_path / "early.txt")

    _end_day(bank_world)
    downloaded = statements.download_statement(day, tmp_path / "hbb" / f"{day}.txt")
    lines = list(statements.read_statement(downloaded.path, day))

    assert downloaded.file_name.endswith(f"{day:%Y%m%d}.txt")
    booked = _reserve_day(bank_world, day)
    assert [line.net_minor + line.fee_minor for line in lines] == [amount for _, amount in booked]
    by_ref = {line.platform_ref: line for line in lines if line.platform_ref}
    collection, paid_out = by_ref[attempt_id], by_ref[payout.payout_id]
    assert (collection.kind, collection.amount_minor, collection.fee_minor) == (K.COLLECTION, 10_000, 10)
    assert (paid_out.kind, paid_out.amount_minor, paid_out.fee_minor) == (K.PAYOUT, -3_000, 100)
    assert all(isinstance(line, StatementLine) and line.statement_date == day for line in lines)
    assert downloaded.path.read_bytes().splitlines()[-1].startswith(b"TRL ")


class _Tampering(httpx.BaseTransport):
    """Passes requests to HBB and changes one character of the answer's file content on the way back."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        body = response.read()
        marker = body.index(b"fileContent=") + len(b"fileContent=") + 10
        flipped = b"A" if body[marker : marker + 1] != b"A" else b"B"
        tampered = body[:marker] + flipped + body[marker + 1 :]
        return httpx.Response(response.status_code, headers=response.headers, content=tampered)


def test_a_tampered_statement_answer_is_unavailable(onboarded_dir: Path, bank_world: BankWorld, tmp_path: Path) -> None:
    config = load_hbb_config(onboarded_dir)
    assert config is not None
    channel = build_hbb_statement_channel(config, http_client=httpx.Client(transport=_Tampering(), timeout=10))
    yesterday = _bank_day(bank_world) - timedelta(days=1)
    with pytest.raises(StatementUnavailable):
        channel.download_statement(yesterday, tmp_path / "tampered.txt")
    assert not (tmp_path / "tampered.txt").exists()
    channel.close()
