"""Bank timeouts with and without money moved (magic 96, 97), and a bank outage with failover.

A timeout is queried, never re-sent: the 96s end succeeded (the bank moved the money), the 97s fail
once the bank still has no record of them after its window, and nothing is paid twice. During an HBB
outage quick pay fails over to the member's JHB card once the breaker has opened; a refusal (HBB's
signed 91) fails over at once; the tries the outage swallowed fail once HBB's "no such order" is final.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.cluster import running_cluster
from tests.faults.judge import assert_every_success_announced_once, close_the_day
from tests.faults.traffic import member_with_cards, pay_at_cashier, quick_pay, refund_when_paid

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_timeouts_are_queried_never_resent_and_the_day_closes_cleanly(tmp_path: Path, pg_url: str) -> None:
    with running_cluster(tmp_path, pg_url) as cluster:
        # Payments whose bank page never answers: 96 moved the money, 97 did not.
        moved = [pay_at_cashier(cluster, 10_096, "HBB"), pay_at_cashier(cluster, 20_096, "JHB")]
        unmoved = [pay_at_cashier(cluster, 10_097, "HBB"), pay_at_cashier(cluster, 20_097, "JHB")]
        # Refunds whose bank call times out (the platform's own 1 s limit): 96 refunded, 97 not.
        paid = [pay_at_cashier(cluster, 50_000, bank) for bank in ("HBB", "JHB")]
        refunded = [refund_when_paid(cluster, payment, 1_096) for payment in paid]
        not_refunded = [refund_when_paid(cluster, payment, 1_097) for payment in paid]
        # A refund the bank never took is queried, never re-sent; once the bank still has no record of
        # it 30 minutes (of the platform's clock) after it was sent, it fails and its money comes back
        # (docs/refunds.md "Unknown outcomes"). Moving past midnight brings that about.
        never_taken = frozenset(r for r in not_refunded if r)
        verdict = close_the_day(cluster, open_until_expiry=True)
        payments, refunds = cluster.statuses("payments"), cluster.statuses("refunds")
        # HBB moves the money of a 96 and then hangs; whatever each bank did, the platform agrees with
        # its books: a payment succeeded exactly when the bank holds a transfer of its amount.
        assert payments[moved[0]] == "succeeded"
        for payment, amount, bank in zip(moved + unmoved, (10_096, 20_096, 10_097, 20_097),
                                         ("HBB", "JHB", "HBB", "JHB"), strict=True):  # fmt: skip
            at_bank = [t for t in cluster.bank_state(bank)["transfers"] if t["amount_minor"] == amount]
            assert (payments[payment] == "succeeded") == (len(at_bank) == 1), (payment, payments[payment], at_bank)
        assert [refunds[r] for r in refunded if r] == ["succeeded", "succeeded"]
        assert len(never_taken) == 2
        assert all(refunds[r] == "failed" for r in never_taken), {r: refunds[r] for r in never_taken}
        assert sorted(verdict.events_of("refund.failed")) == sorted(never_taken)
        # Nothing was sent twice: each bank holds exactly one refund transfer, the 96's.
        for bank in ("HBB", "JHB"):
            kinds = [t["kind"] for t in cluster.bank_state(bank)["transfers"]]
            assert sum("refund" in kind for kind in kinds) == 1, (bank, kinds)
        assert_every_success_announced_once(cluster, verdict)


def test_an_hbb_outage_fails_quick_pay_over_to_jhb_through_the_breaker(tmp_path: Path, pg_url: str) -> None:
    env = {"TIANPAY_BREAKER_FAILURE_THRESHOLD": "2", "TIANPAY_BREAKER_COOL_DOWN_S": "600"}
    with running_cluster(tmp_path, pg_url, env=env) as cluster:
        _member, cards = member_with_cards(cluster)
        # A refusal is certain ("not processed"): the payment fails over to JHB at once.
        cluster.bank_faults("HBB", refuse_new_orders=True)
        refused_then_paid = quick_pay(cluster, cards["HBB"], 3_000)
        # A dead bank (HTTP 503) is not certain: no failover, until the breaker opens and skips HBB.
        cluster.bank_faults("HBB", reset=True, outage=True)
        while_open = [quick_pay(cluster, cards["HBB"], 4_000 + n) for n in range(4)]
        cluster.bank_faults("HBB", reset=True)
        # The tries HBB's outage swallowed before the breaker opened are unknown: HBB never saw them.
        # They are queried, never re-sent, and HBB's "no such transaction" becomes final after the
        # payment's expiry (docs/gateway.md "Absent orders"), which moving past midnight brings about.
        swallowed = frozenset(p for p, s in cluster.statuses("payments").items() if s == "processing")
        assert swallowed
        assert swallowed <= set(while_open)
        verdict = close_the_day(cluster, open_until_expiry=True)
        payments = cluster.statuses("payments")
        assert all(payments[p] == "failed" for p in swallowed), {p: payments[p] for p in swallowed}
        assert swallowed <= set(verdict.events_of("payment.failed"))
        failed_at_hbb = "SELECT payment_id, failure_code FROM payment_attempts WHERE bank = 'HBB' AND status = 'failed'"
        codes = {row["payment_id"]: row["failure_code"] for row in cluster.rows(failed_at_hbb)}
        assert {p: codes.get(p) for p in swallowed} == {p: "34" for p in swallowed}
        moved = [t["amount_minor"] for bank in ("HBB", "JHB") for t in cluster.bank_state(bank)["transfers"]]
        for number, payment in enumerate(while_open):
            assert (payments[payment] == "succeeded") == (moved.count(4_000 + number) == 1), payment
        assert payments[refused_then_paid] == "succeeded"
        assert payments[while_open[-1]] == "succeeded"
        banks = {row["payment_id"]: row["bank"] for row in cluster.rows(
            "SELECT payment_id, bank FROM payment_attempts WHERE status = 'succeeded'")}  # fmt: skip
        assert banks[refused_then_paid] == "JHB"
        assert banks[while_open[-1]] == "JHB"
        assert cluster.rows("SELECT state FROM channel_health WHERE channel LIKE 'hbb%'")[0]["state"] == "open"
        assert_every_success_announced_once(cluster, verdict)
