"""How every fault scenario ends: converge, close two business days, and check the books and the webhooks.

The day the traffic ran is reconciled at every bank with no unexplained difference; the merchant is
settled and paid out (the payout is reconciled on the next day's statements); ``ledger verify`` is
green; each bank's reserve equals the platform's ``bank:B:reserve``; and the merchant received every
event the platform recorded for it, by id, with no fact announced twice under different ids.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tests.faults.cluster import FINAL_PAYMENT, FINAL_PAYOUT, FINAL_REFUND, Cluster, wait_until
from tianpay.domain.errors import NotFound

CONVERGE_S = 90.0


@dataclass
class Verdict:
    """What the closing found; the scenario's own assertions read it."""

    traffic_date: date
    reconciliations: dict[tuple[str, date], dict[str, Any]] = field(default_factory=dict)
    settlements: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    def events_of(self, event_type: str) -> list[str]:
        """Subject ids of the events of one type the merchant received."""
        return sorted(str(e["data"]["id"]) for e in self.events.values() if e["type"] == event_type)


def converge(cluster: Cluster, timeout_s: float = CONVERGE_S) -> None:
    """Waits until no payment is processing, every refund and payout is final and every event delivered.

    Nothing is tolerated in flight: a record whose bank never took it is resolved by the bank's
    query once its window has passed (docs/faults.md).
    """

    def unfinished() -> list[str]:
        # An order still ``created`` moves no money (nobody is paying it); it closes when it expires.
        left = [f"payment {i} {s}" for i, s in cluster.statuses("payments").items()
                if s not in FINAL_PAYMENT and s != "created"]  # fmt: skip
        left += [f"refund {i} {s}" for i, s in cluster.statuses("refunds").items() if s not in FINAL_REFUND]
        left += [f"payout {i} {s}" for i, s in cluster.statuses("payouts").items() if s not in FINAL_PAYOUT]
        left += [f"event {i} {s}" for i, s in cluster.statuses("events").items() if s != "delivered"]
        return left

    try:
        wait_until(lambda: not unfinished(), timeout_s=timeout_s, what="the platform converging")
    except AssertionError as exc:
        open_items = unfinished()[:10]
        attempts = cluster.rows(
            "SELECT payment_id, bank, channel, status, failure_code, query_count FROM payment_attempts"
            " WHERE payment_id IN (SELECT id FROM payments WHERE status = 'processing')"
        )
        raise AssertionError(f"{exc}; still open: {open_items}; attempts in flight: {attempts}") from None


def close_the_day(
    cluster: Cluster,
    *,
    open_until_expiry: bool = False,
    after_midnight: Callable[[date], None] | None = None,
) -> Verdict:
    """Converges, ends the day, reconciles, settles, pays out, ends the next day and reconciles it too.

    ``open_until_expiry``: the scenario left orders or refunds a bank never took (magic 97, an
    outage); a bank's "no such order" becomes final only after the order's expiry or the refund's
    window, which moving past midnight brings about, so they are waited for after the move, not before.
    ``after_midnight`` runs right after the day ended, while the workers' daily schedule (reconcile,
    settle, pay out) is under way: the kill scenarios kill processes there.
    """
    if not open_until_expiry:
        converge(cluster)
    ended = cluster.advance_past_midnight()
    verdict = Verdict(traffic_date=ended)
    if after_midnight is not None:
        after_midnight(ended)
    converge(cluster)
    _reconcile_every_bank(cluster, ended, verdict)
    # The worker's daily schedule settles the date and pays the merchant out once every bank is done.
    try:
        wait_until(lambda: _settled_and_paid(cluster, ended), timeout_s=CONVERGE_S,
                   what=f"the settlement of {ended} being paid out")  # fmt: skip
    except AssertionError as exc:
        found = cluster.rows("SELECT id, status, net_minor, payout_id FROM settlements")
        runs = cluster.rows("SELECT bank, business_date, status FROM reconciliation_runs")
        payouts = cluster.rows("SELECT id, status FROM payouts")
        raise AssertionError(f"{exc}: settlements {found}, runs {runs}, payouts {payouts}") from None
    converge(cluster)
    next_day = cluster.advance_past_midnight()
    _reconcile_every_bank(cluster, next_day, verdict)
    converge(cluster)
    verdict.settlements = cluster.rows("SELECT * FROM settlements ORDER BY business_date, merchant_id")
    verdict.events = assert_books_and_webhooks(cluster)
    return verdict


def _reconcile_every_bank(cluster: Cluster, day: date, verdict: Verdict) -> None:
    # One operator process per bank, side by side, as the worker's own runs of the date may be too.
    banks = cluster.statement_banks()
    with ThreadPoolExecutor(max_workers=len(banks)) as pool:
        reports = dict(zip(banks, pool.map(lambda bank: cluster.reconcile(bank, day), banks), strict=True))
    for bank, report in reports.items():
        verdict.reconciliations[(bank, day)] = report
        assert report["exceptions"] == 0, f"{bank} {day} left unexplained differences: {report}"
        assert report["suspense_minor"] == 0, f"{bank} {day} put money in suspense: {report}"


def _settled_and_paid(cluster: Cluster, day: date) -> bool:
    """Every scenario's traffic day has succeeded payments, so its settlement must exist and be paid."""
    settlements = cluster.rows("SELECT status, net_minor FROM settlements WHERE business_date = :d", d=day.isoformat())
    return settlements != [] and all(row["status"] == "paid" for row in settlements if row["net_minor"] > 0)


def assert_books_and_webhooks(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """``ledger verify``, reserves equal at bank and platform, and the merchant's webhooks by id."""
    verified = cluster.ledger_verify()
    assert verified["ok"], f"ledger verify: {verified['problem']}"
    for bank in cluster.bank_urls:
        state = cluster.bank_state(bank)
        reserve = next(a["balance_minor"] for a in state["accounts"] if a["kind"] == "reserve")
        opening = 100_000_000  # every reserve opens with ¥1,000,000.00 (docs/banks/simulators.md)
        assert reserve - opening == _ledger_balance(cluster, f"bank:{bank}:reserve"), f"{bank}'s reserve"
    recorded = {row["id"] for row in cluster.rows("SELECT id FROM events WHERE merchant_id = :m",
                                                   m=cluster.merchant["merchant_id"])}  # fmt: skip
    received = cluster.receiver.events_by_id()
    assert set(received) == recorded, (
        f"missing: {sorted(recorded - set(received))[:5]}, unknown: {sorted(set(received) - recorded)[:5]}"
    )
    assert cluster.receiver.duplicates_of_the_same_fact() == {}
    assert cluster.receiver.unverified() == 0
    return received


def _ledger_balance(cluster: Cluster, code: str) -> int:
    with cluster.container.uow() as uow:
        try:
            return uow.ledger.balance(code).minor
        except NotFound:
            return 0


def assert_every_success_announced_once(cluster: Cluster, verdict: Verdict) -> None:
    """Each succeeded payment, refund and payout was announced exactly once, and nothing else was."""
    for table, event_type in (("payments", "payment.succeeded"), ("refunds", "refund.succeeded"),
                              ("payouts", "payout.succeeded")):  # fmt: skip
        succeeded = sorted(i for i, s in cluster.statuses(table).items() if s in ("succeeded", "returned"))
        # A returned payout had succeeded first, and said so.
        assert verdict.events_of(event_type) == succeeded, event_type
