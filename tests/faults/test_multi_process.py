"""Two ``serve`` and two ``worker`` processes on one PostgreSQL (docs/deploy.md): the short fault variant.

Payers and refunds go through both servers, notifications are duplicated and dropped by the banks,
processes are killed, and both workers race for the same outbox, re-queries and daily schedule. No
webhook attempt may be recorded twice for one (event, attempt number), no merchant and date may be
settled twice, and the day closes cleanly.
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from tests.faults.cluster import in_background, running_cluster
from tests.faults.drills import (
    DrillLog,
    assert_no_duplicate_webhook_attempts,
    assert_settled_once,
    kill_settlement,
    kill_while,
    kill_workers_during_the_daily_schedule,
    payer_traffic,
)
from tests.faults.judge import assert_every_success_announced_once, close_the_day
from tests.faults.traffic import pay_at_cashier
from tianpay.entrypoints.demo_payer import Leaves

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SEED = 8_2026


def test_two_servers_and_two_workers_on_one_database_pass_the_short_fault_variant(
    tmp_path: Path, pg_url: str
) -> None:
    rng = random.Random(SEED)
    serves, workers = ["serve-1", "serve-2"], ["worker-1", "worker-2"]
    with running_cluster(tmp_path, pg_url, serves=2, workers=2) as cluster:
        for bank in ("HBB", "JHB"):
            cluster.bank_faults(bank, notify_duplicate_rate=1.0)
        # Lost (98) and doubled (99) notifications, through either server.
        special = [pay_at_cashier(cluster, amount, bank, serve=serve, leaves=Leaves.CLOSES_TAB)
                   for amount, bank, serve in ((10_098, "HBB", "serve-1"), (20_099, "JHB", "serve-2"))]  # fmt: skip
        log = DrillLog()
        traffic = in_background(lambda: payer_traffic(cluster, rng, 8, serves, log))
        kill_while(cluster, random.Random(SEED + 1), [*serves, *workers], traffic, min_kills=4)
        traffic.join()
        for bank in ("HBB", "JHB"):
            cluster.bank_faults(bank, reset=True)

        def crash_the_daily_schedule(day: date) -> None:
            kill_workers_during_the_daily_schedule(cluster, rng, workers, kills=2)
            kill_settlement(cluster, rng, day, kills=1)

        # Payers cut off by kills leave orders open at the banks until they expire (test_kill9.py).
        verdict = close_the_day(cluster, open_until_expiry=True, after_midnight=crash_the_daily_schedule)
        statuses = cluster.statuses("payments")
        assert [statuses[p] for p in special] == ["succeeded", "succeeded"]
        assert_no_duplicate_webhook_attempts(cluster)
        assert_settled_once(cluster)
        assert [s["status"] for s in verdict.settlements] == ["paid"]
        assert len(cluster.rows("SELECT id FROM payouts")) == 1
        assert_every_success_announced_once(cluster, verdict)
        assert len(log.payments) >= 4
