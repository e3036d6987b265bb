"""``tianpay demo`` runs the gateway, account-mode, direct-debit and POS tours as real processes, then the next
day (reconciliation, settlement, payout); every book agrees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tianpay.entrypoints.demo import REFUND, SCENARIOS

pytestmark = pytest.mark.e2e

ACCOUNT_ROWS = (
    "bind 621799…0014",
    "bind 622799…0013",
    "top-up, online bank",
    "pay from the wallet",
    "quick pay, HBB card",
    "failover HBB → JHB",
    "refund to the wallet",
)

DIRECT_DEBIT_ROWS = (
    "mandate 622799…0013",
    "debit 1",
    "debit 2",
    "debit over the month's limit",
    "revoke the mandate",
    "debit after revocation",
)
POS_ROWS = ("sign-on", "purchase", "void", "second purchase", "purchase, no answer", "settle batch 000001")

STATEMENT_BANKS = ("HBB", "JHB", "BCB", "TCS")

# The demo takes about two minutes; it gives up waiting after --timeout-s, well before the test does.
DEMO_TIMEOUT_S = 420


def test_the_demo_plays_every_scenario_and_every_book_agrees(tmp_path: Path) -> None:
    # TMPDIR puts the demo's fresh data directory under this test's own, so nothing outlives it.
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "160"}
    finished = subprocess.run(
        [sys.executable, "-m", "tianpay", "demo", "--timeout-s", "120"],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    output = finished.stdout
    assert finished.returncode == 0, output + finished.stderr
    lines = output.splitlines()
    for scenario in (*SCENARIOS, REFUND):
        (row,) = [line for line in lines if f"│ {scenario.title} " in line]
        assert "✓" in row, row
        assert "✗" not in row, row
    # Account mode: the bindings, the top-up, wallet pay, quick pay, the failover and the refund.
    for title in ACCOUNT_ROWS:
        (row,) = [line for line in lines if f"│ {title} " in line]
        assert "✓" in row, row
        assert "✗" not in row, row
    (failover,) = [line for line in lines if "│ failover HBB → JHB " in line]
    assert "HBB 91 → JHB" in failover, failover
    assert "JHB ¥66.66 in" in failover, failover
    # Direct debit and POS acquiring: every row agrees with JHB's books and TCS's record.
    for title in (*DIRECT_DEBIT_ROWS, *POS_ROWS):
        (row,) = [line for line in lines if f"│ {title} " in line]
        assert "✓" in row, row
        assert "✗" not in row, row
    for title, amount in (("debit 1", "¥88.00"), ("debit 2", "¥99.00")):
        (row,) = [line for line in lines if f"│ {title} " in line]
        assert f"JHB {amount} in" in row, row
        assert "payment.succeeded" in row, row
    for title, code in (("debit over the month's limit", "mandate_limit_exceeded"),
                        ("debit after revocation", "mandate_not_active")):  # fmt: skip
        (row,) = [line for line in lines if f"│ {title} " in line]
        assert f"refused {code}" in row, row
        transfers = row.split("JHB transfers ")[1].split(" │")[0]
        before, after = (count.strip() for count in transfers.split(" → "))
        assert before == after, row  # refused before the bank: JHB's books did not move
    (revoked,) = [line for line in lines if "│ revoke the mandate " in line]
    assert "mandate.revoked" in revoked, revoked
    (dropped,) = [line for line in lines if "│ purchase, no answer " in line]
    assert "TCS reversed · net ¥0.00" in dropped, dropped  # reversed at the issuer: the card not charged
    assert " 98 " in dropped, dropped
    (voided,) = [line for line in lines if "│ purchase " in line]
    assert "621799…0014 ¥58.00 STAN" in voided, voided
    assert "TCS voided" in voided, voided
    (settled,) = [line for line in lines if "│ settle batch 000001 " in line]
    assert "2 sales ¥124.00 · 1 void ¥58.00 00" in settled, settled
    assert "TCS balanced" in settled, settled
    (refunded,) = [line for line in lines if "│ refund to the wallet " in line]
    assert refunded.count("¥500.00") == 2, refunded  # expected and seen wallet balance: the top-up, whole again
    # The next day: every bank's statements of D and D+1 reconciled with nothing unexplained.
    reconciled = [line for line in lines if line.startswith("│ ") and line.split("│")[1].strip() in STATEMENT_BANKS
                  and line.split("│")[2].strip()[:2] == "20"]  # fmt: skip
    assert len(reconciled) == 2 * len(STATEMENT_BANKS), reconciled
    for row in reconciled:
        assert "✓" in row, row
    assert "98 payment after JHB's statement: processing → succeeded" in output
    # The settlement equals the merchant's own sums from the API, and BCB received exactly its net.
    (settlement,) = [line for line in lines if line.startswith("│ settlement stl_")]
    assert "✓" in settlement, settlement
    (from_api,) = [line for line in lines if line.startswith("│ from GET /v1/events ")]
    assert settlement.split("│")[3:7] == from_api.split("│")[3:7], (settlement, from_api)
    (payout,) = [line for line in lines if line.startswith("│ pyo_")]
    assert "succeeded" in payout, payout
    assert "settlement.paid, payout.succeeded" in payout, payout
    assert "✓" in payout, payout
    # No whole card, account or ID number ever reaches the output.
    for secret in ("6217990000000000014", "6227990000000000013", "110105198503120012", "13800138001",
                   "6230990000000000033"):  # fmt: skip
        assert secret not in output
    assert "tianpay ledger verify: sound" in output
    for bank in ("HBB", "JHB", "BCB"):
        (books,) = [line for line in lines if line.startswith(f"│ {bank} ") and line not in reconciled]
        assert "✓" in books, books
    assert "every outcome is what the bank did" in output
    # A successful run leaves no data directory behind.
    assert list(tmp_path.glob("tianpay-demo-*")) == []


def test_the_demo_covers_every_fault_that_applies_to_online_banking() -> None:
    # 61 and 93 add nothing new here (a decline like 51; a statement date), and 91 is refused before
    # the payer sees the bank, which the gateway tests cover.
    assert {scenario.amount_minor % 100 for scenario in SCENARIOS} >= {51, 94, 96, 97, 98, 99}
    (twice,) = [scenario for scenario in SCENARIOS if scenario.amount_minor % 100 == 99]
    assert twice.expected.notices_at_least == 2
    assert twice.expected.webhooks == ("payment.succeeded",)
