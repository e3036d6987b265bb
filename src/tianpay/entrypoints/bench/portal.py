"""``tianpay bench portal``: the merchant dashboard and a filtered search over N payments (issue 7).

N payments (with their attempts) for one merchant, and half as many again spread over four other
merchants, are COPYed into PostgreSQL across the last 30 Shanghai days; the daily aggregates are then
built by the statistics service's own rebuild (``services.statistics.rebuild_statistics``), as the
worker's job would have kept them. Timed, each repeated: ``services.merchant_portal.dashboard`` and
``search_payments`` narrowed by status, date range and amount range (what ``GET /v1/payments`` and the
portal's search page call). Target < 200 ms each, reported.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from tianpay.adapters.db import migrate
from tianpay.adapters.db.engine import make_engine
from tianpay.adapters.db.tables import merchants
from tianpay.bootstrap import build_container
from tianpay.config import Settings
from tianpay.domain.payment import PaymentStatus
from tianpay.domain.statistics import business_date_of
from tianpay.ports.merchant_portal import PortalPaymentFilter
from tianpay.services import merchant_portal, statistics

from .common import Database, bench_database, percentile, quiet_logging, triggers_off_for_bulk_load

OTHER_MERCHANTS = 4
DAYS = 30
COPY_BLOCK = 50_000
TARGET_MS = 200.0
# (method, bank of the attempt) in rotation; the payment's own bank is set for online banking only.
ROUTES = (("online_banking", "HBB"), ("online_banking", "JHB"), ("quick_pay", "HBB"), ("wallet", "WALLET"),
          ("cashier", "JHB"), ("quick_pay", "BCB"))
# Out of 100 payments: 85 succeed, 8 fail, 5 are closed unpaid, 2 are still open.
STATUS_CUTS = ((85, "succeeded"), (93, "failed"), (98, "closed"), (100, "created"))

Say = Callable[[str], None]


def run_bench(*, payments: int, repeats: int, log: Say | None = None) -> dict[str, Any]:
    say = log or (lambda _text: None)
    quiet_logging()
    now = datetime.now(UTC).replace(microsecond=0)
    workdir = Path(tempfile.mkdtemp(prefix="tianpay-bench-portal-"))
    try:
        with bench_database("portal") as database:
            engine = make_engine(database.url, pool_size=1)
            migrate.upgrade(engine)
            tag = secrets.token_hex(3)
            measured = f"mch_portal_{tag}_0"
            others = [f"mch_portal_{tag}_{k}" for k in range(1, OTHER_MERCHANTS + 1)]
            with engine.begin() as connection:
                for merchant_id in [measured, *others]:
                    connection.execute(insert(merchants).values(
                        id=merchant_id, name="bench", status="active", webhook_url=None,
                        webhook_secret="whsec_bench",  # noqa: S106 (a bench merchant that receives no webhooks)
                        created_at=now - timedelta(days=DAYS + 1),
                    ))
            engine.dispose()
            say(f"seeding {payments:,} payments for {measured} and {payments // 2:,} for {OTHER_MERCHANTS} others …")
            started = time.perf_counter()
            _seed(database, measured, payments, now, tag + "a")
            for number, merchant_id in enumerate(others):
                _seed(database, merchant_id, max(1, payments // (2 * OTHER_MERCHANTS)), now, f"{tag}{number}")
            seed_seconds = time.perf_counter() - started
            container = build_container(Settings(data_dir=workdir, database_url=database.url))
            try:
                say("building the daily aggregates (services.statistics.rebuild_statistics) …")
                started = time.perf_counter()
                today = business_date_of(now)
                statistics.rebuild_statistics(container.uow, today - timedelta(days=DAYS), today, today)
                rebuild_seconds = time.perf_counter() - started
                say(f"timing the dashboard and a filtered search, {repeats} times each …")
                dashboard_ms = _timed(repeats, lambda: merchant_portal.dashboard(container.read_uow, measured, today))
                filters = PortalPaymentFilter(
                    status=PaymentStatus.SUCCEEDED, amount_min_minor=1_000, amount_max_minor=50_000,
                    created_from=now - timedelta(days=14), created_before=now - timedelta(days=7),
                )
                page = merchant_portal.search_payments(container.read_uow, measured, filters)
                search_ms = _timed(
                    repeats, lambda: merchant_portal.search_payments(container.read_uow, measured, filters)
                )
                found = merchant_portal.dashboard(container.read_uow, measured, today).last_30_days
            finally:
                container.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "bench": "portal",
        "database": make_url(database.url).render_as_string(hide_password=True),
        "payments": payments,
        "other_merchants_payments": OTHER_MERCHANTS * max(1, payments // (2 * OTHER_MERCHANTS)),
        "repeats": repeats,
        "dashboard_p50_ms": round(percentile(dashboard_ms, 0.5), 2),
        "dashboard_p99_ms": round(percentile(dashboard_ms, 0.99), 2),
        "search_p50_ms": round(percentile(search_ms, 0.5), 2),
        "search_p99_ms": round(percentile(search_ms, 0.99), 2),
        "search_page_rows": len(page.payments),
        "dashboard_30_day_payments": found.payment_count,
        "target_ms": TARGET_MS,
        "seed_seconds": round(seed_seconds, 3),
        "rebuild_seconds": round(rebuild_seconds, 3),
    }


def _timed(repeats: int, call: Callable[[], object]) -> list[float]:
    call()  # The first call warms the connection pool and the statement cache; it is not counted.
    times: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _status(n: int) -> str:
    share = n * 37 % 100
    return next(status for cut, status in STATUS_CUTS if share < cut)


def _seed(database: Database, merchant_id: str, count: int, now: datetime, tag: str) -> None:
    """COPYs ``count`` payments spread evenly over the last 30 days, and an attempt for each paid or
    failed one, in the shapes the payment service writes them."""
    span = timedelta(days=DAYS) - timedelta(minutes=5)
    first = now - timedelta(days=DAYS)
    expiry = timedelta(minutes=30)
    with psycopg.connect(database.libpq_url) as connection, connection.cursor() as cursor:
        # The bench writes each attempt's payment itself, so the per-row foreign-key checks add nothing.
        triggers_off_for_bulk_load(connection)
        with cursor.copy(
            "COPY payments (id, merchant_id, out_trade_no, amount_minor, currency, method, bank, subject, metadata, "
            "expires_at, status, refunded_minor, fee_minor, succeeded_attempt_id, created_at, updated_at) FROM STDIN"
        ) as copy:
            for start in range(0, count, COPY_BLOCK):
                lines = []
                for n in range(start, min(start + COPY_BLOCK, count)):
                    method, bank = ROUTES[n % len(ROUTES)]
                    status = _status(n)
                    amount = 100 + n * 7919 % 99_900
                    created = (first + span * n / count).isoformat()
                    expires = (first + span * n / count + expiry).isoformat()
                    paid = status == "succeeded"
                    fee = (amount * 60 + 5_000) // 10_000 if paid else 0
                    payment_bank = bank if method == "online_banking" else "\\N"
                    attempt = f"att_{tag}{n:010d}" if paid else "\\N"
                    lines.append(
                        f"pay_{tag}{n:010d}\t{merchant_id}\to{n}\t{amount}\tCNY\t{method}\t{payment_bank}\tbench\t{{}}\t"
                        f"{expires}\t{status}\t0\t{fee}\t{attempt}\t{created}\t{created}\n"
                    )
                copy.write("".join(lines))
        with cursor.copy(
            "COPY payment_attempts (id, payment_id, channel, bank, status, amount_minor, currency, bank_reference, "
            "created_at, updated_at, query_count) FROM STDIN"
        ) as copy:
            for start in range(0, count, COPY_BLOCK):
                lines = []
                for n in range(start, min(start + COPY_BLOCK, count)):
                    status = _status(n)
                    if status not in ("succeeded", "failed"):
                        continue
                    method, bank = ROUTES[n % len(ROUTES)]
                    amount = 100 + n * 7919 % 99_900
                    created = (first + span * n / count).isoformat()
                    channel = "wallet" if bank == "WALLET" else f"{bank.lower()}.{method}"
                    lines.append(
                        f"att_{tag}{n:010d}\tpay_{tag}{n:010d}\t{channel}\t{bank}\t{status}\t{amount}\tCNY\t"
                        f"r{tag}{n}\t{created}\t{created}\t0\n"
                    )
                copy.write("".join(lines))
        connection.commit()
        connection.execute("ANALYZE payments")
        connection.execute("ANALYZE payment_attempts")
        connection.commit()
