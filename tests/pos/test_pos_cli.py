"""``tianpay pos``, the terminal emulator, through the CLI against ``tianpay up``'s pos-front and TCS."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import tianpay_up
from tests.pos.terminal import HBB_CARD, JHB_CARD

pytestmark = pytest.mark.e2e


def tianpay(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tianpay", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "TIANPAY_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def pos(data_dir: Path, terminal: Path, address: str, *args: str) -> dict[str, Any]:
    host, port = address.rsplit(":", 1)
    out = tianpay(data_dir, "pos", *args, "--terminal", str(terminal), "--host", host, "--port", port, "--json")
    answer: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return answer


def reserve_at_hbb(up: dict[str, Any]) -> int:
    accounts = httpx.get(up["banks"]["HBB"] + "/_sim/state", timeout=10).json()["accounts"]
    return int(next(a["balance_minor"] for a in accounts if a["acc_no"] == "6217990000000000998"))


def test_the_emulator_signs_on_buys_voids_asks_balance_and_settles(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    terminal = tmp_path / "terminal.json"
    with tianpay_up(data_dir) as up:
        reserve_before = reserve_at_hbb(up)
        created = tianpay(data_dir, "terminal", "create", "--merchant", up["merchant"]["merchant_id"],
                          "--save", str(terminal), "--json")  # fmt: skip
        assert json.loads(created.stdout)["tid"] == json.loads(terminal.read_text())["tid"]
        assert stat.S_IMODE(terminal.stat().st_mode) == 0o600
        front = up["pos_front"]
        assert pos(data_dir, terminal, front, "signon")["response_code"] == "00"
        saved = json.loads(terminal.read_text())
        assert saved["pik"]
        assert saved["mak"]

        host, port = front.rsplit(":", 1)
        printed = tianpay(data_dir, "pos", "purchase", "--terminal", str(terminal), "--host", host, "--port", port,
                          "--amount", "12.34", "--card", HBB_CARD, "--pin", "123456")  # fmt: skip
        receipt = printed.stdout
        assert "商户存根" in receipt
        assert "签名" in receipt
        assert "621799*********0014" in receipt
        assert HBB_CARD not in receipt
        assert "RMB 12.34" in receipt
        assert saved["tid"] in receipt
        assert saved["mid"] in receipt

        bought = pos(data_dir, terminal, front, "purchase", "--amount", "5.00", "--card", HBB_CARD, "--pin", "123456")
        assert bought["response_code"] == "00"
        assert len(bought["auth_code"]) == 6
        voided = pos(data_dir, terminal, front, "void", "--stan", bought["stan"], "--card", HBB_CARD)
        assert voided["response_code"] == "00"
        interbank = pos(data_dir, terminal, front, "purchase", "--amount", "20.00", "--card", JHB_CARD,
                        "--pin", "123456")  # fmt: skip
        assert interbank["response_code"] == "00"
        balance = pos(data_dir, terminal, front, "balance", "--card", HBB_CARD, "--pin", "123456")
        assert balance["response_code"] == "00"
        assert balance["balance"] > 0
        wrong_pin = tianpay(
            data_dir, "pos", "purchase", "--terminal", str(terminal), "--host", host, "--port", port,
            "--amount", "1.00", "--card", HBB_CARD, "--pin", "654321", "--json", check=False,
        )  # fmt: skip
        assert wrong_pin.returncode == 1
        assert json.loads(wrong_pin.stdout)["response_code"] == "55"

        settled = pos(data_dir, terminal, front, "settle")
        assert settled["response_code"] == "00"
        assert settled["balanced"] is True
        assert json.loads(terminal.read_text())["batch_no"] == 2
        # ¥12.34 + ¥5.00 (voided) + ¥20.00 (JHB, interbank): ¥32.34 landed in the HBB reserve.
        assert reserve_at_hbb(up) - reserve_before == 3234
    assert tianpay(data_dir, "ledger", "verify", "--json").stdout.count('"ok": true') == 1
