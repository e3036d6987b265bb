"""The worker loop: jobs run once per tick, a failing job does not stop the others, stop is prompt.

The last test runs ``tianpay worker --once`` through the real CLI against a real database and a
live merchant endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tianpay.adapters.clock import SettableClock
from tianpay.domain.notifications import EventStatus, EventType
from tianpay.entrypoints.cli import app
from tianpay.entrypoints.worker import FunctionJob, Worker
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.notifications import get_event

from .conftest import MakeMerchant
from .merchant_endpoint import MerchantEndpoint


def test_a_tick_runs_every_job_with_the_clocks_time_and_reports_their_counts(clock: SettableClock) -> None:
    seen: list[tuple[str, datetime]] = []

    def job(name: str, result: int) -> FunctionJob:
        def run(now: datetime) -> int:
            seen.append((name, now))
            return result

        return FunctionJob(name, run)

    worker = Worker([job("outbox_dispatch", 3), job("expiry", 0)], clock)

    assert worker.run_once() == {"outbox_dispatch": 3, "expiry": 0}
    assert seen == [("outbox_dispatch", clock.now()), ("expiry", clock.now())]


def test_a_failing_job_is_logged_and_the_next_job_still_runs(
    clock: SettableClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(now: datetime) -> int:
        raise RuntimeError("database went away")

    worker = Worker([FunctionJob("broken", broken), FunctionJob("fine", lambda now: 1)], clock)

    with caplog.at_level(logging.ERROR):
        assert worker.run_once() == {"broken": 0, "fine": 1}


def test_the_loop_sleeps_when_idle_and_stops_promptly_when_asked(clock: SettableClock) -> None:
    ticks = 0

    def count(now: datetime) -> int:
        nonlocal ticks
        ticks += 1
        return 0

    worker = Worker([FunctionJob("idle", count)], clock, poll_interval_s=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    time.sleep(0.1)
    stop.set()
    thread.join(timeout=2)

    assert not thread.is_alive()
    assert 2 <= ticks <= 20


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures the root logger for its process; put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = handlers, level


@pytest.mark.usefixtures("restore_logging")
def test_tianpay_worker_once_delivers_due_events_through_the_cli(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uow_factory: UnitOfWorkFactory,
    make_merchant: MakeMerchant,
    merchant_endpoint: MerchantEndpoint,
) -> None:
    merchant_id, _ = make_merchant(merchant_endpoint.url)
    with uow_factory() as uow:
        event_id = uow.outbox.add_event(merchant_id, EventType.SETTLEMENT_PAID, {"id": "stl_1"})
        uow.commit()
    monkeypatch.setenv("TIANPAY_DATABASE_URL", db_url)

    result = CliRunner().invoke(app, ["worker", "--once", "--data-dir", str(tmp_path), "--worker-id", "cli-1"])

    assert result.exit_code == 0, result.output
    assert "outbox_dispatch=1" in result.output
    assert [r.webhook_id for r in merchant_endpoint.received] == [event_id]
    assert get_event(uow_factory, merchant_id, event_id).status is EventStatus.DELIVERED
