"""``tianpay settle`` and ``tianpay merchant settlement`` through the CLI's own entry, on a real database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from tianpay.bootstrap import build_container
from tianpay.config import Settings
from tianpay.entrypoints.cli import app
from tianpay.entrypoints.demo_merchant import ensure_demo_merchant
from tianpay.services.merchants import merchant_balance
from tianpay.services.settlement import settlement_account, settlement_settings

from .conftest import DAY, DAY_START, Shop

runner = CliRunner()


def _invoke(db_url: str, data_dir: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir), "--json"], env={"TIANPAY_DATABASE_URL": db_url})
    lines = result.stdout.strip().splitlines()
    assert lines, result.output
    return result.exit_code, json.loads(lines[-1])


def test_settle_settles_a_past_date_once_and_prints_the_settlement(shop: Shop, db_url: str, tmp_path: Path) -> None:
    shop.at(DAY_START + timedelta(hours=2))
    shop.pay(10_000)
    shop.at(DAY_START + timedelta(hours=3))
    shop.pay(20_000)

    code, first = _invoke(db_url, tmp_path, "settle", "--date", DAY.isoformat())
    again_code, again = _invoke(db_url, tmp_path, "settle", "--date", DAY.isoformat(), "--merchant", shop.merchant_id)

    assert code == 0, first
    settlements = first["settlements"]
    assert isinstance(settlements, list)
    [settled] = [s for s in settlements if s["merchant_id"] == shop.merchant_id]
    assert settled["created"] is True
    assert (settled["gross"], settled["fees"], settled["net"]) == (30_000, 90, 29_910)
    assert again_code == 0
    assert again["settlements"] == [{**settled, "created": False}]
    assert merchant_balance(shop.uow, shop.merchant_id).available.minor == 29_910


def test_settle_refuses_a_date_that_is_not_over(shop: Shop, db_url: str, tmp_path: Path) -> None:
    code, refused = _invoke(db_url, tmp_path, "settle", "--date", "2099-01-01")

    assert code == 2
    assert refused["error"] == "settlement_not_due"


def test_merchant_settlement_shows_changes_and_refuses_settings(shop: Shop, db_url: str, tmp_path: Path) -> None:
    merchant = ["merchant", "settlement", "--merchant", shop.merchant_id]

    code, defaults = _invoke(db_url, tmp_path, *merchant)
    assert code == 0
    assert defaults == {"merchant_id": shop.merchant_id, "cycle_days": 1, "minimum_payout_minor": 0,
                        "auto_payout": False, "account": None}  # fmt: skip

    code, changed = _invoke(
        db_url, tmp_path, *merchant, "--cycle-days", "0", "--minimum-payout-minor", "10000", "--auto-payout",
        "--account-bank", "BCB", "--account-no", "6230990000000000033", "--account-name", "天津津门好物商贸有限公司",
    )  # fmt: skip
    assert code == 0, changed
    assert changed["cycle_days"] == 0
    assert changed["auto_payout"] is True
    account = {"bank": "BCB", "account_no": "6230***********0033", "name": "天津津门好物商贸有限公司"}
    assert changed["account"] == account

    code, refused = _invoke(db_url, tmp_path, *merchant, "--cycle-days", "99")
    assert code == 2
    assert (refused["error"], refused["param"]) == ("settlement_settings_invalid", "cycle_days")
    code, shown = _invoke(db_url, tmp_path, *merchant)
    assert shown == changed


def test_the_demo_merchant_is_seeded_with_its_bcb_settlement_account(db_url: str, tmp_path: Path) -> None:
    container = build_container(Settings(data_dir=tmp_path, database_url=db_url))
    try:
        demo = ensure_demo_merchant(container)
        again = ensure_demo_merchant(container)
        settings = settlement_settings(container.uow, container.clock, demo.merchant_id)
        with container.uow() as uow:
            account = settlement_account(uow, demo.merchant_id, pii=container.member_tools.cipher)
    finally:
        container.close()

    assert again == demo
    assert (settings.cycle_days, settings.auto_payout) == (1, True)
    assert account is not None
    assert (account.bank, account.account_no, account.account_name) == (
        "BCB", "6230990000000000033", "天津津门好物商贸有限公司"
    )
