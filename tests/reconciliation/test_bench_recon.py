"""``tianpay bench recon`` on a small statement: it reconciles every line and reports time and memory."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tianpay.entrypoints.cli import app


def test_the_reconciliation_bench_matches_every_seeded_line_and_reports_seconds_and_peak_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TIANPAY_DATABASE_URL", raising=False)

    result = CliRunner().invoke(app, ["bench", "recon", "--lines", "2000", "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["lines"], report["matched"], report["exceptions"]) == (2000, 2000, 0)
    assert report["status"] == "finished"
    assert report["database"] == "sqlite"
    assert report["seconds"] > 0
    assert report["import_seconds"] > 0
    # The child's own peak, not the seeding parent's: a Python process with the platform loaded.
    assert 20 < report["peak_rss_mb"] < 256
