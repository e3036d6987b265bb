"""``tianpay merchant user create`` makes a portal login that signs in through the service."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tianpay.entrypoints.cli import app, open_container
from tianpay.entrypoints.merchant_portal.routes import portal_tools
from tianpay.services.merchant_users import log_in


def test_the_cli_creates_a_portal_user_with_a_generated_password_shown_once(tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["merchant", "create", "--name", "CLI shop", "--data-dir", str(tmp_path), "--json"])
    merchant_id = json.loads(created.stdout)["merchant_id"]

    result = runner.invoke(app, ["merchant", "user", "create", "--merchant", merchant_id, "--username", "cli.ops",
                                 "--data-dir", str(tmp_path), "--json"])

    assert result.exit_code == 0, result.output
    user = json.loads(result.stdout)
    assert (user["merchant_id"], user["username"]) == (merchant_id, "cli.ops")
    assert len(user["password"]) >= 12
    container = open_container(tmp_path)
    try:
        assert log_in(container.uow, portal_tools(container), "cli.ops", user["password"]).merchant_id == merchant_id
    finally:
        container.close()


def test_the_cli_refuses_a_short_password_and_an_unknown_merchant(tmp_path: Path) -> None:
    runner = CliRunner()
    short = runner.invoke(app, ["merchant", "user", "create", "--merchant", "mch_X", "--username", "abc",
                                "--password", "short", "--data-dir", str(tmp_path)])
    unknown = runner.invoke(app, ["merchant", "user", "create", "--merchant", "mch_X", "--username", "abc",
                                  "--password", "long enough password", "--data-dir", str(tmp_path)])

    assert short.exit_code == 2
    assert unknown.exit_code == 2
