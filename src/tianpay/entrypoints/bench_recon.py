"""``tianpay bench recon``: how long reconciling an N-line statement takes, and in how much memory.

The parent seeds a fresh database (a temporary SQLite file, or ``TIANPAY_DATABASE_URL``) with N
succeeded payments at HBB in bulk, bypassing the services, and writes an N-line statement in HBB's
fixed-width dialect with HBB's own line renderer. A child process then imports and reconciles it
through the real service; the parent reads the child's peak RSS from ``wait4``, so the seeding's
memory never counts (DESIGN.md §13).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.engine import make_url

from tianpay.adapters.clock import SystemClock
from tianpay.adapters.db import migrate
from tianpay.adapters.db.engine import make_engine
from tianpay.adapters.db.tables import merchants
from tianpay.adapters.db.unit_of_work import SqlUnitOfWork
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.hbb.mapping import order_id_for
from tianpay.channels.hbb.statement_file import parse_lines, render_line, render_trailer
from tianpay.config import normalise_database_url
from tianpay.domain.reconciliation import business_day_bounds
from tianpay.ports.statements import DownloadedStatement, StatementLine
from tianpay.services.reconciliation import ReconciliationPolicy, import_statement, reconcile

BANK = "HBB"
SEED_BATCH = 10_000
# HBB charges collections 10 bps, at least 1 fen (docs/clearing.md): ¥100.00 pays ¥0.10.
AMOUNT_MINOR = 10_000
FEE_MINOR = 10
MASKED_CARD = "621799******0014"
_PAYMENT_SQL = (
    "INSERT INTO payments (id, merchant_id, out_trade_no, amount_minor, currency, method, bank, subject, metadata, "
    "expires_at, status, refunded_minor, fee_minor, succeeded_attempt_id, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ATTEMPT_SQL = (
    "INSERT INTO payment_attempts (id, payment_id, channel, bank, status, amount_minor, currency, bank_reference, "
    "created_at, updated_at, query_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class FileStatementChannel:
    """HBB's statement reader over a file already on disk: the download is not what is measured."""

    code = BANK

    def __init__(self, path: Path) -> None:
        self._path = path

    def download_statement(self, statement_date: date, into: Path) -> DownloadedStatement:
        return DownloadedStatement(BANK, statement_date, self._path, self._path.name)

    def read_statement(self, path: Path, statement_date: date) -> Iterator[StatementLine]:
        with path.open(encoding="ascii") as lines:
            yield from parse_lines(lines, statement_date)


class _Directory:
    def __init__(self, channel: FileStatementChannel) -> None:
        self._channel = channel

    def statements(self, bank: str) -> FileStatementChannel:
        return self._channel

    def statement_banks(self) -> list[str]:
        return [BANK]


def run_bench(lines: int, *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Seeds, reconciles in a child process, and returns the measurements (one JSON-able dict)."""
    say = log or (lambda _text: None)
    workdir = Path(tempfile.mkdtemp(prefix="tianpay-bench-recon-"))
    configured = os.environ.get("TIANPAY_DATABASE_URL")
    url = normalise_database_url(configured) if configured else f"sqlite:///{workdir / 'bench.sqlite3'}"
    # A tag and a date of its own, so a bench on a configured database never meets an earlier one.
    tag = secrets.token_hex(3).upper()
    business_date = date(2001, 1, 1) + timedelta(days=secrets.randbelow(9000))
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        say(f"seeding {lines} payments and a {lines}-line HBB statement …")
        started = time.perf_counter()
        _seed(engine, lines, tag, business_date)
        statement = workdir / f"HBB-{business_date.isoformat()}.txt"
        _write_statement(statement, lines, tag, business_date)
        seed_seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    try:
        say("reconciling in a child process …")
        arguments = [url, str(statement), business_date.isoformat(), str(workdir / "statements")]
        child = subprocess.Popen(  # noqa: S603 (our own interpreter and module; the arguments are ours)
            [sys.executable, "-m", "tianpay.entrypoints.bench_recon", *arguments],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"the reconciliation child failed with exit code {child.returncode}")
        measured = json.loads(output.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "lines": lines,
        "database": make_url(url).get_backend_name(),
        "seconds": measured["seconds"],
        "import_seconds": measured["import_seconds"],
        "reconcile_seconds": measured["reconcile_seconds"],
        # The child's own VmHWM (KiB); ru_maxrss only where /proc is missing. The child's CPU time
        # tells what the run costs when the machine is shared (wall seconds include waiting for a core).
        "peak_rss_mb": round((measured.get("peak_rss_kib") or usage.ru_maxrss) / 1024, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "seed_seconds": round(seed_seconds, 3),
        "matched": measured["summary"]["matched"],
        "exceptions": measured["summary"]["exceptions"],
        "status": measured["status"],
    }


def _attempt_id(tag: str, n: int) -> str:
    return f"att_B{tag}{n:010d}"


def _seed(engine: Engine, lines: int, tag: str, business_date: date) -> None:
    """N succeeded payments with one succeeded HBB attempt each, inserted with the driver's own
    executemany (plain tuples): seeding a million rows must not dominate the benchmark's wall time."""
    start, _ = business_day_bounds(business_date)
    merchant_id = f"mch_bench_{tag.lower()}"
    postgres = engine.dialect.name == "postgresql"
    at = _pg_time if postgres else _sqlite_time
    mark = "%s" if postgres else "?"
    payment_sql = _PAYMENT_SQL.replace("?", mark)
    attempt_sql = _ATTEMPT_SQL.replace("?", mark)
    with engine.begin() as connection:
        connection.execute(
            insert(merchants).values(
                id=merchant_id, name="bench", status="active", webhook_url=None,
                webhook_secret="whsec_bench",  # noqa: S106 (a bench merchant that never receives webhooks)
                created_at=start,
            )
        )
        for first in range(0, lines, SEED_BATCH):
            numbers = range(first, min(first + SEED_BATCH, lines))
            moments = [at(start + timedelta(seconds=n * 80_000 // lines + 1)) for n in numbers]
            expiry = at(start + timedelta(days=1))
            connection.exec_driver_sql(
                payment_sql,
                [
                    (f"pay_B{tag}{n:010d}", merchant_id, f"b{n}", AMOUNT_MINOR, "CNY", "cashier", BANK, "bench", "{}",
                     expiry, "succeeded", 0, 60, _attempt_id(tag, n), moment, moment)
                    for n, moment in zip(numbers, moments, strict=True)
                ],
            )
            connection.exec_driver_sql(
                attempt_sql,
                [
                    (_attempt_id(tag, n), f"pay_B{tag}{n:010d}", "online_banking", BANK, "succeeded", AMOUNT_MINOR,
                     "CNY", f"{n:021d}", moment, moment, 0)
                    for n, moment in zip(numbers, moments, strict=True)
                ],
            )


def _sqlite_time(value: datetime) -> str:
    # How the UtcDateTime column type stores a time on SQLite: naive UTC, SQLAlchemy's text format.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pg_time(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _write_statement(path: Path, lines: int, tag: str, business_date: date) -> None:
    stamp = datetime(business_date.year, business_date.month, business_date.day, 12, tzinfo=UTC).strftime(
        "%Y%m%d%H%M%S"
    )
    with path.open("w", encoding="ascii") as out:
        for n in range(lines):
            order_id = order_id_for(_attempt_id(tag, n))
            out.write(render_line("S22", f"{n:021d}", order_id, stamp, MASKED_CARD, AMOUNT_MINOR, FEE_MINOR) + "\n")
        out.write(render_trailer(lines, lines * AMOUNT_MINOR, lines * FEE_MINOR) + "\n")


def _child(url: str, statement: Path, business_date: date, statements_dir: Path) -> dict[str, Any]:
    engine = make_engine(url)
    clock, ids = SystemClock(), UlidGenerator()

    def uow_factory() -> SqlUnitOfWork:
        return SqlUnitOfWork(engine, clock, ids)

    channel = FileStatementChannel(statement)
    policy = ReconciliationPolicy(statements_dir=statements_dir)
    started = time.perf_counter()
    downloaded = channel.download_statement(business_date, statement)
    import_statement(uow_factory, clock, ids, channel, downloaded, batch_size=policy.stage_batch)
    imported = time.perf_counter()
    report = reconcile(
        uow_factory, clock, ids, _Directory(channel), BANK, business_date, policy=policy, worker_id="bench"
    )
    finished = time.perf_counter()
    engine.dispose()
    return {
        "seconds": round(finished - started, 3),
        "import_seconds": round(imported - started, 3),
        "reconcile_seconds": round(finished - imported, 3),
        "status": report.status,
        "summary": dict(report.summary),
    }


def _own_peak_rss_kib() -> int | None:
    # VmHWM belongs to this process's own address space, which exec gave it afresh. The child's
    # ru_maxrss as the parent sees it is not enough: on Linux it keeps the high-water mark of the
    # forked copy of the parent from before exec, so a big parent (a test session) inflated it.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


if __name__ == "__main__":
    result = _child(sys.argv[1], Path(sys.argv[2]), date.fromisoformat(sys.argv[3]), Path(sys.argv[4]))
    result["peak_rss_kib"] = _own_peak_rss_kib()
    sys.stdout.write(json.dumps(result) + "\n")
