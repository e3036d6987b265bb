"""The daily aggregates: kept current by the job, equal to a full scan, never counted twice.

Every test runs on SQLite and PostgreSQL against real payments, refunds and transitions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, update

from tianpay.adapters.db.tables import statistics_watermarks
from tianpay.domain.payment import PaymentMethod, PaymentStatus
from tianpay.domain.statistics import NO_BANK, DailyStats, StatsKey, business_date_of, day_bounds, days_between
from tianpay.domain.wallet import TOP_UP_MERCHANT_ID, WALLET_BANK
from tianpay.ports.payments import Transition
from tianpay.services import statistics

from .conftest import MARGIN, Shop, play_two_days

DAY_1, DAY_2 = date(2026, 11, 27), date(2026, 11, 28)


def stored(shop: Shop) -> list[DailyStats]:
    with shop.uow() as uow:
        return list(uow.statistics.daily(None, DAY_1 - timedelta(days=1), DAY_2 + timedelta(days=1)))


def row(shop: Shop, merchant_id: str, day: date, method: str, bank: str) -> DailyStats:
    found = [r for r in stored(shop) if r.key == StatsKey(merchant_id, day, method, bank, "CNY")]
    assert len(found) == 1, f"no single row for {merchant_id} {day} {method} {bank}: {stored(shop)}"
    return found[0]


def test_business_dates_are_shanghai_calendar_days() -> None:
    start, end = day_bounds(DAY_1)
    assert (start.isoformat(), end.isoformat()) == ("2026-11-26T16:00:00+00:00", "2026-11-27T16:00:00+00:00")
    assert business_date_of(start) == DAY_1
    assert business_date_of(end - timedelta(microseconds=1)) == DAY_1
    assert business_date_of(end) == DAY_2
    assert days_between(DAY_1, DAY_2) == [DAY_1, DAY_2]
    assert days_between(DAY_2, DAY_1) == []


def test_the_job_keeps_figures_that_equal_a_full_scan_after_payments_and_refunds(shop: Shop) -> None:
    made = play_two_days(shop)
    assert shop.refresh() > 0
    assert statistics.verify_statistics(shop.uow, DAY_1, DAY_2) == []

    wallet_day_1 = row(shop, shop.merchant_id, DAY_1, "wallet", WALLET_BANK)
    paid = [made["wallet_1"], made["wallet_2"]]
    assert (wallet_day_1.payment_count, wallet_day_1.succeeded_count) == (2, 2)
    assert wallet_day_1.succeeded_minor == 8_000
    assert wallet_day_1.fee_minor == sum(p.fee_amount.minor for p in paid) > 0
    assert wallet_day_1.refund_count == 0

    # The refunds count on the day they succeeded, under the payments' method and bank.
    wallet_day_2 = row(shop, shop.merchant_id, DAY_2, "wallet", WALLET_BANK)
    assert (wallet_day_2.payment_count, wallet_day_2.succeeded_minor) == (1, 4_200)
    assert (wallet_day_2.refund_count, wallet_day_2.refunded_minor) == (2, 6_000)
    assert wallet_day_2.fee_returned_minor > 0
    assert wallet_day_2.net_minor == (
        4_200 - made["next_day"].fee_amount.minor - 6_000 + wallet_day_2.fee_returned_minor
    )

    # A cashier payment counts under the bank the payer chose; an unpaid one under no bank.
    jhb = row(shop, shop.merchant_id, DAY_1, "cashier", "JHB")
    assert (jhb.payment_count, jhb.succeeded_count, jhb.succeeded_minor) == (1, 1, 8_000)
    unpaid = row(shop, shop.merchant_id, DAY_1, "cashier", NO_BANK)
    assert (unpaid.payment_count, unpaid.succeeded_count, unpaid.open_count) == (1, 0, 1)
    closed = row(shop, shop.merchant_id, DAY_1, "online_banking", "HBB")
    assert (closed.payment_count, closed.closed_count, closed.succeeded_minor) == (1, 1, 0)
    failed = row(shop, shop.merchant_id, DAY_1, "quick_pay", NO_BANK)
    assert made["failed_jhb"].status is PaymentStatus.FAILED
    assert (failed.payment_count, failed.failed_count) == (1, 1)

    # Each merchant has its own rows; the wallet top-up is the platform's own merchant's.
    other = row(shop, shop.other_merchant_id, DAY_1, "cashier", "HBB")
    assert (other.payment_count, other.succeeded_minor) == (1, 9_900)
    assert row(shop, TOP_UP_MERCHANT_ID, DAY_1, "online_banking", "HBB").succeeded_minor == 100_000


def test_running_the_job_between_every_step_ends_with_the_same_figures_as_one_run(shop: Shop) -> None:
    shop.refresh()
    play_two_days(shop)
    shop.refresh()
    # More changes after a run: the touched days are recomputed, nothing is added on top.
    shop.paid_from_wallet(shop.create(700, PaymentMethod.WALLET))
    shop.refresh()
    assert statistics.verify_statistics(shop.uow, DAY_1, DAY_2) == []
    assert row(shop, shop.merchant_id, DAY_2, "wallet", WALLET_BANK).succeeded_minor == 4_200 + 700


def test_a_rerun_changes_nothing_even_from_a_watermark_reset_to_zero(shop: Shop, engine: Engine) -> None:
    play_two_days(shop)
    shop.refresh()
    before = stored(shop)
    assert shop.refresh() == 0
    assert stored(shop) == before
    with engine.begin() as connection:
        connection.execute(update(statistics_watermarks).values(settled_id=0, seen_id=0, pending_count=0))
    assert shop.refresh() > 0
    assert stored(shop) == before
    assert statistics.rebuild_statistics(shop.uow, DAY_1, DAY_2, DAY_2) == len(before)
    assert stored(shop) == before


def test_changes_younger_than_the_margin_are_read_again_until_they_settle(shop: Shop, engine: Engine) -> None:
    play_two_days(shop)
    # Read at the moment of the last change: nothing is settled yet, so everything stays pending.
    assert statistics.refresh_statistics(shop.uow, shop.clock.now(), settle_margin=MARGIN) > 0
    with engine.connect() as connection:
        marks = {r.source: r for r in connection.execute(statistics_watermarks.select())}
    payments_mark = marks["payment_transitions"]
    assert payments_mark.seen_id > payments_mark.settled_id
    assert payments_mark.pending_count > 0
    assert shop.refresh() == 0
    with engine.connect() as connection:
        marks = {r.source: r for r in connection.execute(statistics_watermarks.select())}
    settled = marks["payment_transitions"]
    assert (settled.settled_id, settled.pending_count) == (settled.seen_id, 0)
    assert statistics.verify_statistics(shop.uow, DAY_1, DAY_2) == []


def test_a_change_committed_late_below_the_watermark_is_still_counted(shop: Shop, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: no transition id can commit out of order there")
    early = shop.create(1_234, PaymentMethod.CASHIER)
    shop.refresh()
    # A slow transaction takes a transition id and closes the payment, but has not committed when
    # another transaction commits a higher id and the job reads past both.
    with shop.uow() as slow:
        now = shop.clock.now()
        assert slow.payments.update(replace(early, status=PaymentStatus.CLOSED, updated_at=now),
                                    expected=PaymentStatus.CREATED)
        slow.payments.record_transition(
            Transition(early.id, None, "created", "closed", "closed_by_merchant", "a slow commit", now)
        )
        shop.create(4_321, PaymentMethod.CASHIER)
        assert statistics.refresh_statistics(shop.uow, now, settle_margin=MARGIN) == 1
        assert row(shop, shop.merchant_id, DAY_1, "cashier", NO_BANK).closed_count == 0
        slow.commit()
    assert shop.refresh() == 0
    assert row(shop, shop.merchant_id, DAY_1, "cashier", NO_BANK).closed_count == 1
    assert statistics.verify_statistics(shop.uow, DAY_1, DAY_1) == []


def test_a_rebuild_rewrites_only_the_days_it_is_given(shop: Shop) -> None:
    play_two_days(shop)
    shop.refresh()
    day_2_rows = [r for r in stored(shop) if r.key.business_date == DAY_2]
    with shop.uow() as uow:
        uow.statistics.replace_day(DAY_1, [])
        uow.commit()
    statistics.rebuild_statistics(shop.uow, DAY_1, DAY_1, DAY_2)
    assert [r for r in stored(shop) if r.key.business_date == DAY_2] == day_2_rows
    assert statistics.verify_statistics(shop.uow, DAY_1, DAY_2) == []


def test_the_platform_view_sums_every_merchant_and_reads_fee_income_from_the_ledger(shop: Shop) -> None:
    made = play_two_days(shop)
    shop.refresh()
    view = statistics.platform_statistics(shop.uow, DAY_1, DAY_2)
    cashier_hbb = [v for v in view.volume if (v.method, v.bank) == ("cashier", "HBB")]
    assert [(v.payment_count, v.succeeded_minor) for v in cashier_hbb] == [(1, 9_900)]
    wallet = next(v for v in view.volume if v.method == "wallet")
    assert (wallet.payment_count, wallet.succeeded_minor, wallet.refunded_minor) == (3, 12_200, 6_000)
    jhb = next(c for c in view.channels if c.bank == "JHB")
    assert (jhb.attempt_count, jhb.succeeded_count, jhb.failed_count) == (2, 1, 1)
    assert jhb.success_rate_bps == 5_000
    # The ledger's fee income is every fee charged less every fee given back with a refund.
    rows = stored(shop)
    assert view.fee_income_minor == sum(r.fee_minor - r.fee_returned_minor for r in rows) > 0
    assert made["cashier_jhb"].fee_amount.minor > 0
    assert view.bank_cost_minor == 0
    assert view.margin_minor == view.fee_income_minor
