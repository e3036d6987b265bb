"""``kill -9`` of the worker, of ``serve`` and of ``tianpay settle`` at random points, then convergence.

Payers pay and the merchant refunds while a killer shoots platform processes and brings them back;
after midnight the workers are killed while they reconcile, settle and pay out, and an operator's
``tianpay settle`` is killed mid-run. The day must still close cleanly, with one settlement and one
payout, and no fact announced twice. The ``faults_long`` variant makes at least 100 kills.
"""

from __future__ import annotations

import os
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

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SEED = int(os.environ.get("TIANPAY_FAULTS_SEED", "20261127"))


def _drill(tmp_path: Path, pg_url: str, *, payments: int, min_kills: int, schedule_kills: int) -> None:
    rng = random.Random(SEED)
    with running_cluster(tmp_path, pg_url) as cluster:
        log = DrillLog()
        traffic = in_background(lambda: payer_traffic(cluster, rng, payments, ["serve-1"], log))
        kill_while(cluster, random.Random(SEED + 1), ["serve-1", "worker-1"], traffic, min_kills=min_kills)
        traffic.join()

        def crash_the_daily_schedule(day: date) -> None:
            kill_workers_during_the_daily_schedule(cluster, rng, ["worker-1"], kills=schedule_kills)
            kill_settlement(cluster, rng, day, kills=schedule_kills)

        # A payer cut off by a kill leaves an order open on the bank's pages; only its expiry ends it,
        # and the move past midnight brings that about (judge.close_the_day).
        verdict = close_the_day(cluster, open_until_expiry=True, after_midnight=crash_the_daily_schedule)
        assert cluster.kills >= min_kills + schedule_kills, f"seed {SEED}: only {cluster.kills} kills"
        assert len(log.payments) > 0
        assert_settled_once(cluster)
        assert_no_duplicate_webhook_attempts(cluster)
        assert_every_success_announced_once(cluster, verdict)
        assert [s["status"] for s in verdict.settlements] == ["paid"]
        assert len(cluster.rows("SELECT id FROM payouts")) == 1


def test_kill_9_of_serve_worker_and_settle_at_random_points_still_closes_the_day(tmp_path: Path, pg_url: str) -> None:
    _drill(tmp_path, pg_url, payments=8, min_kills=4, schedule_kills=2)


@pytest.mark.faults_long
@pytest.mark.timeout(1800)
def test_a_hundred_kills_still_close_the_day(tmp_path: Path, pg_url: str) -> None:
    _drill(tmp_path, pg_url, payments=60, min_kills=100, schedule_kills=6)
