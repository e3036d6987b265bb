"""``tianpay reconcile`` refuses what it cannot reconcile, with one JSON line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tianpay.entrypoints.cli import app
from tianpay.ports.unit_of_work import UnitOfWorkFactory


def test_reconciling_a_bank_that_sends_no_statement_is_refused_without_creating_a_run(
    db_url: str, tmp_path: Path, uow_factory: UnitOfWorkFactory
) -> None:
    result = CliRunner().invoke(
        app, ["reconcile", "--bank", "XYZ", "--date", "2026-11-26", "--data-dir", str(tmp_path), "--json"],
        env={"TIANPAY_DATABASE_URL": db_url},
    )

    assert result.exit_code == 2, result.output
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert (answer["ok"], answer["error"]) == (False, "resource_missing")
    with uow_factory() as uow:
        assert uow.reconciliation.runs() == []
    listed = CliRunner().invoke(
        app, ["reconcile", "--bank", "XYZ", "--date", "not-a-date", "--data-dir", str(tmp_path), "--json"],
        env={"TIANPAY_DATABASE_URL": db_url},
    )
    assert listed.exit_code == 2
