"""A whole platform as real processes, for the fault suite: banks, N ``serve``, M ``worker``, one database.

Unlike ``tianpay up`` every platform process is started here one by one, so a scenario can ``kill -9``
any of them and start it again, run several of each, and point them at any PostgreSQL. Time moves for
every process at once: the platform through ``TIANPAY_CLOCK_FILE``, the banks through ``/_sim/clock``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock_time
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import text

from tests.faults.receiver import WebhookReceiver
from tianpay.adapters.clock import OffsetFileClock
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.entrypoints.demo_merchant import ensure_demo_merchant
from tianpay.entrypoints.launcher import (
    Supervisor,
    free_port,
    platform_argv,
    start_banks,
    wait_until_answering,
)
from tianpay.services.merchants import set_webhook_url
from tianpay_sdk import TianpayClient

SHANGHAI = timezone(timedelta(hours=8))
# How long magic 96/97 hold a request: longer than the platform's bank timeout, so it gives up first.
HANG_S = 2.0
BANK_TIMEOUT_S = 1.0
# Every schedule the scenarios wait on, compressed. The signature window is wide because the client
# signs with real time while the platform may already be a day ahead (it only has to cover the shift).
FAULT_ENV = {
    "TIANPAY_PUBLIC_BASE_URL": "",
    "TIANPAY_BANK_TIMEOUT_S": str(BANK_TIMEOUT_S),
    "TIANPAY_REQUERY_FIRST_AFTER_S": "1",
    "TIANPAY_REQUERY_MAX_INTERVAL_S": "2",
    "TIANPAY_ABSENT_ORDER_MARGIN_S": "2",
    "TIANPAY_WORKER_POLL_INTERVAL_S": "0.2",
    "TIANPAY_WEBHOOK_RETRY_SCALE": "0.002",
    "TIANPAY_WEBHOOK_TIMEOUT_S": "5",
    "TIANPAY_SIGNATURE_WINDOW_S": str(4 * 86_400),
    "TIANPAY_RECONCILIATION_DELAY_S": "0",
    "TIANPAY_RECONCILIATION_RETRY_S": "1",
    "TIANPAY_RECONCILIATION_LEASE_S": "20",
    "TIANPAY_LOG_LEVEL": "WARNING",
    "BANKSIM_NOTIFY_SCALE": "0.01",
    "BANKSIM_HANG_S": str(HANG_S),
}
FINAL_PAYMENT = {"succeeded", "failed", "closed"}
FINAL_REFUND = {"succeeded", "failed"}
FINAL_PAYOUT = {"succeeded", "failed", "returned"}


@dataclass
class Cluster:
    """The running processes and the handles a scenario needs to drive and to judge them."""

    root: Path
    data_dir: Path
    database_url: str
    env: dict[str, str]
    clock: OffsetFileClock
    container: Container
    receiver: WebhookReceiver
    bank_urls: dict[str, str]
    merchant: dict[str, Any]
    log: IO[str]
    children: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    serve_ports: dict[str, int] = field(default_factory=dict)
    kills: int = 0

    # ---- processes ------------------------------------------------------------------------------------

    def start_serve(self, name: str, port: int | None = None) -> str:
        """Starts (or restarts, on its old port) a ``serve`` process; returns its base URL once it answers."""
        port = port or self.serve_ports.get(name) or free_port()
        self.serve_ports[name] = port
        argv = platform_argv("serve", self.data_dir, "--host", "127.0.0.1", "--port", str(port))
        process = self._spawn(name, argv)
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{url}/v1/platform-keys", is_alive=lambda: process.poll() is None)
        return url

    def start_worker(self, name: str) -> None:
        self._spawn(name, platform_argv("worker", self.data_dir, "--worker-id", name))

    def kill(self, name: str) -> None:
        """``kill -9``: no clean-up, no flush, whatever the process was in the middle of."""
        process = self.children[name]
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            self.kills += 1
        process.wait(timeout=30)

    def restart(self, name: str) -> None:
        if name in self.serve_ports:
            self.start_serve(name)
        else:
            self.start_worker(name)

    def api(self, name: str = "serve-1") -> str:
        return f"http://127.0.0.1:{self.serve_ports[name]}"

    def stop_all(self) -> None:
        for process in self.children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.children.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[str]:
        previous = self.children.get(name)
        if previous is not None and previous.poll() is None:
            raise RuntimeError(f"{name} is still running")
        process = subprocess.Popen(  # a child of the test, in its own session so a kill hits it alone
            argv, stdout=self.log, stderr=self.log, text=True, env=self.subprocess_env(), start_new_session=True
        )
        self.children[name] = process
        return process

    # ---- the merchant ---------------------------------------------------------------------------------

    def client(self, serve: str = "serve-1") -> TianpayClient:
        api = self.api(serve)
        key = httpx.get(api + "/v1/platform-keys", timeout=10.0).json()["data"][0]
        return TianpayClient(
            api,
            self.merchant["merchant_id"],
            self.merchant["key_id"],
            Path(self.merchant["private_key_path"]).read_bytes(),
            platform_public_key=key["public_key_pem"],
            platform_key_id=key["key_id"],
        )

    # ---- the banks ------------------------------------------------------------------------------------

    def bank_faults(self, bank: str, **settings: Any) -> dict[str, Any]:
        answer = httpx.post(self.bank_urls[bank] + "/_sim/faults", json=settings, timeout=10.0)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def bank_state(self, bank: str) -> dict[str, Any]:
        answer = httpx.get(self.bank_urls[bank] + "/_sim/state", timeout=10.0)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    # ---- time -----------------------------------------------------------------------------------------

    def business_date(self) -> date:
        return self.clock.now().astimezone(SHANGHAI).date()

    def advance_past_midnight(self, minutes_after: int = 5, at_least: timedelta = timedelta(hours=1)) -> date:
        """Moves the platform and the banks together to just after the next Shanghai midnight.

        Returns the business date that has just ended. Both clocks move by the same amount, so orders
        the platform times and the banks check keep agreeing. The move is ``at_least`` long even when
        midnight is close: scenarios rely on it to carry orders past their expiry (30 minutes) and
        the absent-order margin (15 minutes), and a run started at 23:50 Shanghai time would otherwise
        reach 00:05 with those windows still open. Landing later than 00:05 keeps the same next day.
        """
        ended = self.business_date()
        midnight = datetime.combine(ended + timedelta(days=1), clock_time(0, minutes_after), SHANGHAI)
        target = max(midnight, self.clock.now() + at_least)
        delta = target - self.clock.now()
        self.clock.advance(delta)
        world = httpx.post(
            next(iter(self.bank_urls.values())) + "/_sim/clock", json={"advance_s": delta.total_seconds()}, timeout=10
        )
        world.raise_for_status()
        return ended

    # ---- the platform's own tools, as an operator runs them ---------------------------------------------

    def subprocess_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def cli(self, *args: str, timeout_s: float = 120.0) -> tuple[int, dict[str, Any]]:
        """Runs ``tianpay <args> --data-dir … --json`` as its own process; returns its exit code and JSON."""
        argv = [sys.executable, "-m", "tianpay", *args, "--data-dir", str(self.data_dir), "--json"]
        done = subprocess.run(
            argv, capture_output=True, text=True, env=self.subprocess_env(), timeout=timeout_s, check=False
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise AssertionError(f"tianpay {' '.join(args)} printed no JSON (exit {done.returncode}):\n{done.stderr}")
        payload: dict[str, Any] = json.loads(lines[-1])
        return done.returncode, payload

    def reconcile(self, bank: str, day: date, *, timeout_s: float = 90.0) -> dict[str, Any]:
        """Reconciles one bank's date, waiting while a worker holds the run; returns the finished report."""
        deadline = time.monotonic() + timeout_s
        while True:
            _code, report = self.cli("reconcile", "--bank", bank, "--date", day.isoformat())
            if report.get("status") in ("finished", "already_finished"):
                return report
            if time.monotonic() > deadline:
                raise AssertionError(f"reconciliation of {bank} {day} did not finish: {report}")
            time.sleep(0.5)

    def ledger_verify(self) -> dict[str, Any]:
        _code, report = self.cli("ledger", "verify")
        return report

    def statement_banks(self) -> list[str]:
        return self.container.channels.statement_banks()

    # ---- reading the database (what the scenario judges) ------------------------------------------------

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.container.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(sql), params)]

    def statuses(self, table: str) -> dict[str, str]:
        return {row["id"]: row["status"] for row in self.rows(f"SELECT id, status FROM {table}")}



@contextmanager
def running_cluster(
    root: Path, database_url: str, *, serves: int = 1, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """Banks, an onboarded platform on ``database_url``, the demo merchant notifying a receiver, and
    ``serves`` × ``serve`` plus ``workers`` × ``worker``; everything stopped on the way out."""
    from tianpay.channels.registry import onboard_banks

    data_dir = (root / "data").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    clock_file = root / "clock.json"
    full_env = {**FAULT_ENV, "TIANPAY_DATABASE_URL": database_url, "TIANPAY_CLOCK_FILE": str(clock_file), **(env or {})}
    with ExitStack() as stack:
        log = stack.enter_context((root / "processes.log").open("a", encoding="utf-8"))
        banks = Supervisor(output=log)
        stack.callback(banks.stop)
        bank_urls = start_banks(banks, data_dir, "127.0.0.1", 0, env=full_env)
        bank_urls = {code: url for code, url in bank_urls.items() if url.startswith("http")}
        onboard_banks(data_dir, bank_urls)
        settings = Settings(data_dir=data_dir, database_url=database_url, clock_file=clock_file)
        container = build_container(settings)
        stack.callback(container.close)
        container.upgrade_database()
        demo = ensure_demo_merchant(container)
        clock = OffsetFileClock(clock_file)
        receiver = WebhookReceiver(demo.webhook_secret, clock)
        stack.callback(receiver.close)
        set_webhook_url(container.uow, demo.merchant_id, receiver.url)
        cluster = Cluster(
            root=root, data_dir=data_dir, database_url=database_url, env=full_env, clock=clock,
            container=container, receiver=receiver, bank_urls=bank_urls,
            merchant={"merchant_id": demo.merchant_id, "key_id": demo.key_id,
                      "private_key_path": demo.private_key_path},
            log=log,
        )  # fmt: skip
        stack.callback(cluster.stop_all)
        for number in range(1, serves + 1):
            cluster.start_serve(f"serve-{number}")
        for number in range(1, workers + 1):
            cluster.start_worker(f"worker-{number}")
        yield cluster


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.3) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so within {timeout_s:.0f}s")
        time.sleep(interval_s)


def in_background(action: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread
