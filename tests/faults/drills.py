"""Traffic with ``kill -9``: payers and refunds keep going while platform processes are killed and restarted.

Shared by the kill scenarios and the multi-process proof. Every choice comes from one seeded
``random.Random``, printed on failure, so a run can be replayed; the amounts avoid the banks' magic
endings, because here the faults are the kills.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date

from tests.faults.cluster import Cluster
from tests.faults.traffic import pay_at_cashier, refund_when_paid, try_call

# Endings the banks treat as plain amounts (docs/banks/simulators.md lists the magic ones).
_PLAIN_ENDINGS = tuple(range(10, 50))


@dataclass
class DrillLog:
    payments: list[str] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)
    errors: int = 0


def plain_amount(rng: random.Random) -> int:
    return rng.randint(20, 300) * 100 + rng.choice(_PLAIN_ENDINGS)


def payer_traffic(cluster: Cluster, rng: random.Random, count: int, serves: list[str], log: DrillLog) -> None:
    """``count`` cashier payments spread over the serves and both banks, a third of them partly refunded."""
    for number in range(count):
        serve = serves[number % len(serves)]
        bank = ("HBB", "JHB")[number % 2]
        payment = try_call(lambda s=serve, b=bank: pay_at_cashier(cluster, plain_amount(rng), b, serve=s))
        if payment is None:
            log.errors += 1
            continue
        log.payments.append(payment)
        if rng.random() < 0.35:
            amount = 1_000 + rng.choice(_PLAIN_ENDINGS)
            refund = try_call(lambda p=payment, s=serve, a=amount: refund_when_paid(cluster, p, a, serve=s))
            if refund is not None:
                log.refunds.append(refund)


def kill_while(cluster: Cluster, rng: random.Random, targets: list[str], busy: threading.Thread,
               *, min_kills: int, pause_s: tuple[float, float] = (0.5, 3.0)) -> None:
    """Kills a random target at random moments while ``busy`` runs (and until ``min_kills`` were made),
    restarting each at once: a crash followed by the supervisor bringing the process back."""
    made = 0
    while busy.is_alive() or made < min_kills:
        time.sleep(rng.uniform(*pause_s))
        target = rng.choice(targets)
        cluster.kill(target)
        made += 1
        cluster.restart(target)


def kill_settlement(cluster: Cluster, rng: random.Random, day: date, *, kills: int) -> None:
    """Runs ``tianpay settle`` for ``day`` and ``kill -9``s it at random moments, ``kills`` times, while
    the workers may be settling the same date; the last run is left to finish."""
    argv = [sys.executable, "-m", "tianpay", "settle", "--date", day.isoformat(), "--data-dir", str(cluster.data_dir),
            "--json"]  # fmt: skip
    for _ in range(kills):
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=cluster.subprocess_env(), start_new_session=True)  # fmt: skip
        time.sleep(rng.uniform(0.2, 2.5))
        if process.poll() is None:
            process.kill()
            cluster.kills += 1
        process.wait()


def kill_workers_during_the_daily_schedule(cluster: Cluster, rng: random.Random, workers: list[str], *,
                                           kills: int) -> None:
    """Kills workers while they reconcile, settle and pay out the day that just ended."""
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 2.0))
        target = rng.choice(workers)
        cluster.kill(target)
        cluster.restart(target)


def assert_settled_once(cluster: Cluster) -> None:
    """One settlement per merchant and date, each settled by exactly one ledger entry, each entry once."""
    rows = cluster.rows("SELECT merchant_id, business_date, entry_id FROM settlements")
    keys = [(row["merchant_id"], row["business_date"]) for row in rows]
    assert len(keys) == len(set(keys)), keys
    entries = [row["entry_id"] for row in rows if row["entry_id"] is not None]
    assert len(entries) == len(set(entries))
    settled = cluster.rows("SELECT source_id FROM journal_entries WHERE id IN (SELECT entry_id FROM settlements)")
    assert len(settled) == len(entries)
    # Every entry's id comes from (event, source): a replay after a crash must not book anything twice.
    twice = cluster.rows("SELECT event, source_id FROM journal_entries GROUP BY event, source_id HAVING count(*) > 1")
    assert twice == []
    lines = cluster.rows("SELECT entry_id, count(*) AS n FROM settlement_lines GROUP BY entry_id HAVING count(*) > 1")
    assert lines == []


def assert_no_duplicate_webhook_attempts(cluster: Cluster) -> None:
    duplicates = cluster.rows(
        "SELECT event_id, attempt_no, count(*) AS n FROM webhook_attempts GROUP BY event_id, attempt_no"
        " HAVING count(*) > 1"
    )
    assert duplicates == []
