"""HBB's notifications: retried on the bank's schedule until answered `ok`, then never again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from banksim.core.bank import PROFILES, BankContext, SimConfig
from banksim.core.clearing import Clearing
from banksim.core.clock import SimClock
from banksim.core.notifier import NotificationStatus
from banksim.hbb import acknowledges
from tests.banksim.acp_kit import Browser, Platform, Receiver, wait_for
from tests.banksim.hbb_flows import pay


def test_a_notification_is_retried_until_the_platform_answers_ok_and_then_stops(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    result = pay(browser, platform, 3_000, f"{receiver.url}/fail2/retries")
    wait_for(lambda: len(receiver.at("/fail2/retries")) == 3)
    time.sleep(1.0)  # longer than the remaining scaled schedule (0.24 + 0.48 + 0.96 s)
    deliveries = receiver.at("/fail2/retries")
    assert len(deliveries) == 3
    assert all(d.fields["queryId"] == result["queryId"] for d in deliveries)
    state = httpx.get(f"{hbb_url}/_sim/state").json()
    note = next(n for n in state["notifications"] if n["event_ref"].startswith(result["queryId"]))
    assert note["status"] == "delivered"
    assert note["attempts"] == 3


def test_a_notification_nobody_acknowledges_is_abandoned_after_six_attempts(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    result = pay(browser, platform, 3_001, f"{receiver.url}/fail99/never")
    wait_for(lambda: _status(hbb_url, result["queryId"]) == "abandoned", timeout_s=5)
    assert len(receiver.at("/fail99/never")) == 6


def _status(hbb_url: str, query_id: str) -> str:
    state = httpx.get(f"{hbb_url}/_sim/state").json()
    return str(next(n["status"] for n in state["notifications"] if n["event_ref"].startswith(query_id)))


def test_hbb_wants_http_200_with_body_ok() -> None:
    assert acknowledges(200, b"ok")
    assert acknowledges(200, b"ok\n")
    assert not acknowledges(200, b"")
    assert not acknowledges(500, b"ok")


def test_fault_rates_drop_or_duplicate_notifications(
    hbb_url: str, platform: Platform, receiver: Receiver, browser: Browser
) -> None:
    httpx.post(f"{hbb_url}/_sim/faults", json={"notify_drop_rate": 1.0}).raise_for_status()
    try:
        pay(browser, platform, 3_002, f"{receiver.url}/ok/dropped")
    finally:
        httpx.post(f"{hbb_url}/_sim/faults", json={"reset": True}).raise_for_status()
    httpx.post(f"{hbb_url}/_sim/faults", json={"notify_duplicate_rate": 1.0}).raise_for_status()
    try:
        pay(browser, platform, 3_003, f"{receiver.url}/ok/duplicated")
    finally:
        httpx.post(f"{hbb_url}/_sim/faults", json={"reset": True}).raise_for_status()
    wait_for(lambda: len(receiver.at("/ok/duplicated")) == 2)
    time.sleep(0.3)
    assert not receiver.at("/ok/dropped")


def test_a_restarted_bank_resumes_pending_notifications(tmp_path: Path, receiver: Receiver) -> None:
    config = SimConfig(data_dir=tmp_path, notify_scale=0.001)
    clock = SimClock()
    clearing = Clearing(tmp_path / "clearing.sqlite", {}, clock)
    first = BankContext(PROFILES["HBB"], config, clock, clearing)
    first.notifier.enqueue(
        event_ref="E1", url=f"{receiver.url}/ok/resumed", body=b"a=1", content_type="application/x-www-form-urlencoded"
    )
    first.books.close()

    async def run_restarted() -> list[NotificationStatus]:
        second = BankContext(PROFILES["HBB"], config, clock, clearing)
        second.notifier.start()
        try:
            for _ in range(100):
                statuses = [n.status for n in second.notifier.notifications("E1")]
                if statuses == [NotificationStatus.DELIVERED]:
                    return statuses
                await asyncio.sleep(0.02)
            return statuses
        finally:
            await second.notifier.stop()

    assert asyncio.run(run_restarted()) == [NotificationStatus.DELIVERED]
    assert receiver.at("/ok/resumed")[0].fields == {"a": "1"}
