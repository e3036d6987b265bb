"""Payout review (人工审核) over real HTTP on both databases: finance sets a merchant's threshold in the
console, the signed merchant API holds a payout at it, and the console's queue approves one (which the
worker then pays at the simulated HBB) or rejects one (money back, ``payout.failed``, ledger verified).
Each decision is audited, taken once, and refused to a role without ``payouts.review``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.api.rfc9421_client import SignedClient
from tests.conftest import BACKENDS, _DatabaseFactory
from tests.payouts.conftest import (
    WANG_FANG_HBB,
    PayoutWorld,
    funded_merchant_client,
    payout_data_dir,
    payout_world,
)
from tianpay.domain.errors import Conflict
from tianpay.domain.operator import Role
from tianpay.entrypoints.console.routes import console_tools
from tianpay.entrypoints.worker import payout_jobs
from tianpay.services import audit, console, ledger, payouts

from .conftest import ConsoleServer, make_staff, signed_in, start_console_server

__all__ = ["payout_data_dir", "payout_world"]

pytestmark = pytest.mark.e2e

FUNDS_MINOR = 2_000_000
THRESHOLD_MINOR = 100_000  # ¥1,000.00
_numbers = itertools.count(1)


@pytest.fixture(scope="module", params=BACKENDS)
def console_server(
    request: pytest.FixtureRequest, database_factory: _DatabaseFactory, payout_data_dir: Path
) -> Iterator[ConsoleServer]:
    """The platform (console and merchant API) with the simulated banks onboarded."""
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    server, threaded = start_console_server(database_url, payout_data_dir)
    try:
        yield server
    finally:
        threaded.stop()
        server.container.close()


@pytest.fixture(scope="module")
def shop(console_server: ConsoleServer) -> Iterator[SignedClient]:
    """A merchant with a signed API client and ¥20,000 available; its review threshold is set through the
    console by the first test (``_set_threshold`` sets it for a test run alone)."""
    client = funded_merchant_client(
        console_server.container, console_server.base_url, "审核测试商户", bank="HBB", funds_minor=FUNDS_MINOR
    )
    yield client
    client.session.close()


def audit_rows(server: ConsoleServer, action: str, subject_id: str) -> list[audit.AuditRecord]:
    return [r for r in audit.audit_trail(server.container.uow, limit=200)
            if r.action == action and r.subject_id == subject_id]


def available(shop: SignedClient) -> int:
    return int(shop.get("/v1/balance").json()["available"]["amount"])


def hold(server: ConsoleServer, shop: SignedClient, minor: int) -> dict[str, Any]:
    """A payout to 王芳's HBB card at or above the threshold: answered ``pending_review``."""
    _set_threshold(server, shop.credentials.merchant_id)
    body = {"out_payout_no": f"REVIEW-{next(_numbers)}", "amount": minor, "currency": "CNY", "purpose": "货款结算",
            "account": {"bank": WANG_FANG_HBB[0], "account_no": WANG_FANG_HBB[1], "account_name": WANG_FANG_HBB[2]}}
    created = shop.post("/v1/payouts", json=body)
    assert created.status_code == 201, created.text
    payout: dict[str, Any] = created.json()
    assert payout["status"] == "pending_review"
    return payout


def _set_threshold(server: ConsoleServer, merchant_id: str) -> None:
    container = server.container
    with container.uow() as uow:
        if uow.payouts.review_threshold(merchant_id) == THRESHOLD_MINOR:
            return
    finance = make_staff(container, Role.FINANCE)
    with container.uow() as uow:
        operator = uow.operators.get(finance.username)
    assert operator is not None
    console.set_payout_review_threshold(container.uow, console_tools(container), operator, merchant_id,
                                        THRESHOLD_MINOR, reason="fixture")


def run_payout_jobs(server: ConsoleServer) -> dict[str, int]:
    return {job.name: job.run_once(server.clock.now()) for job in payout_jobs(server.container)}


def status_of(shop: SignedClient, payout_id: str) -> str:
    return str(shop.get(f"/v1/payouts/{payout_id}").json()["status"])


def test_finance_sets_the_threshold_and_the_api_holds_a_payout_at_it_but_sends_one_below(
    console_server: ConsoleServer, shop: SignedClient
) -> None:
    merchant_id = shop.credentials.merchant_id
    support, _ = signed_in(console_server, Role.SUPPORT)
    support.get(f"/console/merchants/{merchant_id}")
    assert support.post(f"/console/merchants/{merchant_id}/payout-review",
                        {"review_threshold": "1", "reason": "try"}).status_code == 403
    support.close()
    finance, staff = signed_in(console_server, Role.FINANCE)
    assert 'id="payout-review"' in finance.get(f"/console/merchants/{merchant_id}").text
    assert finance.post(f"/console/merchants/{merchant_id}/payout-review",
                        {"review_threshold": "0", "reason": "typo"}).status_code == 400
    saved = finance.post(f"/console/merchants/{merchant_id}/payout-review",
                         {"review_threshold": "1000.00", "reason": "large payouts need four eyes"})
    assert saved.status_code == 303
    assert "¥1,000.00 or more wait for review" in finance.get(f"/console/merchants/{merchant_id}").text
    [row] = audit_rows(console_server, "merchant.payout_review", merchant_id)
    assert row.operator == staff.username
    assert (row.before, row.after) == ({"review_threshold_minor": None}, {"review_threshold_minor": THRESHOLD_MINOR})
    before = available(shop)

    below = shop.post("/v1/payouts", json={
        "out_payout_no": "REVIEW-BELOW", "amount": THRESHOLD_MINOR - 1, "currency": "CNY", "purpose": "货款结算",
        "account": {"bank": WANG_FANG_HBB[0], "account_no": WANG_FANG_HBB[1], "account_name": WANG_FANG_HBB[2]},
    }).json()
    held = hold(console_server, shop, THRESHOLD_MINOR)

    assert below["status"] == "created"
    # Both reserve their money at creation: the held one cannot be spent twice while it waits.
    assert available(shop) == before - 2 * THRESHOLD_MINOR + 1
    assert run_payout_jobs(console_server)["payout_dispatch"] == 1
    assert status_of(shop, held["id"]) == "pending_review"
    assert status_of(shop, below["id"]) != "created"
    overview = finance.get("/console")
    assert '<a href="/console/payouts/review">' in overview.text
    queue = finance.get("/console/payouts/review")
    assert f'data-payout="{held["id"]}"' in queue.text
    assert f'data-payout="{below["id"]}"' not in queue.text
    assert WANG_FANG_HBB[1] not in queue.text
    finance.close()


def test_an_approved_payout_is_batched_and_paid_at_the_bank_and_a_second_approval_changes_nothing(
    console_server: ConsoleServer, shop: SignedClient, payout_world: PayoutWorld
) -> None:
    held = hold(console_server, shop, 150_000)
    card_before = payout_world.balance("HBB", WANG_FANG_HBB[1])
    finance, staff = signed_in(console_server, Role.FINANCE)
    page = finance.get(f"/console/payouts/{held['id']}")
    assert 'id="approve"' in page.text
    assert 'id="reject"' in page.text

    approved = finance.post(f"/console/payouts/{held['id']}/approve", {"reason": ""})
    again = finance.post(f"/console/payouts/{held['id']}/approve", {"reason": "double click"})

    assert approved.status_code == 303
    assert again.status_code == 400
    assert "already approved" in again.text
    assert status_of(shop, held["id"]) == "created"
    [row] = audit_rows(console_server, "payout.approve", held["id"])
    assert (row.operator, row.reason) == (staff.username, "approved in review")
    assert (row.before["status"], row.after["status"]) == ("pending_review", "created")
    run_payout_jobs(console_server)
    if status_of(shop, held["id"]) != "succeeded":
        console_server.clock.advance(timedelta(minutes=3))
        run_payout_jobs(console_server)
    assert status_of(shop, held["id"]) == "succeeded"
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == card_before + 150_000
    events = [t.event for t in payouts.payout_transitions_of(console_server.container.uow, held["id"])]
    assert events[:3] == ["created", "approved", "batched"]
    assert ledger.verify_ledger(console_server.container.uow).is_sound
    finance.close()


def test_a_rejected_payout_gives_the_money_back_tells_the_merchant_and_support_may_not_decide(
    console_server: ConsoleServer, shop: SignedClient
) -> None:
    before = available(shop)
    held = hold(console_server, shop, 300_000)
    assert available(shop) == before - 300_000
    support, _ = signed_in(console_server, Role.SUPPORT)
    assert support.get(f"/console/payouts/{held['id']}").status_code == 403
    assert support.post(f"/console/payouts/{held['id']}/approve", {"reason": "ok"}).status_code == 403
    assert support.post(f"/console/payouts/{held['id']}/reject", {"reason": "no"}).status_code == 403
    support.close()
    finance, staff = signed_in(console_server, Role.FINANCE)
    finance.get(f"/console/payouts/{held['id']}")
    assert finance.post(f"/console/payouts/{held['id']}/reject", {"reason": " "}).status_code == 400
    assert status_of(shop, held["id"]) == "pending_review"

    rejected = finance.post(f"/console/payouts/{held['id']}/reject", {"reason": "payee not on the contract"})
    late_approval = finance.post(f"/console/payouts/{held['id']}/approve", {"reason": ""})

    assert rejected.status_code == 303
    assert late_approval.status_code == 400
    assert "already rejected" in late_approval.text
    shown = shop.get(f"/v1/payouts/{held['id']}").json()
    assert (shown["status"], shown["failure_code"]) == ("failed", "rejected_in_review")
    assert shown["failed_at"]
    assert "payee not on the contract" not in str(shown)
    assert available(shop) == before
    assert ledger.verify_ledger(console_server.container.uow).is_sound
    events = shop.get("/v1/events?type=payout.failed&limit=100").json()["data"]
    [event] = [e for e in events if e["data"]["id"] == held["id"]]
    assert (event["data"]["status"], event["data"]["failure_code"]) == ("failed", "rejected_in_review")
    [row] = audit_rows(console_server, "payout.reject", held["id"])
    assert (row.operator, row.reason, row.after["failure_code"]) == (
        staff.username, "payee not on the contract", "rejected_in_review")
    assert audit_rows(console_server, "payout.approve", held["id"]) == []
    # Never sent: the dispatcher has nothing of it, and the batch list does not name it.
    run_payout_jobs(console_server)
    assert shop.get(f"/v1/payouts/{held['id']}").json()["batch_id"] is None
    finance.close()


def test_an_approval_racing_a_rejection_lets_exactly_one_win(
    console_server: ConsoleServer, shop: SignedClient
) -> None:
    container = console_server.container
    before = available(shop)
    held = hold(console_server, shop, 200_000)
    reviewers = []
    for _ in range(2):
        staff = make_staff(container, Role.FINANCE)
        with container.uow() as uow:
            operator = uow.operators.get(staff.username)
        assert operator is not None
        reviewers.append(operator)
    tools = console_tools(container)
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def decide(name: str, call: Any) -> None:
        start.wait()
        try:
            call()
            outcomes[name] = "won"
        except Conflict as lost:
            outcomes[name] = lost.message

    def approve() -> None:
        console.approve_payout(container.uow, tools, reviewers[0], held["id"], note="looks fine")

    def reject() -> None:
        console.reject_payout(container.uow, tools, reviewers[1], held["id"], reason="looks wrong")

    racers = [threading.Thread(target=decide, args=("approve", approve)),
              threading.Thread(target=decide, args=("reject", reject))]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=30)

    assert sorted(outcomes) == ["approve", "reject"]
    assert list(outcomes.values()).count("won") == 1
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    loser_message = outcomes["reject" if winner == "approve" else "approve"]
    assert "already" in loser_message
    decided = [r for action in ("payout.approve", "payout.reject")
               for r in audit_rows(console_server, action, held["id"])]
    assert len(decided) == 1
    status = status_of(shop, held["id"])
    if winner == "approve":
        assert status == "created"
        assert available(shop) == before - 200_000
    else:
        assert status == "failed"
        assert available(shop) == before
    assert ledger.verify_ledger(container.uow).is_sound
