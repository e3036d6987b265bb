"""A day of direct debits at BCB, reconciled, settled and paid out, at the real processes of ``tianpay up``.

Smaller than "every magic amount at every bank" on purpose: ``tests/e2e/test_demo.py`` already runs the
demo, whose tours play every applicable magic amount at HBB and JHB (cashier), refunds, quick pay, a
JHB mandate and POS, and whose next day reconciles every bank (a 98 made good from JHB's statement, a
93 matched across days at HBB), settles to the fen against the merchant's own sums and follows the
payout into the BCB account, then checks ``ledger verify`` and every reserve. What the demo does not
play is BCB's own traffic, so this test gives BCB a day of direct debits (plain, 96 answer lost but
processed, 93 on the next day's statement, 51 declined) with the re-query pushed beyond the day:
the lost answer can only be made good by BCB's statement. It then asserts the issue's "Done means"
for that day: zero unexplained differences at every bank, the lost answer made good, the settlement
equal to the merchant's payments minus fees, the BCB account receiving exactly the payouts, the
ledger sound and each reserve equal to ``bank:B:reserve``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import time_machine

from tests.e2e.processes import tianpay_up
from tianpay.bootstrap import build_container
from tianpay.config import Settings
from tianpay.domain.errors import NotFound
from tianpay.domain.settlement import SHANGHAI
from tianpay.entrypoints.demo import import_sdk, sdk_client
from tianpay.entrypoints.demo_clearing import totals_from_api
from tianpay.services.ledger import verify_ledger

if TYPE_CHECKING:
    from tianpay_sdk import TianpayClient

pytestmark = pytest.mark.e2e

BANKS_WITH_RESERVES = ("HBB", "JHB", "BCB")
STATEMENT_BANKS = ("HBB", "JHB", "BCB", "TCS")
WANG_FANG = {"name": "王芳", "id_number": "12010119900725002X", "phone": "13800138002"}
WANG_FANG_BCB = "6230990000000000017"
MERCHANT_ACCOUNT = "6230990000000000033"
DEBITS = {"plain": 12_345, "lost": 10_096, "late": 10_093, "declined": 10_051}
WAIT_S = 90.0


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    env = {
        "TIANPAY_DATABASE_URL": "",
        "TIANPAY_CLOCK_FILE": str(tmp_path / "platform-clock.json"),
        # Two days: nothing re-queries a lost answer before the statements are read.
        "TIANPAY_REQUERY_FIRST_AFTER_S": "172800",
        "TIANPAY_REQUERY_MAX_INTERVAL_S": "172800",
        "TIANPAY_WORKER_POLL_INTERVAL_S": "0.2",
        "TIANPAY_WEBHOOK_RETRY_SCALE": "0.01",
        "BANKSIM_NOTIFY_SCALE": "0.01",
        "BANKSIM_HANG_S": "2",
    }
    os.environ.update({"TIANPAY_CLOCK_FILE": env["TIANPAY_CLOCK_FILE"]})
    try:
        with tianpay_up(tmp_path, env=env) as summary:
            yield summary, tmp_path
    finally:
        os.environ.pop("TIANPAY_CLOCK_FILE", None)


def test_a_day_of_bcb_debits_reconciles_settles_and_pays_out_to_the_fen(
    platform: tuple[dict[str, Any], Path],
) -> None:
    summary, data_dir = platform
    import_sdk()
    banks: dict[str, str] = summary["banks"]
    reserves_before = {bank: reserve_balance(banks[bank]) for bank in BANKS_WITH_RESERVES}
    account_before = account_balance(banks["BCB"], MERCHANT_ACCOUNT)
    with sdk_client(summary) as client:
        mandate_id = bcb_mandate(client, banks["BCB"])
        paid = {key: debit(client, mandate_id, key, amount) for key, amount in DEBITS.items()}
        assert status_of(client, paid["plain"]) == "succeeded"
        assert status_of(client, paid["late"]) == "succeeded"
        assert status_of(client, paid["declined"]) == "failed"
        assert status_of(client, paid["lost"]) == "processing"  # the answer was lost; nobody queries

        day = business_date(banks["BCB"])
        with time_machine.travel(next_day(data_dir, banks), tick=True) as traveller:
            first = reconcile_all(data_dir, day)
            assert all_explained(first), first
            assert first["BCB"]["made_good"] >= 1, first["BCB"]
            assert first["BCB"]["parked"] >= 1, first["BCB"]
            assert status_of(client, paid["lost"]) == "succeeded"

            settled = settle(data_dir, day, summary["merchant"]["merchant_id"])
            own = totals_from_api(client, day, made_good_later=(paid["lost"],))
            assert (settled["gross"], settled["refunds"], settled["fees"], settled["net"]) == (
                own.gross_minor, own.refunds_minor, own.fees_minor, own.net_minor)  # fmt: skip
            assert own.gross_minor == DEBITS["plain"] + DEBITS["late"]
            payout = wait_for_payout(client, str(settled["id"]))
            assert payout["amount"] == settled["net"]

            traveller.shift(shift_to_next_day(data_dir, banks))
            second = reconcile_all(data_dir, day + timedelta(days=1))
            assert all_explained(second), second
            assert second["BCB"]["matched_cross_day"] >= 1, second["BCB"]
            # D+1 holds the lost debit made good after midnight: the worker settles and pays it too.
            payouts = wait_until_every_settlement_is_paid(client)

    assert account_balance(banks["BCB"], MERCHANT_ACCOUNT) - account_before == sum(p["amount"] for p in payouts)
    container = build_container(Settings(data_dir=data_dir, database_url=None))
    try:
        report = verify_ledger(container.uow)
        assert report.is_sound, report.problem
        for bank in BANKS_WITH_RESERVES:
            moved_at_bank = reserve_balance(banks[bank]) - reserves_before[bank]
            assert moved_at_bank == ledger_balance(container, f"bank:{bank}:reserve"), bank
    finally:
        container.close()


# ---- the merchant and the payer ------------------------------------------------------------------------------


def bcb_mandate(client: TianpayClient, bcb_url: str) -> str:
    member = client.members.create(external_id="clearing-day-wf", **WANG_FANG)
    applied = client.request("POST", "/v1/mandates", json={
        "member_id": member["id"], "mandate_no": "clearing-day", "card_number": WANG_FANG_BCB,
        **WANG_FANG, "max_amount_per_debit": 20_000, "max_amount_per_month": 100_000,
        "valid_until": (datetime.now(UTC) + timedelta(days=365)).date().isoformat(), "purpose": "membership:monthly",
    })  # fmt: skip
    texts = httpx.get(f"{bcb_url}/_sim/sms", params={"phone": WANG_FANG["phone"]}, timeout=10.0).json()
    code = next(text["code"] for text in texts if text["code"])
    confirmed = client.request("POST", f"/v1/mandates/{applied['id']}/confirm", json={"sms_code": code})
    assert confirmed["status"] == "active", confirmed
    return str(applied["id"])


def debit(client: TianpayClient, mandate_id: str, key: str, amount: int) -> str:
    from tianpay_sdk.errors import TianpayError

    try:
        body = {"out_trade_no": f"clearing-day-{key}", "amount": amount, "subject": key}
        created = client.request("POST", f"/v1/mandates/{mandate_id}/debits", json=body)
    except TianpayError:
        # A declined debit may be answered as an error; the payment is looked up by its order number.
        found = client.payments.list(out_trade_no=f"clearing-day-{key}")["data"]
        return str(found[0]["id"])
    return str(created["id"])


def status_of(client: TianpayClient, payment_id: str) -> str:
    return str(client.payments.retrieve(payment_id)["status"])


# ---- time, the operator's commands and the books ------------------------------------------------------------


def business_date(bank_url: str) -> date:
    return date.fromisoformat(httpx.get(f"{bank_url}/_sim/clock", timeout=10.0).json()["business_date"])


def shift_to_next_day(data_dir: Path, banks: dict[str, str]) -> timedelta:
    """Moves the banks and the platform to 00:30 of the next Shanghai date; returns how far."""
    clock = httpx.get(f"{banks['HBB']}/_sim/clock", timeout=10.0).json()
    now = datetime.fromisoformat(clock["now"]).astimezone(SHANGHAI)
    target = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI) + timedelta(
        minutes=30
    )
    offset_s = float(clock["offset_s"]) + (target - now).total_seconds()
    for url in banks.values():
        if url.startswith("http"):
            httpx.post(f"{url}/_sim/clock", json={"offset_s": offset_s}, timeout=10.0).raise_for_status()
    (data_dir / "platform-clock.json").write_text(json.dumps({"offset_s": offset_s}), encoding="utf-8")
    return target - now


def next_day(data_dir: Path, banks: dict[str, str]) -> datetime:
    return datetime.now(UTC) + shift_to_next_day(data_dir, banks)


def cli(data_dir: Path, *args: str) -> tuple[int, dict[str, Any]]:
    finished = subprocess.run(
        [sys.executable, "-m", "tianpay", args[0], "--data-dir", str(data_dir), *args[1:], "--json"],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "TIANPAY_DATABASE_URL": ""},
    )  # fmt: skip
    lines = [line for line in finished.stdout.splitlines() if line.startswith("{")]
    assert lines, finished.stdout + finished.stderr
    answer: dict[str, Any] = json.loads(lines[-1])
    return finished.returncode, answer


def reconcile_all(data_dir: Path, day: date) -> dict[str, dict[str, Any]]:
    found = {}
    for bank in STATEMENT_BANKS:
        exit_code, answer = cli(data_dir, "reconcile", "--bank", bank, "--date", day.isoformat())
        assert exit_code == 0, answer
        found[bank] = answer
    return found


def all_explained(runs: dict[str, dict[str, Any]]) -> bool:
    return all(run["exceptions"] == 0 and run["suspense_minor"] == 0 for run in runs.values())


def settle(data_dir: Path, day: date, merchant_id: str) -> dict[str, Any]:
    exit_code, answer = cli(data_dir, "settle", "--date", day.isoformat())
    assert exit_code == 0, answer
    mine: list[dict[str, Any]] = [s for s in answer["settlements"] if s["merchant_id"] == merchant_id]
    assert len(mine) == 1, answer
    return mine[0]


def eventually(probe: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def wait_for_payout(client: TianpayClient, settlement_id: str) -> dict[str, Any]:
    def paid() -> dict[str, Any] | None:
        (settlement,) = [s for s in client.settlements.list(limit=100)["data"] if s["id"] == settlement_id]
        if settlement["status"] != "paid":
            return None
        (payout,) = [p for p in client.payouts.list(limit=100)["data"] if p["id"] == settlement["payout_id"]]
        return payout if payout["status"] == "succeeded" else None

    found: dict[str, Any] = eventually(paid, "the settlement's payout")
    return found


def wait_until_every_settlement_is_paid(client: TianpayClient) -> list[dict[str, Any]]:
    def all_paid() -> list[dict[str, Any]] | None:
        settlements = client.settlements.list(limit=100)["data"]
        if len(settlements) < 2 or any(s["status"] != "paid" for s in settlements):
            return None
        payouts = [p for p in client.payouts.list(limit=100)["data"] if p["status"] == "succeeded"]
        return payouts if len(payouts) == len(settlements) else None

    found: list[dict[str, Any]] = eventually(all_paid, "every settlement to be paid")
    return found


def reserve_balance(bank_url: str) -> int:
    state = httpx.get(f"{bank_url}/_sim/state", timeout=10.0).json()
    (reserve,) = [a for a in state["accounts"] if a["kind"] == "reserve"]
    return int(reserve["balance_minor"])


def account_balance(bank_url: str, acc_no: str) -> int:
    state = httpx.get(f"{bank_url}/_sim/state", timeout=10.0).json()
    (account,) = [a for a in state["accounts"] if a["acc_no"] == acc_no]
    return int(account["balance_minor"])


def ledger_balance(container: Any, code: str) -> int:
    with container.uow() as uow:
        try:
            return int(uow.ledger.balance(code).minor)
        except NotFound:
            return 0
