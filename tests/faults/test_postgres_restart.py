"""PostgreSQL restarted mid-run (a private instance; the shared server is never touched).

Payers keep paying while the database drops every connection twice; ``serve`` and the worker must
ride it out (answers fail meanwhile, nothing is half-booked) and the day closes cleanly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import in_background, running_cluster
from tests.faults.drills import DrillLog, assert_no_duplicate_webhook_attempts, assert_settled_once, payer_traffic
from tests.faults.judge import assert_every_success_announced_once, close_the_day
from tests.faults.private_pg import PrivatePostgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def test_a_postgresql_restart_mid_run_loses_nothing_and_books_nothing_twice(
    tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    rng = random.Random(5432)
    url = private_pg.create_database("tianpay")
    with running_cluster(tmp_path, url) as cluster:
        log = DrillLog()
        traffic = in_background(lambda: payer_traffic(cluster, rng, 8, ["serve-1"], log))
        for _ in range(2):
            time.sleep(rng.uniform(2.0, 5.0))
            private_pg.restart()
        traffic.join()
        assert all(cluster.children[name].poll() is None for name in ("serve-1", "worker-1")), "a process died"
        # Payers cut off by the restart leave orders open at the banks until they expire.
        verdict = close_the_day(cluster, open_until_expiry=True)
        assert len(log.payments) >= 4
        assert_settled_once(cluster)
        assert_no_duplicate_webhook_attempts(cluster)
        assert_every_success_announced_once(cluster, verdict)
