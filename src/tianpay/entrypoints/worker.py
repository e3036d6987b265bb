"""The ``tianpay worker`` process: a loop over small jobs, each doing one bounded batch per tick.

A job is anything with a ``name`` and ``run_once(now) -> int`` (how much work it did; 0 when idle).
The loop runs every job in turn, sleeps only when a whole tick found nothing to do, and stops
between ticks on SIGINT/SIGTERM. Several workers may run at once: jobs claim their rows with
leases and row locks, so adding a worker adds throughput, never duplicate work.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import FrameType
from typing import Protocol

from tianpay.adapters.logging import get_logger
from tianpay.adapters.webhooks import HttpxWebhookSender
from tianpay.bootstrap import Container
from tianpay.config import WEBHOOK_RETRY_SCHEDULE_S
from tianpay.entrypoints.gateway_wiring import gateway_settings
from tianpay.ports.clock import Clock
from tianpay.ports.webhooks import WebhookSender
from tianpay.services.debit_schedules import retake_stale_claims, run_due_debits
from tianpay.services.gateway import requery_attempts
from tianpay.services.housekeeping import HousekeepingJob, HousekeepingPolicy
from tianpay.services.mandates import expire_mandates
from tianpay.services.notifications import DispatchPolicy, dispatch_due_events
from tianpay.services.payments import expire_payments
from tianpay.services.payouts import dispatch_payouts, requery_payouts, settlement_payouts
from tianpay.services.refunds import RequeryPolicy, process_late_success_refunds, requery_refunds
from tianpay.services.settlement import run_daily_settlement
from tianpay.services.statistics import record_job_runs, refresh_statistics
from tianpay.services.wallet import pay_after_top_ups

log = get_logger(__name__)


class Job(Protocol):
    @property
    def name(self) -> str: ...

    def run_once(self, now: datetime) -> int:
        """Does one bounded batch of work due at ``now``; returns how many items it handled."""
        ...


@dataclass(frozen=True, slots=True)
class FunctionJob:
    """A job made of a plain function, which is how most jobs wrap a service call."""

    name: str
    run: Callable[[datetime], int]

    def run_once(self, now: datetime) -> int:
        return self.run(now)


@dataclass
class Worker:
    jobs: Sequence[Job]
    clock: Clock
    poll_interval_s: float = 1.0
    on_close: list[Callable[[], None]] = field(default_factory=list)
    # Tells the database when each job last ran (/metrics reports the lag), at most every
    # ``record_runs_every_s`` so an idle worker does not write once a second.
    record_runs: Callable[[Mapping[str, datetime]], None] | None = None
    record_runs_every_s: float = 10.0
    _runs_recorded_at: float | None = field(default=None, init=False, repr=False)

    def run_once(self) -> dict[str, int]:
        """One tick: every job once, in order. A failing job is logged and the others still run."""
        done: dict[str, int] = {}
        ran_at: dict[str, datetime] = {}
        for job in self.jobs:
            try:
                done[job.name] = job.run_once(self.clock.now())
                ran_at[job.name] = self.clock.now()
            except Exception:
                log.exception("worker_job_failed", job=job.name)
                done[job.name] = 0
        self._remember_runs(ran_at)
        return done

    def _remember_runs(self, ran_at: Mapping[str, datetime]) -> None:
        if self.record_runs is None or not ran_at:
            return
        now = time.monotonic()
        if self._runs_recorded_at is not None and now - self._runs_recorded_at < self.record_runs_every_s:
            return
        self._runs_recorded_at = now
        try:
            self.record_runs(ran_at)
        except Exception:
            log.exception("worker_job_runs_not_recorded")

    def run_forever(self, stop: threading.Event) -> None:
        """Ticks until ``stop`` is set, sleeping ``poll_interval_s`` after a tick that found no work."""
        log.info("worker_started", jobs=[job.name for job in self.jobs])
        while not stop.is_set():
            if not any(self.run_once().values()):
                stop.wait(self.poll_interval_s)
        log.info("worker_stopped")

    def close(self) -> None:
        for close in self.on_close:
            close()


def default_worker_id() -> str:
    """Host and process id: enough to tell workers apart in ``locked_by`` and in the logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def outbox_dispatch_job(container: Container, sender: WebhookSender, *, worker_id: str, batch_size: int = 20) -> Job:
    settings = container.settings
    policy = DispatchPolicy(
        retry_schedule_s=WEBHOOK_RETRY_SCHEDULE_S,
        retry_scale=settings.webhook_retry_scale,
        batch_size=batch_size,
        timeout_s=settings.webhook_timeout_s,
    )

    def run(now: datetime) -> int:
        report = dispatch_due_events(container.uow, sender, container.clock, policy, worker_id=worker_id, now=now)
        return report.claimed

    return FunctionJob("outbox_dispatch", run)


def refund_jobs(container: Container) -> list[Job]:
    """Re-query of in-flight refunds, and refunds of attempts that succeeded after their payment had."""
    settings = container.settings
    policy = RequeryPolicy(settings.requery_first_after_s, settings.requery_max_interval_s)

    def requery(now: datetime) -> int:
        return requery_refunds(container.uow, container.clock, container.ids, container.channels, now, policy=policy)

    def late_successes(now: datetime) -> int:
        return process_late_success_refunds(
            container.uow, container.clock, container.ids, container.channels, now,
            notify_base_url=settings.base_url, policy=policy,
        )

    return [FunctionJob("refund_requery", requery), FunctionJob("late_success_refunds", late_successes)]


def requery_job(container: Container) -> Job:
    """Asks the banks about payment attempts still unresolved (docs/gateway.md, "Re-query")."""
    settings = gateway_settings(container)

    def run(now: datetime) -> int:
        return requery_attempts(container.uow, container.clock, container.ids, container.channels, settings, now)

    return FunctionJob("payment_requery", run)


def direct_debit_jobs(container: Container, *, worker_id: str) -> list[Job]:
    """Mandates past their validity expire; scheduled debits due today run once per period
    (docs/direct-debit.md): the (schedule, period) claim keeps several workers from debiting twice."""
    settings = gateway_settings(container)

    def scheduled(now: datetime) -> int:
        return run_due_debits(
            container.uow, container.clock, container.ids, container.channels, container.member_tools.cipher,
            settings, now, worker_id=worker_id,
        )

    def stale_claims(now: datetime) -> int:
        # A claim whose worker died before the debit finished is taken over after the lease.
        return retake_stale_claims(
            container.uow, container.clock, container.ids, container.channels, container.member_tools.cipher,
            settings, now, worker_id=worker_id, lease=timedelta(seconds=container.settings.debit_claim_lease_s),
        )

    return [
        FunctionJob("mandate_expiry", lambda now: expire_mandates(container.uow, container.clock, now)),
        FunctionJob("scheduled_debits", scheduled),
        FunctionJob("stale_debit_claims", stale_claims),
    ]


def housekeeping_job(container: Container) -> Job:
    """Deletes rows past their use: expired sessions, SMS codes, rate-limit counters and replay
    fingerprints, and delivered events, idempotency records and outbox SMS older than their
    retentions (docs/worker.md, "Housekeeping")."""
    settings = container.settings
    policy = HousekeepingPolicy(
        batch_size=settings.housekeeping_batch_size,
        event_retention=timedelta(days=settings.event_retention_days),
        idempotency_retention=timedelta(days=settings.idempotency_retention_days),
        sms_outbox_retention=timedelta(hours=settings.sms_outbox_retention_hours),
    )
    return HousekeepingJob(container.uow, policy, interval=timedelta(seconds=settings.housekeeping_interval_s))


def settlement_job(container: Container) -> Job:
    """Settles each merchant's business date on the day its T+N makes it due, once every statement
    bank's reconciliation of that date has finished (docs/settlement.md)."""
    done: set[tuple[str, date]] = set()

    def run(now: datetime) -> int:
        required = container.channels.statement_banks()
        return run_daily_settlement(container.uow, container.clock, now, required_banks=required, done=done)

    return FunctionJob("daily_settlement", run)


def pos_reversal_job(container: Container) -> Job | None:
    """Continues the reversals owed to TCS (BANKS.md TCS: "the platform sends a reversal (0400)
    until it gets a 0410"), e.g. after pos-front restarted mid-reversal. None when TCS was never
    onboarded (no POS acquiring on this instance)."""
    import asyncio

    from tianpay.channels.tcs.client import TcsClient
    from tianpay.channels.tcs.onboarding import load_tcs_config
    from tianpay.entrypoints.pos_front.server import PosFront

    config = load_tcs_config(container.settings.data_dir, timeout_s=container.settings.bank_timeout_s)
    if config is None:
        return None
    front = PosFront(container.uow, container.clock, container.ids, container.vault, TcsClient(config))

    def run(_now: datetime) -> int:
        return asyncio.run(front.continue_reversals())

    return FunctionJob("pos_reversals", run)


def payout_jobs(container: Container) -> list[Job]:
    """Payouts (docs/payouts.md): batch and send created payouts, query unclear batches, and pay out
    settlements of merchants with automatic payout on."""
    settings = container.settings
    policy = RequeryPolicy(settings.requery_first_after_s, settings.requery_max_interval_s)
    cipher = container.member_tools.cipher

    def dispatch(now: datetime) -> int:
        return dispatch_payouts(
            container.uow, container.clock, container.ids, container.channels, cipher, now,
            notify_base_url=settings.base_url, policy=policy,
        )

    def requery(now: datetime) -> int:
        return requery_payouts(container.uow, container.clock, container.channels, cipher, now, policy=policy)

    def settlements(now: datetime) -> int:
        return settlement_payouts(container.uow, container.clock, container.ids, container.channels, cipher, now)

    return [
        FunctionJob("settlement_payouts", settlements),
        FunctionJob("payout_dispatch", dispatch),
        FunctionJob("payout_requery", requery),
    ]


def statistics_job(container: Container) -> Job:
    """Keeps the daily payment aggregates current from the transition logs (docs/statistics.md)."""
    margin = timedelta(seconds=container.settings.statistics_settle_margin_s)

    def run(now: datetime) -> int:
        return refresh_statistics(container.uow, now, settle_margin=margin)

    return FunctionJob("statistics", run)


def reconciliation_job(container: Container, *, worker_id: str) -> Job:
    """Downloads each statement bank's file for the dates due (after the cutoff and the configured
    delay), imports and reconciles it (docs/reconciliation.md); runs are leased, so several workers
    never run one twice, and a statement not published yet is tried again later."""
    from tianpay.entrypoints.reconciliation_wiring import daily_schedule, reconciliation_policy
    from tianpay.services.reconciliation import reconcile_due

    policy, schedule = reconciliation_policy(container), daily_schedule(container)

    def run(now: datetime) -> int:
        return reconcile_due(
            container.uow, container.clock, container.ids, container.channels, now,
            policy=policy, schedule=schedule, worker_id=worker_id,
        )

    return FunctionJob("daily_reconciliation", run)


def build_worker(container: Container, *, worker_id: str | None = None, sender: WebhookSender | None = None) -> Worker:
    """The worker with every job this process runs; later jobs (re-query, expiry…) join the list."""
    worker_id = worker_id or default_worker_id()
    on_close: list[Callable[[], None]] = []
    if sender is None:
        http_sender = HttpxWebhookSender(timeout_s=container.settings.webhook_timeout_s)
        on_close.append(http_sender.close)
        sender = http_sender
    jobs: list[Job] = [
        outbox_dispatch_job(container, sender, worker_id=worker_id),
        FunctionJob("payment_expiry", lambda now: expire_payments(container.uow, now, max_batches=1)),
        requery_job(container),
        *refund_jobs(container),
        FunctionJob("wallet_pay_after_top_up", lambda now: pay_after_top_ups(container.uow, container.member_tools)),
        *direct_debit_jobs(container, worker_id=worker_id),
        reconciliation_job(container, worker_id=worker_id),
        settlement_job(container),
        *payout_jobs(container),
        statistics_job(container),
        housekeeping_job(container),
    ]
    # POS acquiring only where TCS was onboarded (docs/pos.md "Reversals and timeouts").
    reversals = pos_reversal_job(container)
    if reversals is not None:
        jobs.append(reversals)
    return Worker(
        jobs=jobs,
        clock=container.clock,
        poll_interval_s=container.settings.worker_poll_interval_s,
        on_close=on_close,
        record_runs=lambda runs: record_job_runs(container.uow, runs),
    )


def run_until_signalled(worker: Worker) -> None:
    """Runs the loop in this (main) thread until SIGINT or SIGTERM, then returns cleanly."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker_stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.run_forever(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
