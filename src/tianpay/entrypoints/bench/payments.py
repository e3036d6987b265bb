"""``tianpay bench payments``: wallet payments per second through the signed API, against ``pgbench``.

One run: a scratch PostgreSQL database is migrated and seeded through the services (an HMAC merchant,
one funded member per client); N ``tianpay serve`` processes start on it; the load generator
(another process, ``loadgen.py``) drives create + confirm with C concurrent clients for S seconds;
then ``pgbench`` TPC-B runs with the same clients for the same time on a scratch database of the same
server. The ratio of the two rates is DESIGN.md §13's figure; targets are reported, never asserted.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url
from stdnum.cn import ric

from tianpay.adapters.db import migrate
from tianpay.adapters.db.engine import make_engine
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.money import Money
from tianpay.entrypoints.launcher import free_port
from tianpay.services import members, payments, wallet
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

from .common import BenchUnavailable, Database, bench_database, percentile, quiet_logging, scratch_database
from .loadgen import Plan

PAYMENT_PASSWORD = "246810"  # noqa: S105 (the seeded bench members' payment password)
AMOUNT_MINOR = 100
# Each wallet is funded for far more payments than a run can make, so no payment fails for money.
FUNDING_MINOR = 100_000_000
WARMUP_SECONDS = 2.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0
# A cheap argon2id profile for --cheap-passwords: what the test suite uses, never production.
CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 8, "argon2_parallelism": 1}

Say = Callable[[str], None]


def default_serve_workers() -> int:
    """One ``serve`` process per core: on 2 cores, 2 processes leave the database and the load
    generator their share while still using both cores for Python."""
    return max(1, os.cpu_count() or 1)


def run_bench(
    *,
    seconds: float,
    clients: int,
    serve_workers: int,
    cheap_passwords: bool = False,
    merchants: int = 1,
    pgbench_scale: int | None = None,
    profile: Path | None = None,
    log: Say | None = None,
) -> dict[str, Any]:
    """Runs both halves and returns every figure (one JSON-able dict); the clients pay ``merchants``
    merchants in turn (1: every payment is one merchant's, the realistic worst case). With ``profile``,
    py-spy samples the first ``serve`` process (``--gil``: its Python CPU) for the load's duration and
    writes its raw collapsed stacks there."""
    say = log or (lambda _text: None)
    quiet_logging()
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise BenchUnavailable("pgbench is not installed (Debian: apt-get install postgresql-client)")
    scale = pgbench_scale or clients
    with bench_database("payments") as database:
        platform = _platform_half(
            database, seconds, clients, serve_workers, cheap_passwords, merchants, say, profile=profile
        )
    with scratch_database("pgbench") as scratch:
        say(f"pgbench TPC-B: scale {scale}, {clients} clients, {seconds:g} s …")
        tps = _pgbench(pgbench, scratch, clients=clients, seconds=seconds, scale=scale)
    per_second = platform["payments_per_second"]
    return {
        "bench": "payments",
        **platform,
        "pgbench_tps": round(tps, 1),
        "pgbench_scale": scale,
        "ratio": round(per_second / tps, 3) if tps else None,
        "target_ratio": TARGET_RATIO,
        "target_p99_ms": TARGET_P99_MS,
        "cpu_count": os.cpu_count(),
    }


def _platform_half(
    database: Database, seconds: float, clients: int, serve_workers: int, cheap_passwords: bool, merchants: int,
    say: Say, *, profile: Path | None = None,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="tianpay-bench-payments-"))
    try:
        engine = make_engine(database.url, pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        overrides: dict[str, Any] = dict(CHEAP_ARGON2) if cheap_passwords else {}
        settings = Settings(data_dir=workdir, database_url=database.url, **overrides)
        container = build_container(settings)
        try:
            say(f"seeding {merchants} merchant(s) and {clients} funded members …")
            plan = _seed(container, clients, merchants)
            # Made here, once, so the serve processes share one key instead of racing to create it.
            _ = container.platform_key
        finally:
            container.close()
        ports = [free_port() for _ in range(serve_workers)]
        say(f"starting {serve_workers} serve process(es) …")
        serve_cpu: list[float] = []
        with _serving(database.url, workdir, ports, serve_cpu) as pids:
            full_plan = Plan(
                base_urls=[f"http://127.0.0.1:{port}" for port in ports],
                clients=clients,
                seconds=seconds,
                warmup_seconds=WARMUP_SECONDS,
                amount_minor=AMOUNT_MINOR,
                run_tag=secrets.token_hex(4),
                **plan,
            )
            say(f"load: {clients} clients for {seconds:g} s (after {WARMUP_SECONDS:g} s of warm-up) …")
            cpu_before = sum(_cpu_seconds(pid) for pid in pids)
            with _profiling(pids[0], profile, seconds + WARMUP_SECONDS):
                measured = _load(full_plan)
            load_cpu = sum(_cpu_seconds(pid) for pid in pids) - cpu_before
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    creates = measured["create_latencies_ms"]
    confirms = measured["confirm_latencies_ms"]
    return {
        "database": make_url(database.url).render_as_string(hide_password=True),
        "seconds": seconds,
        "clients": clients,
        "serve_workers": serve_workers,
        "merchants": merchants,
        "argon2": "cheap (test profile)" if cheap_passwords else "production (RFC 9106 low-memory)",
        "payments": measured["payments"],
        "payments_per_second": round(measured["payments"] / seconds, 1),
        "create_p50_ms": round(percentile(creates, 0.50), 2),
        "create_p99_ms": round(percentile(creates, 0.99), 2),
        "confirm_p50_ms": round(percentile(confirms, 0.50), 2),
        "confirm_p99_ms": round(percentile(confirms, 0.99), 2),
        "errors": measured["errors"],
        "first_error": measured["first_error"],
        # The serve processes' own CPU (user + system, start-up and warm-up included) per payment
        # they completed: what a payment costs in Python, whatever else the machine is doing.
        "serve_cpu_seconds": round(sum(serve_cpu), 2),
        "serve_cpu_ms_per_payment": round(1000 * sum(serve_cpu) / max(1, measured["payments_total"]), 2),
        # The same, counted over the load alone (warm-up included, start-up and seeding not): the
        # figure to compare between runs, since it hardly depends on what else the machine is doing.
        "load_cpu_ms_per_payment": round(1000 * load_cpu / max(1, measured["payments_total"]), 2),
    }


def _seed(container: Container, clients: int, merchant_count: int) -> dict[str, Any]:
    """Merchants with HMAC keys, and one funded wallet member per client registered by the merchant
    that client pays (client n pays merchant n % M), all through the services."""
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    shops: list[dict[str, str]] = []
    for n in range(merchant_count):
        created = create_merchant(container.uow, tools, NewMerchant(f"Bench shop {n}", KeyRequest(use_hmac=True)))
        assert created.key.hmac_secret is not None
        shops.append({"merchant_id": created.merchant_id, "key_id": created.key.key_id,
                      "hmac_secret_hex": created.key.hmac_secret.hex()})
    member_tools = container.member_tools
    member_ids: list[str] = []
    for n in range(clients):
        registration = members.ImplicitRegistration(
            shops[n % merchant_count]["merchant_id"], f"bench-{n}", "压测用户", _id_number(n), f"139{n:08d}"
        )
        member_id = members.register_for_merchant(container.uow, member_tools, registration).member.id
        members.set_payment_password(container.uow, member_tools, member_id, PAYMENT_PASSWORD)
        _fund(container, member_id)
        member_ids.append(member_id)
    return {"merchants": shops, "member_ids": member_ids, "payment_password": PAYMENT_PASSWORD}


def _id_number(n: int) -> str:
    # A valid resident ID (Beijing Dongcheng, born 1990-01-01) with the member's number as its sequence.
    body = f"110101199001{1 + n // 999 % 28:02d}{n % 999 + 1:03d}"
    # python-stdnum computes the check character of a whole number, ignoring its last position.
    return body + ric.calc_check_digit(body + "0")


def _fund(container: Container, member_id: str) -> None:
    """Tops the wallet up as a bank would confirm it: a top-up payment whose HBB attempt succeeds."""
    started = wallet.start_top_up(
        container.uow, container.member_tools, member_id, Money.cny(FUNDING_MINOR),
        return_url="https://bench.invalid/wallet", bank="HBB",
    )
    attempt = payments.start_attempt(
        container.uow, container.clock, container.ids, started.payment.id, channel="hbb.online_banking", bank="HBB"
    )
    payments.record_attempt_succeeded(
        container.uow, container.clock, started.payment.id, attempt.id,
        bank_reference=f"bench-{attempt.id}", amount=Money.cny(FUNDING_MINOR),
    )



@contextmanager
def _serving(database_url: str, data_dir: Path, ports: list[int], cpu_seconds: list[float]) -> Iterator[list[int]]:
    """``tianpay serve`` per port, as an operator would start it (yields their pids); stopped with
    SIGTERM at the end, when each one's CPU time (from ``wait4``) is appended to ``cpu_seconds``."""
    environment = {**os.environ, "TIANPAY_DATABASE_URL": database_url}
    children: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            log = (data_dir / f"serve-{port}.log").open("wb")
            children.append(subprocess.Popen(  # noqa: S603 (our own interpreter and CLI)
                [sys.executable, "-m", "tianpay", "serve", "--data-dir", str(data_dir), "--port", str(port)],
                env=environment, stdout=log, stderr=subprocess.STDOUT,
            ))
        for port, child in zip(ports, children, strict=True):
            _wait_until_serving(port, child, data_dir / f"serve-{port}.log")
        yield [child.pid for child in children]
    finally:
        for child in children:
            with suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        for child in children:
            cpu_seconds.append(_reap(child))


def _reap(child: subprocess.Popen[bytes]) -> float:
    """Waits for a stopped server (killing it after 20 s) and returns its user + system CPU seconds."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.1)
    child.kill()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _cpu_seconds(pid: int) -> float:
    """A live process's user + system CPU seconds so far, from ``/proc`` (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _profiling(pid: int, output: Path | None, seconds: float) -> Iterator[None]:
    """py-spy on ``pid`` for ``seconds`` while the body runs, writing raw collapsed stacks to ``output``."""
    if output is None:
        yield
        return
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise BenchUnavailable("--profile needs py-spy: pip install -e '.[bench]'")
    recorder = subprocess.Popen(  # noqa: S603 (the profiler found on PATH, our own arguments)
        [py_spy, "record", "--pid", str(pid), "--gil", "--rate", "200", "--format", "raw",
         "--duration", str(max(1, round(seconds))), "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.wait(timeout=60)


def _wait_until_serving(port: int, child: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"serve on port {port} exited: {log.read_text(errors='replace')[-2000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/v1/platform-keys", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"serve on port {port} did not answer within 60 s")


def _load(plan: Plan) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "tianpay.entrypoints.bench.loadgen"],
        input=json.dumps(asdict(plan)), capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the load generator failed: {completed.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _pgbench(pgbench: str, database: Database, *, clients: int, seconds: float, scale: int) -> float:
    url = make_url(database.url)
    connection = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    environment = {**os.environ}
    if url.password:
        environment["PGPASSWORD"] = url.password
    name = url.database or "postgres"
    # Server-side data generation ("G") is several times faster than streaming the rows from pgbench.
    subprocess.run(  # noqa: S603 (the PostgreSQL tool found on PATH, our own arguments)
        [pgbench, "-i", "-q", "-I", "dtGvp", "-s", str(scale), *connection, name],
        env=environment, capture_output=True, check=True,
    )
    threads = min(2, clients)
    ran = subprocess.run(  # noqa: S603 (as above)
        [pgbench, "-c", str(clients), "-j", str(threads), "-T", str(max(1, round(seconds))), *connection, name],
        env=environment, capture_output=True, text=True, check=True,
    )
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", ran.stdout)
    if found is None:
        raise RuntimeError(f"cannot read pgbench's tps from: {ran.stdout[-500:]}")
    return float(found.group(1))
