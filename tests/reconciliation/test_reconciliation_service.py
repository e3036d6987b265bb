"""Reconciliation runs on both databases: import, every outcome, parking across days, resolutions."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.domain.errors import Conflict
from tianpay.domain.ledger import PLATFORM_BANK_COST, PLATFORM_SUSPENSE, AccountSpec, bank_reserve, merchant_pending
from tianpay.domain.notifications import EventType
from tianpay.domain.payment import AttemptStatus, PaymentStatus
from tianpay.domain.reconciliation import ExceptionStatus, Outcome, ResolutionAction, judge_line
from tianpay.ports.reconciliation import JoinedLine
from tianpay.ports.statements import StatementItemKind
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.ledger import verify_ledger
from tianpay.services.reconciliation import (
    DailySchedule,
    ReconciliationPolicy,
    RunReport,
    StatementConflict,
    dates_due,
    download_statement,
    exceptions_of,
    finished_banks,
    import_statement,
    reconcile,
    reconcile_due,
    resolve_exception,
)

from .conftest import BUSINESS_DATE, Banks, LedgerBank, Row, paid, pos_paid, start_payment

COLLECTION = StatementItemKind.COLLECTION
NEXT_DAY = BUSINESS_DATE + timedelta(days=1)


def balances(uow_factory: UnitOfWorkFactory, *codes: str) -> dict[str, int]:
    # An account nobody has posted to yet does not exist: its balance is zero.
    with uow_factory() as uow:
        uow.ledger.ensure_accounts(_spec(code) for code in codes)
        found = uow.ledger.balances(list(codes))
    return {code: found[code].minor for code in codes}


def _spec(code: str) -> AccountSpec:
    fixed = {a.code: a for a in (PLATFORM_BANK_COST, PLATFORM_SUSPENSE)}
    if code in fixed:
        return fixed[code]
    kind, owner, _ = code.split(":")
    return bank_reserve(owner) if kind == "bank" else merchant_pending(owner)


def run(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, banks: Banks, bank: str,
    policy: ReconciliationPolicy, day: date = BUSINESS_DATE, worker: str = "w1",
) -> RunReport:
    return reconcile(uow_factory, clock, ids, banks, bank, day, policy=policy, worker_id=worker)


@pytest.fixture
def hbb() -> LedgerBank:
    return LedgerBank("HBB")


@pytest.fixture
def banks(hbb: LedgerBank) -> Banks:
    return Banks({"HBB": hbb})


def test_matched_lines_reconcile_and_their_charges_are_booked_once_to_bank_cost(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    for amount in (10_000, 25_000, 333):
        _, attempt_id = paid(uow_factory, clock, ids, amount)
        hbb.add(BUSINESS_DATE, Row(COLLECTION, f"Q-{attempt_id}", amount, max(1, amount // 1000), attempt_id))
    before = balances(uow_factory, "bank:HBB:reserve", "platform:bank_cost")
    clock.advance(timedelta(days=1))

    report = run(uow_factory, clock, ids, banks, "HBB", policy)

    assert report.status == "finished"
    assert report.summary["lines"] == 3
    assert report.summary["matched"] == 3
    assert report.summary["exceptions"] == 0
    assert report.summary["charges_minor"] == 10 + 25 + 1
    after = balances(uow_factory, "bank:HBB:reserve", "platform:bank_cost")
    assert after["bank:HBB:reserve"] == before["bank:HBB:reserve"] - 36
    assert after["platform:bank_cost"] == before["platform:bank_cost"] + 36
    assert finished_banks(uow_factory, BUSINESS_DATE) == frozenset({"HBB"})
    assert verify_ledger(uow_factory).problem is None


def test_rerunning_a_finished_date_changes_nothing_and_downloads_nothing(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    _, attempt_id = paid(uow_factory, clock, ids, 10_000)
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q1", 10_000, 10, attempt_id))
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q2", 777, 1, "att_unknown"))
    clock.advance(timedelta(days=1))
    first = run(uow_factory, clock, ids, banks, "HBB", policy)
    ledger_before = balances(uow_factory, "bank:HBB:reserve", "platform:suspense", "platform:bank_cost")

    again = run(uow_factory, clock, ids, banks, "HBB", policy, worker="w2")

    assert again.status == "already_finished"
    assert again.summary == first.summary
    assert balances(uow_factory, "bank:HBB:reserve", "platform:suspense", "platform:bank_cost") == ledger_before
    assert hbb.downloads == 1
    assert len(exceptions_of(uow_factory)) == 1


def test_a_lost_notification_is_made_good_from_the_statement_and_the_merchant_is_told(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    payment_id, attempt_id = start_payment(uow_factory, clock, ids, 10_098)
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q98", 10_098, 10, attempt_id))
    clock.advance(timedelta(days=1))

    report = run(uow_factory, clock, ids, banks, "HBB", policy)

    assert report.summary["made_good"] == 1
    assert report.summary["exceptions"] == 0
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id)
        attempt = uow.payments.get_attempt(attempt_id)
        events = uow.outbox.list_events(merchant, type=EventType.PAYMENT_SUCCEEDED, limit=10)
    assert payment is not None
    assert payment.status is PaymentStatus.SUCCEEDED
    assert attempt is not None
    assert attempt.status is AttemptStatus.SUCCEEDED
    assert attempt.bank_reference == "Q98"
    assert balances(uow_factory, "merchant:mch_recon:pending")["merchant:mch_recon:pending"] == 10_098 - 61
    assert [json.loads(event.body)["data"]["id"] for event in events.events] == [payment_id]
    assert verify_ledger(uow_factory).problem is None


def test_differences_go_to_suspense_and_open_one_exception_each(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    _, mismatched = paid(uow_factory, clock, ids, 10_000)
    _, duplicated = paid(uow_factory, clock, ids, 20_000)
    payment_id, failed = start_payment(uow_factory, clock, ids, 30_000)
    from tianpay.services.payments import record_attempt_failed

    record_attempt_failed(uow_factory, clock, payment_id, failed, failure_code="51")
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q1", 9_900, 10, mismatched))  # the bank credited ¥1.00 less
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q2", 20_000, 20, duplicated))
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q3", 20_000, 20, duplicated))  # the same item twice
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q4", 30_000, 30, failed))  # money for an attempt we failed
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q5", 4_200, 4, None))  # nothing to attribute it to
    hbb.add(BUSINESS_DATE, Row(StatementItemKind.FEE, "F1", -500))  # a charge of its own
    before = balances(uow_factory, "bank:HBB:reserve", "platform:suspense", "platform:bank_cost")
    clock.advance(timedelta(days=1))

    report = run(uow_factory, clock, ids, banks, "HBB", policy)

    summary = report.summary
    assert (summary["matched"], summary["amount_mismatch"], summary["duplicate"]) == (1, 1, 1)
    assert (summary["bank_only_failed"], summary["bank_only"], summary["charge_lines"]) == (1, 1, 1)
    assert summary["exceptions"] == 4
    assert summary["charges_minor"] == 10 + 20 + 20 + 30 + 4 + 500
    after = balances(uow_factory, "bank:HBB:reserve", "platform:suspense", "platform:bank_cost")
    # The ledger's reserve now moved exactly as the bank's did: every line's net amount.
    statement_net = sum(r.amount_minor - r.fee_minor for r in hbb.days[BUSINESS_DATE])
    booked_before = 10_000 + 20_000  # the two succeeded attempts were already in the reserve
    assert after["bank:HBB:reserve"] - before["bank:HBB:reserve"] == statement_net - booked_before
    # Suspense is an asset: the ¥1.00 short credit debits it, the surpluses credit it (owed to someone).
    assert after["platform:suspense"] - before["platform:suspense"] == 100 - 20_000 - 30_000 - 4_200
    kinds = sorted(e.kind for e in exceptions_of(uow_factory))
    assert kinds == ["amount_mismatch", "bank_only", "bank_only_failed", "duplicate"]
    assert all(e.status is ExceptionStatus.OPEN and e.entry_id for e in exceptions_of(uow_factory))
    assert verify_ledger(uow_factory).problem is None


def test_a_day_cut_item_is_parked_then_matched_on_the_next_days_statement(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    _, late = paid(uow_factory, clock, ids, 10_093)
    _, missing = paid(uow_factory, clock, ids, 5_000)
    hbb.add(BUSINESS_DATE, Row(StatementItemKind.FEE, "F0", -1))
    hbb.add(NEXT_DAY, Row(COLLECTION, "Q93", 10_093, 10, late))
    clock.advance(timedelta(days=1))

    first = run(uow_factory, clock, ids, banks, "HBB", policy)
    assert first.summary["parked"] == 2
    assert first.summary["exceptions"] == 0
    clock.advance(timedelta(days=1))
    suspense_before = balances(uow_factory, "platform:suspense")["platform:suspense"]
    second = run(uow_factory, clock, ids, banks, "HBB", policy, day=NEXT_DAY)

    assert second.summary["matched_cross_day"] == 1
    assert second.summary["short"] == 1
    assert second.summary["exceptions"] == 1
    [short] = exceptions_of(uow_factory)
    assert (short.kind, short.record_id, short.suspense_minor) == ("short", missing, 5_000)
    assert balances(uow_factory, "platform:suspense")["platform:suspense"] == suspense_before + 5_000
    assert verify_ledger(uow_factory).problem is None


def test_an_exception_is_resolved_with_a_new_entry_once_and_never_twice_differently(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q5", 4_200, 0, None))
    clock.advance(timedelta(days=1))
    run(uow_factory, clock, ids, banks, "HBB", policy)
    [exception] = exceptions_of(uow_factory)
    before = balances(uow_factory, "bank:HBB:reserve", "platform:suspense")

    resolved = resolve_exception(
        uow_factory, clock, exception.id, action="recovered", operator="finance1", reason="refunded to the payer"
    )
    again = resolve_exception(
        uow_factory, clock, exception.id, action=ResolutionAction.RECOVERED, operator="finance1", reason="again"
    )

    assert resolved.status is ExceptionStatus.RESOLVED
    assert resolved.resolved_by == "finance1"
    assert resolved.resolution_entry_id is not None
    assert again.resolution_entry_id == resolved.resolution_entry_id
    after = balances(uow_factory, "bank:HBB:reserve", "platform:suspense")
    assert after == {"bank:HBB:reserve": before["bank:HBB:reserve"] - 4_200, "platform:suspense": 0}
    with pytest.raises(Conflict):
        resolve_exception(uow_factory, clock, exception.id, action="write_off", operator="finance1", reason="x")
    assert verify_ledger(uow_factory).problem is None


def test_importing_the_same_file_again_is_a_no_op_and_another_file_is_refused(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, hbb: LedgerBank, tmp_path: Path,
) -> None:
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q1", 100, 1, "att_x"))
    downloaded = download_statement(hbb, BUSINESS_DATE, tmp_path)
    first = import_statement(uow_factory, clock, ids, hbb, downloaded, batch_size=2)
    again = import_statement(uow_factory, clock, ids, hbb, downloaded, batch_size=2)
    assert again.id == first.id
    assert first.line_count == 1
    assert len(first.sha256) == 64
    assert Path(first.path).is_relative_to(tmp_path / "HBB" / BUSINESS_DATE.isoformat())

    hbb.add(BUSINESS_DATE, Row(COLLECTION, "Q2", 200, 1, "att_y"))
    with pytest.raises(StatementConflict):
        import_statement(uow_factory, clock, ids, hbb, download_statement(hbb, BUSINESS_DATE, tmp_path / "other"))


def test_a_file_that_fails_its_own_totals_leaves_nothing_and_the_run_waits(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    for n in range(5):
        hbb.add(BUSINESS_DATE, Row(COLLECTION, f"Q{n}", 100 + n, 1, None))
    hbb.corrupt_total_by = 1
    clock.advance(timedelta(days=1))

    report = run(uow_factory, clock, ids, banks, "HBB", policy)

    assert report.status == "malformed"
    with uow_factory() as uow:
        assert uow.reconciliation.file_for("HBB", BUSINESS_DATE) is None
        pending = uow.reconciliation.get_run("HBB", BUSINESS_DATE)
    assert pending is not None
    assert pending.status.value == "pending"
    assert pending.next_try_at is not None
    assert finished_banks(uow_factory, BUSINESS_DATE) == frozenset()


def test_a_statement_not_published_yet_is_tried_again_later(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    report = run(uow_factory, clock, ids, banks, "HBB", policy)
    assert report.status == "not_ready"
    hbb.add(BUSINESS_DATE, Row(StatementItemKind.FEE, "F", -3))
    assert run(uow_factory, clock, ids, banks, "HBB", policy).status == "finished"


def test_a_run_held_by_one_worker_is_left_alone_by_another(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    hbb.add(BUSINESS_DATE, Row(StatementItemKind.FEE, "F", -3))
    run(uow_factory, clock, ids, banks, "HBB", policy)  # creates the run and finishes it
    with uow_factory() as uow:
        from tianpay.domain.reconciliation import RunStatus
        from tianpay.ports.reconciliation import ReconciliationRun

        uow.reconciliation.add_run(
            ReconciliationRun("rcn_other", "HBB", NEXT_DAY, RunStatus.PENDING, None, {}, None, None, None, None,
                              None, None, clock.now())
        )
        assert uow.reconciliation.claim_run("rcn_other", "w1", clock.now(), clock.now() + timedelta(minutes=5))
        uow.commit()
    hbb.add(NEXT_DAY, Row(StatementItemKind.FEE, "F", -3))

    assert run(uow_factory, clock, ids, banks, "HBB", policy, day=NEXT_DAY, worker="w2").status == "busy"
    clock.advance(timedelta(minutes=6))
    assert run(uow_factory, clock, ids, banks, "HBB", policy, day=NEXT_DAY, worker="w2").status == "finished"


def test_the_daily_job_reconciles_every_due_date_once_after_the_delay(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    banks: Banks, policy: ReconciliationPolicy,
) -> None:
    schedule = DailySchedule(delay_s=3600, window_days=2)
    hbb.add(BUSINESS_DATE, Row(StatementItemKind.FEE, "F", -3))
    clock.advance(timedelta(hours=14, minutes=30))  # 00:30 the next day in Shanghai: too early
    assert dates_due(clock.now(), schedule) == [BUSINESS_DATE - timedelta(days=1)]
    clock.advance(timedelta(hours=1))
    assert dates_due(clock.now(), schedule)[-1] == BUSINESS_DATE

    done = reconcile_due(uow_factory, clock, ids, banks, clock.now(), policy=policy, schedule=schedule, worker_id="w")
    again = reconcile_due(uow_factory, clock, ids, banks, clock.now(), policy=policy, schedule=schedule, worker_id="w")

    assert (done, again) == (1, 0)  # the day before has no statement: it waits, retried later
    assert finished_banks(uow_factory, BUSINESS_DATE) == frozenset({"HBB"})
    with uow_factory() as uow:
        run_row = uow.reconciliation.get_run("HBB", BUSINESS_DATE)
    assert run_row is not None
    assert run_row.summary["charges_minor"] == 3


def test_the_sql_fast_path_counts_exactly_the_lines_the_domain_calls_matched(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    tmp_path: Path,
) -> None:
    _, matched_a = paid(uow_factory, clock, ids, 10_000)
    _, matched_b = paid(uow_factory, clock, ids, 20_000)
    _, mismatched = paid(uow_factory, clock, ids, 30_000)
    _, in_flight = start_payment(uow_factory, clock, ids, 40_000)
    _, duplicated = paid(uow_factory, clock, ids, 50_000)
    _, parked = paid(uow_factory, clock, ids, 60_000)
    _, elsewhere = paid(uow_factory, clock, ids, 70_000, bank="JHB")
    rows = [
        Row(COLLECTION, "Q1", 10_000, 10, matched_a), Row(COLLECTION, "Q2", 20_000, 20, matched_b),
        Row(COLLECTION, "Q3", 29_999, 30, mismatched), Row(COLLECTION, "Q4", 40_000, 40, in_flight),
        Row(COLLECTION, "Q5", 50_000, 50, duplicated), Row(COLLECTION, "Q6", 50_000, 50, duplicated),
        Row(COLLECTION, "Q7", 60_000, 60, parked), Row(COLLECTION, "Q8", 70_000, 70, elsewhere),
        Row(StatementItemKind.REFUND, "Q9", -10_000, 0, matched_a), Row(COLLECTION, "Q10", 1, 0, None),
        Row(StatementItemKind.FEE, "F", -5),
    ]
    for row in rows:
        hbb.add(BUSINESS_DATE, row)
    imported = import_statement(uow_factory, clock, ids, hbb, download_statement(hbb, BUSINESS_DATE, tmp_path))
    with uow_factory() as uow:
        from tianpay.domain.reconciliation import ParkedStatus, RecordKind, RunStatus
        from tianpay.ports.reconciliation import ParkedRecord, ReconciliationRun

        uow.reconciliation.add_run(
            ReconciliationRun("rcn_x", "HBB", BUSINESS_DATE, RunStatus.PENDING, None, {}, None, None, None, None,
                              None, None, clock.now())
        )
        uow.reconciliation.park(
            ParkedRecord("HBB", parked, RecordKind.ATTEMPT, BUSINESS_DATE, 60_000, ParkedStatus.PARKED), "rcn_x",
            clock.now(),
        )
        uow.commit()
    with uow_factory() as uow:
        owners = uow.reconciliation.duplicate_owners(imported.id)
        duplicated_refs = {key.split(":", 1)[1] for key in owners}
        every = uow.reconciliation.joined_lines(
            imported.id, "HBB", after_line_no=0, limit=100, duplicates=duplicated_refs, include_plain=True
        )
        rest = uow.reconciliation.joined_lines(
            imported.id, "HBB", after_line_no=0, limit=100, duplicates=duplicated_refs
        )
        plain = uow.reconciliation.count_plain_matches(imported.id, "HBB", duplicated_refs)

    def is_duplicate(line: JoinedLine) -> bool:
        owner = owners.get(f"{line.kind.value}:{line.match_ref}")
        return owner is not None and owner != (imported.id, line.line_no)

    judged = {line.line_no: judge_line(line.kind, line.amount_minor, line.record, is_duplicate=is_duplicate(line))
              for line in every}
    matched_lines = {n for n, j in judged.items() if j.outcome is Outcome.MATCHED}
    counted_in_sql = set(judged) - {line.line_no for line in rest}
    assert len(every) == len(rows)
    # Every line the SQL counts is one the domain matches; every other line goes to the domain (the
    # first of two lines for one record too, which the domain then matches).
    assert plain == len(counted_in_sql) == 2
    assert counted_in_sql < matched_lines
    assert matched_lines - counted_in_sql == {5}


def test_pos_money_is_matched_by_the_switchs_rrn_on_hbbs_statement_and_on_the_switchs_file(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    policy: ReconciliationPolicy,
) -> None:
    tcs = LedgerBank("TCS")
    banks = Banks({"HBB": hbb, "TCS": tcs})
    _, settled = pos_paid(uow_factory, clock, ids, 8_800, rrn="000000000001")
    voided_payment, _ = pos_paid(uow_factory, clock, ids, 4_400, rrn="000000000002")
    with uow_factory() as uow:
        # What the POS front records for a void (services/pos.py): the payment refunded in full.
        payment = uow.payments.get_for_update(voided_payment)
        assert payment is not None
        uow.payments.update(replace(payment, refunded_amount=payment.amount), expected=payment.status)
        uow.commit()
    # HBB lists the switch's money with the RRN only; the void comes back as a refund of the purchase.
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "TCS000000000001", 8_800, 0, None, "000000000001"))
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "TCS000000000002", 4_400, 0, None, "000000000002"))
    hbb.add(BUSINESS_DATE, Row(StatementItemKind.REFUND, "TCS000000000009", -4_400, 0, None, "000000000009",
                               "000000000002"))
    tcs.add(BUSINESS_DATE, Row(COLLECTION, "000000000001", 8_800, 0, None, "000000000001"))
    tcs.add(BUSINESS_DATE, Row(COLLECTION, "000000000003", 1_000, 0, None, "000000000003"))  # unknown RRN
    clock.advance(timedelta(days=1))

    at_hbb = run(uow_factory, clock, ids, banks, "HBB", policy)
    at_tcs = run(uow_factory, clock, ids, banks, "TCS", policy)

    assert at_hbb.summary["matched"] == 3
    assert at_hbb.summary["exceptions"] == 0
    assert at_hbb.summary["parked"] == 0
    # The switch keeps no reserve: its unknown item is an exception that books nothing.
    assert (at_tcs.summary["matched"], at_tcs.summary["bank_only"]) == (1, 1)
    [unknown] = [e for e in exceptions_of(uow_factory) if e.bank == "TCS"]
    assert (unknown.suspense_minor, unknown.entry_id) == (0, None)
    assert settled
    assert verify_ledger(uow_factory).problem is None


def test_a_purchase_and_its_reversal_that_no_platform_record_names_cancel_out(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, merchant: str, hbb: LedgerBank,
    policy: ReconciliationPolicy,
) -> None:
    # The purchase's answer never reached the platform, which reversed it: HBB's reserve took the
    # money in and gave it back, and the platform booked nothing. Neither line is a difference.
    banks = Banks({"HBB": hbb})
    hbb.add(BUSINESS_DATE, Row(COLLECTION, "TCS000000000077", 7_700, 0, None, "000000000077"))
    hbb.add(BUSINESS_DATE, Row(StatementItemKind.REFUND, "TCS000000000077R", -7_700, 0, None, "000000000077",
                               "000000000077"))
    # A lone reversal with no purchase beside it still is one.
    hbb.add(BUSINESS_DATE, Row(StatementItemKind.REFUND, "TCS000000000088R", -1_200, 0, None, "000000000088",
                               "000000000088"))
    clock.advance(timedelta(days=1))

    report = run(uow_factory, clock, ids, banks, "HBB", policy)

    assert report.summary["reversed_at_switch"] == 2
    assert report.summary["exceptions"] == 1
    [lone] = exceptions_of(uow_factory)
    assert lone.bank_ref == "TCS000000000088R"
    assert verify_ledger(uow_factory).problem is None
