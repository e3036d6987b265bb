"""Lost, duplicated, late and out-of-order bank notifications, against real processes.

Each payer closes the tab at the bank, so the platform learns the outcome only from the bank's
notification, its own re-query, or in the end the statement (补单). The day then closes cleanly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.cluster import running_cluster
from tests.faults.judge import assert_every_success_announced_once, close_the_day
from tests.faults.traffic import pay_at_cashier
from tianpay.entrypoints.demo_payer import Leaves

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_lost_duplicated_late_and_reordered_notifications_end_in_a_clean_day(tmp_path: Path, pg_url: str) -> None:
    with running_cluster(tmp_path, pg_url) as cluster:
        paid: list[str] = []
        # Magic 98: processed, never notified; magic 99: notified twice.
        for amount, bank in ((10_098, "HBB"), (20_098, "JHB"), (10_099, "HBB"), (20_099, "JHB")):
            paid.append(pay_at_cashier(cluster, amount, bank, leaves=Leaves.CLOSES_TAB))
        # The banks' switches: every notification dropped, then every one sent twice and late.
        for bank in ("HBB", "JHB"):
            cluster.bank_faults(bank, notify_drop_rate=1.0)
        paid += [pay_at_cashier(cluster, 30_000 + n, bank, leaves=Leaves.CLOSES_TAB)
                 for n, bank in ((1, "HBB"), (2, "JHB"))]  # fmt: skip
        for bank in ("HBB", "JHB"):
            cluster.bank_faults(bank, reset=True, notify_duplicate_rate=1.0, latency_ms=300)
        # Out of order: the payer returns (a front notification) while the bank's own arrives twice, late.
        paid += [pay_at_cashier(cluster, 40_000 + n, bank) for n, bank in ((3, "HBB"), (4, "JHB"))]
        for bank in ("HBB", "JHB"):
            cluster.bank_faults(bank, reset=True)
        verdict = close_the_day(cluster)
        statuses = cluster.statuses("payments")
        assert all(statuses[p] == "succeeded" for p in paid), {p: statuses[p] for p in paid}
        assert_every_success_announced_once(cluster, verdict)
        assert [s["status"] for s in verdict.settlements] == ["paid"]
