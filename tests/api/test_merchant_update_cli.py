"""``tianpay merchant update --webhook-url``: where a merchant's notifications go, changed after sign-up."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tianpay.adapters.clock import SystemClock
from tianpay.adapters.db.engine import make_engine
from tianpay.adapters.db.unit_of_work import SqlUnitOfWork
from tianpay.adapters.ids import UlidGenerator
from tianpay.entrypoints.cli import app

runner = CliRunner()


def _invoke(db_url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"TIANPAY_DATABASE_URL": db_url})
    return result.exit_code, result.stdout


def _webhook_url(db_url: str, merchant_id: str) -> str | None:
    engine = make_engine(db_url)
    try:
        with SqlUnitOfWork(engine, SystemClock(), UlidGenerator()) as uow:
            merchant = uow.merchants.get(merchant_id)
    finally:
        engine.dispose()
    assert merchant is not None
    return merchant.webhook_url


def test_merchant_update_points_the_webhooks_at_the_new_url(tmp_path: Path, db_url: str) -> None:
    code, out = _invoke(db_url, "merchant", "create", "--name", "Shop", "--data-dir", str(tmp_path), "--json")
    assert code == 0, out
    merchant_id = json.loads(out.strip().splitlines()[-1])["merchant_id"]
    code, out = _invoke(
        db_url, "merchant", "update", "--merchant", merchant_id,
        "--webhook-url", "http://127.0.0.1:9/hooks", "--data-dir", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1]) == {
        "merchant_id": merchant_id,
        "webhook_url": "http://127.0.0.1:9/hooks",
    }
    assert _webhook_url(db_url, merchant_id) == "http://127.0.0.1:9/hooks"


def test_merchant_update_refuses_an_unknown_merchant_and_a_url_that_is_not_http(tmp_path: Path, db_url: str) -> None:
    unknown = ["merchant", "update", "--merchant", "mch_NOPE", "--webhook-url", "https://shop.example/hooks"]
    assert _invoke(db_url, *unknown, "--data-dir", str(tmp_path))[0] == 2
    _, out = _invoke(db_url, "merchant", "create", "--name", "Shop", "--data-dir", str(tmp_path), "--json")
    merchant_id = json.loads(out.strip().splitlines()[-1])["merchant_id"]
    not_http = ["merchant", "update", "--merchant", merchant_id, "--webhook-url", "ftp://shop.example/hooks"]
    assert _invoke(db_url, *not_http, "--data-dir", str(tmp_path))[0] == 2
    assert _webhook_url(db_url, merchant_id) is None
