"""``tianpay bench ledger``: journal postings per second for the ledger alone, beside django-hordak.

The workload mirrors a wallet payment without its fee: each entry is Dr ``member:U:wallet`` / Cr
``merchant:M:pending`` for 1 fen, posted through ``SqlLedgerRepository.post`` (idempotency check,
conditional wallet write, postings, the entry row whose trigger checks the balance), several entries
per unit of work, from several threads over W wallets. The peer posts the same transfers through
django-hordak (``hordak_peer.py``, in its own process) on the same PostgreSQL server; without the
``bench`` extra installed the peer half is skipped with a message saying how to install it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from tianpay.adapters.clock import SystemClock
from tianpay.adapters.db import migrate
from tianpay.adapters.db.engine import make_engine
from tianpay.adapters.db.unit_of_work import SqlUnitOfWork
from tianpay.adapters.ids import UlidGenerator
from tianpay.domain import posting_rules
from tianpay.domain.money import Money

from .common import Database, bench_database, scratch_database

MERCHANT_ID = "mch_bench_ledger"
FUNDING_MINOR = 10_000_000_000
PEER_MISSING = "django-hordak is not installed: pip install -e '.[bench]' to run the peer half"

Say = Callable[[str], None]


def peer_available() -> bool:
    return importlib.util.find_spec("hordak") is not None and importlib.util.find_spec("django") is not None


def run_bench(
    *, entries: int, threads: int, batch: int, merchants: int = 1, wallets: int = 64, log: Say | None = None
) -> dict[str, Any]:
    """Both halves; ``merchants`` > 1 spreads the credits over that many ``merchant:M:pending`` rows."""
    say = log or (lambda _text: None)
    with bench_database("ledger") as database:
        say(f"Tianpay ledger: {entries} entries, {threads} threads, {batch} entries per unit of work …")
        ours = _tianpay(database, entries=entries, threads=threads, batch=batch, merchants=merchants,
                       wallets=wallets)
    peer: dict[str, Any] = {"hordak_skipped": PEER_MISSING}
    if peer_available():
        with scratch_database("hordak") as scratch:
            say("django-hordak: the same transfers …")
            peer = _hordak(scratch, entries=entries, threads=threads, batch=batch, merchants=merchants,
                          wallets=wallets)
    result: dict[str, Any] = {
        "bench": "ledger",
        "entries": entries,
        "threads": threads,
        "batch": batch,
        "merchants": merchants,
        "wallets": wallets,
        **ours,
        **peer,
    }
    if peer.get("hordak_postings_per_second"):
        result["ratio_to_hordak"] = round(ours["tianpay_postings_per_second"] / peer["hordak_postings_per_second"], 2)
    return result


def _tianpay(
    database: Database, *, entries: int, threads: int, batch: int, merchants: int, wallets: int
) -> dict[str, Any]:
    engine = make_engine(database.url, pool_size=threads)
    clock, ids = SystemClock(), UlidGenerator()
    migrate.upgrade(engine)
    run = ids.new("b").lower()

    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(engine, clock, ids)

    try:
        with uow() as setup:
            for n in range(wallets):
                setup.ledger.post(posting_rules.wallet_top_up_succeeded(
                    top_up_id=f"{run}-fund-{n}", member_id=f"{run}-m{n}", bank="HBB",
                    amount=Money.cny(FUNDING_MINOR),
                ))
            setup.commit()
        failures: list[BaseException] = []

        def worker(first: int) -> None:
            try:
                numbers = list(range(first, entries, threads))
                for start in range(0, len(numbers), batch):
                    with uow() as unit:
                        for n in numbers[start:start + batch]:
                            unit.ledger.post(posting_rules.wallet_payment_succeeded(
                                payment_id=f"{run}-p{n}", merchant_id=f"{MERCHANT_ID}{n % merchants}",
                                member_id=f"{run}-m{n % wallets}", amount=Money.cny(1), fee=Money.cny(0),
                            ))
                        unit.commit()
            except BaseException as exc:  # reported by the caller, so a failed thread never goes unseen
                failures.append(exc)

        started = time.perf_counter()
        workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise failures[0]
    finally:
        engine.dispose()
    return {
        "database": make_url(database.url).render_as_string(hide_password=True),
        "tianpay_seconds": round(elapsed, 3),
        "tianpay_entries_per_second": round(entries / elapsed, 1),
        "tianpay_postings_per_second": round(2 * entries / elapsed, 1),
    }


def _hordak(
    database: Database, *, entries: int, threads: int, batch: int, merchants: int, wallets: int
) -> dict[str, Any]:
    plan = {"url": database.libpq_url, "entries": entries, "threads": threads, "batch": batch,
            "merchants": merchants, "wallets": wallets}
    completed = subprocess.run(
        [sys.executable, "-m", "tianpay.entrypoints.bench.hordak_peer"],
        input=json.dumps(plan), capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        return {"hordak_skipped": f"the django-hordak run failed: {completed.stderr.strip()[-600:]}"}
    measured: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return {
        "hordak_version": measured["version"],
        "hordak_seconds": round(measured["seconds"], 3),
        "hordak_entries_per_second": round(entries / measured["seconds"], 1),
        "hordak_postings_per_second": round(2 * entries / measured["seconds"], 1),
    }
