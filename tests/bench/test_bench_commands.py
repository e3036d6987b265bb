"""Smoke tests of ``tianpay bench …``: each bench runs with tiny parameters as a real process and
prints one JSON line with its figures. No figure is judged (DESIGN.md §13: benches report, they are
never timed tests); what is checked is that the bench ran through and measured something real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import _pg_reachable

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture(scope="module", autouse=True)
def _postgresql() -> None:
    if not _pg_reachable():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable: CI must run the benches' smoke tests")
        pytest.skip("PostgreSQL is not reachable")


def bench(*arguments: str) -> dict[str, Any]:
    """Runs ``tianpay bench … --json`` on a scratch database of the local server; its one JSON line."""
    environment = {name: value for name, value in os.environ.items() if name != "TIANPAY_DATABASE_URL"}
    completed = subprocess.run(
        [sys.executable, "-m", "tianpay", "bench", *arguments, "--json"],
        capture_output=True, text=True, env=environment, timeout=600, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, completed.stdout
    result: dict[str, Any] = json.loads(lines[0])
    return result


def test_the_payments_bench_pays_from_wallets_through_serve_and_runs_pgbench() -> None:
    if shutil.which("pgbench") is None:
        pytest.skip("pgbench is not installed")
    result = bench("payments", "--seconds", "2", "--clients", "2", "--serve-workers", "1", "--cheap-passwords",
                   "--merchants", "2", "--pgbench-scale", "1")
    assert result["bench"] == "payments"
    assert result["merchants"] == 2
    assert result["payments"] > 0
    assert result["errors"] == 0, result["first_error"]
    assert result["pgbench_tps"] > 0
    for key in ("payments_per_second", "create_p50_ms", "create_p99_ms", "confirm_p50_ms", "ratio"):
        assert result[key] > 0


def test_the_ledger_bench_posts_entries_and_names_the_peer_or_why_it_was_skipped() -> None:
    result = bench("ledger", "--entries", "200", "--threads", "2", "--batch", "10")
    assert result["bench"] == "ledger"
    assert result["tianpay_postings_per_second"] > 0
    assert result.get("hordak_postings_per_second", 0) > 0 or "hordak_skipped" in result


def test_the_verify_bench_seeds_a_sound_ledger_and_times_verify() -> None:
    result = bench("verify", "--postings", "2000")
    assert result["ok"] is True
    assert result["postings"] == 2000
    assert result["entries"] == 1000
    assert result["seconds"] > 0


def test_the_portal_bench_times_the_dashboard_and_a_filtered_search() -> None:
    result = bench("portal", "--payments", "3000", "--repeats", "3")
    assert result["bench"] == "portal"
    assert result["search_page_rows"] > 0
    assert result["dashboard_30_day_payments"] > 0
    for key in ("dashboard_p50_ms", "dashboard_p99_ms", "search_p50_ms", "search_p99_ms"):
        assert result[key] > 0
