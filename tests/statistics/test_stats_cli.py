"""`tianpay stats verify` finds aggregates that differ from a scan; `tianpay stats rebuild` fixes them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tianpay.entrypoints.cli import app

from .conftest import Shop, play_two_days

runner = CliRunner()
RANGE = ["--from", "2026-11-27", "--to", "2026-11-28"]


def stats(command: str, data_dir: Path, db_url: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["stats", command, *RANGE, "--data-dir", str(data_dir), "--json"],
                           env={"TIANPAY_DATABASE_URL": db_url})
    payload: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return result.exit_code, payload


def test_verify_names_missing_figures_and_a_rebuild_makes_them_match(shop: Shop, db_url: str, tmp_path: Path) -> None:
    play_two_days(shop)
    code, found = stats("verify", tmp_path, db_url)
    assert (code, found["ok"]) == (1, False)
    assert isinstance(found["differences"], list)
    assert found["differences"]
    code, rebuilt = stats("rebuild", tmp_path, db_url)
    assert (code, rebuilt["ok"]) == (0, True)
    assert isinstance(rebuilt["rows"], int)
    assert rebuilt["rows"] > 0
    assert stats("verify", tmp_path, db_url) == (0, {"ok": True, "differences": []})


def test_every_date_option_takes_yyyy_mm_dd_only_and_refuses_before_touching_the_database(tmp_path: Path) -> None:
    # `date.fromisoformat` would read 20261127 and 2026-W48-5 as days; a typo must not pick a date.
    commands = [
        ["stats", "verify", "--from", "20261127"],
        ["stats", "rebuild", "--to", "2026-W48-5"],
        ["settle", "--date", "2026-11-31"],
        ["reconcile", "--bank", "HBB", "--date", "27/11/2026"],
    ]
    for argv in commands:
        data_dir = tmp_path / argv[0] / argv[1]
        result = runner.invoke(app, [*argv, "--data-dir", str(data_dir)])
        assert result.exit_code == 2, (argv, result.output)
        assert "a date as YYYY-MM-DD" in result.output
        assert not data_dir.exists()
