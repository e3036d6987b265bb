"""Refunds against the real simulated banks (HBB and JHB), on SQLite and PostgreSQL.

Each payment is paid for real on the bank's pages, then refunded through the refund services: the
fee returns close exactly, over-refunds and concurrent refunds never exceed the payment, the magic
amounts of BANKS.md drive every outcome, and every test ends with a sound ledger and bank books
that agree with it.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from tests.lock_waits import overlapping_requests
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.domain.errors import Conflict, IdempotencyConflict
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentMethod, PaymentRequest
from tianpay.domain.refund import PaymentNotRefundable, RefundExceedsPayment, RefundRequest, RefundStatus
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.ledger import verify_ledger
from tianpay.services.payments import create_payment, get_payment
from tianpay.services.refunds import (
    CreatedRefund,
    RequeryPolicy,
    apply_refund_result,
    create_refund,
    get_refund,
    list_refunds_for_payment,
    process_late_success_refunds,
    refund_transitions_of,
    refund_view,
    refunds_of_payment,
    requery_refunds,
)

from .conftest import (
    MERCHANT_ID,
    Banks,
    CountingChannels,
    NotifyReceiver,
    balance_minor,
    events_of,
    paid_payment,
)

pytestmark = pytest.mark.e2e

CNY = Money.cny
POLICY = RequeryPolicy(first_after_s=60, max_interval_s=600)


class Platform:
    """The pieces every refund call takes, so tests read as the merchant's story."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: SettableClock,
        ids: UlidGenerator,
        channels: CountingChannels,
        receiver: NotifyReceiver,
    ) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.ids = ids
        self.channels = channels
        self.receiver = receiver

    def refund(
        self, payment_id: str, out_refund_no: str, amount_minor: int, reason: str | None = None
    ) -> CreatedRefund:
        return create_refund(
            self.uow_factory, self.clock, self.ids, self.channels, MERCHANT_ID, payment_id,
            RefundRequest(out_refund_no, CNY(amount_minor), reason),
            notify_base_url=self.receiver.base_url, policy=POLICY,
        )

    def requery_after(self, seconds: float) -> int:
        self.clock.advance(timedelta(seconds=seconds))
        return requery_refunds(
            self.uow_factory, self.clock, self.ids, self.channels, self.clock.now(), policy=POLICY
        )

    def status_of(self, refund_id: str) -> RefundStatus:
        return get_refund(self.uow_factory, MERCHANT_ID, refund_id).status

    def refunded_minor(self, payment_id: str) -> int:
        return get_payment(self.uow_factory, MERCHANT_ID, payment_id).payment.refunded_amount.minor


@pytest.fixture
def platform(
    uow_factory: UnitOfWorkFactory,
    now_clock: SettableClock,
    ids: UlidGenerator,
    channels: CountingChannels,
    receiver: NotifyReceiver,
    merchant_id: str,
) -> Platform:
    return Platform(uow_factory, now_clock, ids, channels, receiver)


def assert_ledger_sound(uow_factory: UnitOfWorkFactory) -> None:
    report = verify_ledger(uow_factory)
    assert report.is_sound, report.problem


def pending(uow_factory: UnitOfWorkFactory) -> int:
    return balance_minor(uow_factory, f"merchant:{MERCHANT_ID}:pending")


# ---- the happy path ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bank", ["HBB", "JHB"])
def test_partial_refunds_and_the_remainder_return_the_whole_fee_and_the_books_agree(
    platform: Platform, banks: Banks, bank: str
) -> None:
    uow = platform.uow_factory
    payment = paid_payment(uow, platform.clock, platform.ids, banks, platform.receiver, bank=bank,
                           amount_minor=10_010).payment
    assert payment.fee_amount == CNY(60)
    card_before, reserve_before = banks.books(bank)

    first = platform.refund(payment.id, "R1", 3_333, "size too small").refund
    second = platform.refund(payment.id, "R2", 2_222).refund
    assert (first.status, second.status) == (RefundStatus.SUCCEEDED, RefundStatus.SUCCEEDED)
    assert first.bank_reference is not None
    assert first.succeeded_at is not None

    # More than what is left is refused and changes nothing; the number stays free for a fix.
    with pytest.raises(RefundExceedsPayment) as refused:
        platform.refund(payment.id, "R3", 10_010 - 3_333 - 2_222 + 1)
    assert refused.value.param == "amount"
    assert platform.refunded_minor(payment.id) == 5_555
    assert len(list_refunds_for_payment(uow, MERCHANT_ID, payment.id)) == 2

    last = platform.refund(payment.id, "R3", 10_010 - 3_333 - 2_222).refund
    assert last.status is RefundStatus.SUCCEEDED

    refunds = list_refunds_for_payment(uow, MERCHANT_ID, payment.id)
    assert [r.id for r in refunds] == [first.id, second.id, last.id]
    assert sum(r.fee_returned.minor for r in refunds) == payment.fee_amount.minor
    assert [r.fee_returned.minor for r in refunds] == [20, 13, 27]
    assert platform.refunded_minor(payment.id) == payment.amount.minor

    # The merchant got the amount less the fee, and gave back the amount less the returned fee.
    assert pending(uow) == 0
    assert balance_minor(uow, "platform:fee_income") == 0
    assert balance_minor(uow, f"bank:{bank}:in_transit") == 0
    assert balance_minor(uow, f"bank:{bank}:reserve") == 0
    assert [t for t, _ in events_of(uow) if t.startswith("refund.")] == ["refund.succeeded"] * 3
    assert_ledger_sound(uow)

    card_after, reserve_after = banks.books(bank)
    assert (card_after - card_before, reserve_before - reserve_after) == (10_010, 10_010)
    assert all(count == 1 for count in platform.channels.submissions.values())


def test_a_repeated_request_returns_the_first_refund_and_a_changed_one_conflicts(
    platform: Platform, banks: Banks
) -> None:
    payment = paid_payment(platform.uow_factory, platform.clock, platform.ids, banks, platform.receiver,
                           bank="HBB", amount_minor=5_000).payment
    first = platform.refund(payment.id, "R1", 1_200)
    again = platform.refund(payment.id, "R1", 1_200)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.refund == first.refund
    assert platform.channels.submissions[first.refund.id] == 1

    with pytest.raises(IdempotencyConflict) as conflict:
        platform.refund(payment.id, "R1", 1_300)
    assert conflict.value.param == "out_refund_no"
    assert platform.refunded_minor(payment.id) == 1_200
    assert_ledger_sound(platform.uow_factory)


def test_concurrent_refunds_that_together_exceed_the_payment_only_the_ones_that_fit_succeed(
    platform: Platform, banks: Banks
) -> None:
    payment = paid_payment(platform.uow_factory, platform.clock, platform.ids, banks, platform.receiver,
                           bank="HBB", amount_minor=10_000).payment
    outcomes: list[object] = []
    lock = threading.Lock()

    def ask(number: int) -> None:
        try:
            result: object = platform.refund(payment.id, f"C{number}", 3_000).refund.status
        except RefundExceedsPayment as error:
            result = error
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(str(o) if isinstance(o, RefundStatus) else "refused" for o in outcomes) == [
        "refused", "refused", "succeeded", "succeeded", "succeeded"
    ]
    assert platform.refunded_minor(payment.id) == 9_000
    assert len(list_refunds_for_payment(platform.uow_factory, MERCHANT_ID, payment.id)) == 3
    assert_ledger_sound(platform.uow_factory)


def test_a_repeat_sent_while_the_first_request_is_still_open_names_the_first_refund_sent_once(
    platform: Platform, banks: Banks, engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the overlap is observed through PostgreSQL's lock waits")
    payment = paid_payment(platform.uow_factory, platform.clock, platform.ids, banks, platform.receiver,
                           bank="HBB", amount_minor=5_000).payment
    # One request stops at its insert with its idempotency claim uncommitted, and the other is seen
    # waiting on that claim (without the claim it would reach the table's unique key instead).
    answers = overlapping_requests(engine, "refunds", lambda: platform.refund(payment.id, "R-TWICE", 1_200))

    created = [answer for answer in answers if isinstance(answer, CreatedRefund)]
    assert len(created) == 2, answers
    assert len({c.refund.id for c in created}) == 1
    assert sorted(c.replayed for c in created) == [False, True]
    assert platform.channels.submissions[created[0].refund.id] == 1
    assert platform.refunded_minor(payment.id) == 1_200
    assert len(list_refunds_for_payment(platform.uow_factory, MERCHANT_ID, payment.id)) == 1
    assert_ledger_sound(platform.uow_factory)


def test_a_duplicate_out_refund_no_that_reaches_the_table_is_a_conflict_and_the_unit_of_work_rolls_back(
    platform: Platform, banks: Banks
) -> None:
    # The idempotency claim keeps this from happening through create_refund; the table's unique key is
    # the backstop, and without a savepoint around the insert (docs/performance.md) the whole unit of
    # work goes, on both databases, including what it wrote before the duplicate.
    payment = paid_payment(platform.uow_factory, platform.clock, platform.ids, banks, platform.receiver,
                           bank="HBB", amount_minor=5_000).payment
    first = platform.refund(payment.id, "R1", 1_000).refund
    with pytest.raises(Conflict) as raised, platform.uow_factory() as uow:
        uow.refunds.add(replace(first, id=platform.ids.new("rfd"), out_refund_no="R2"))
        uow.refunds.add(replace(first, id=platform.ids.new("rfd")))
        uow.commit()
    assert raised.value.param == "out_refund_no"
    assert [r.id for r in list_refunds_for_payment(platform.uow_factory, MERCHANT_ID, payment.id)] == [first.id]


def test_a_payment_that_has_not_succeeded_is_not_refundable(platform: Platform) -> None:
    created = create_payment(
        platform.uow_factory, platform.clock, platform.ids,
        PaymentRequest(MERCHANT_ID, "unpaid", CNY(1_000), PaymentMethod.ONLINE_BANKING, "茶", bank="HBB"),
    ).payment
    with pytest.raises(PaymentNotRefundable):
        platform.refund(created.id, "R1", 100)
    assert not platform.channels.submissions


# ---- magic amounts on the refund ---------------------------------------------------------------------


@pytest.mark.parametrize(("bank", "code"), [("HBB", "51"), ("JHB", "1051"), ("HBB", "91"), ("JHB", "1091")])
def test_a_declined_or_unsubmitted_refund_fails_is_reversed_and_gives_the_amount_back(
    platform: Platform, banks: Banks, bank: str, code: str
) -> None:
    uow = platform.uow_factory
    payment = paid_payment(uow, platform.clock, platform.ids, banks, platform.receiver, bank=bank,
                           amount_minor=10_000).payment
    pending_before = pending(uow)
    books_before = banks.books(bank)

    refund = platform.refund(payment.id, "R1", 1_000 + int(code[-2:])).refund

    assert refund.status is RefundStatus.FAILED
    assert refund.failure_code == code
    assert platform.refunded_minor(payment.id) == 0
    assert pending(uow) == pending_before
    assert balance_minor(uow, f"bank:{bank}:in_transit") == 0
    failed = [data for kind, data in events_of(uow) if kind == "refund.failed"]
    assert [(d["id"], d["status"], d["failure_code"]) for d in failed] == [(refund.id, "failed", code)]
    assert banks.books(bank) == books_before
    assert_ledger_sound(uow)

    # The amount given back can be refunded again.
    assert platform.refund(payment.id, "R2", 10_000).refund.status is RefundStatus.SUCCEEDED
    assert_ledger_sound(uow)


@pytest.mark.parametrize(("bank", "answered"), [("HBB", RefundStatus.UNKNOWN), ("JHB", RefundStatus.PROCESSING)])
def test_magic_94_is_processing_until_the_third_query_succeeds(
    platform: Platform, banks: Banks, bank: str, answered: RefundStatus
) -> None:
    uow = platform.uow_factory
    payment = paid_payment(uow, platform.clock, platform.ids, banks, platform.receiver, bank=bank,
                           amount_minor=10_000).payment
    created = platform.refund(payment.id, "R1", 1_094)
    refund = created.refund
    # HBB answers 05 (outcome unknown), JHB 2000 (processing); merchants see "processing" either way.
    assert refund.status is answered
    assert refund_view(refund)["status"] == "processing"

    assert platform.requery_after(30) == 0, "nothing is queried before the first minute"
    assert platform.requery_after(31) == 1
    assert platform.status_of(refund.id) is RefundStatus.PROCESSING
    assert platform.requery_after(60) == 0, "the second query waits twice as long"
    assert platform.requery_after(61) == 1
    assert platform.status_of(refund.id) is RefundStatus.PROCESSING
    assert platform.requery_after(240) == 1
    assert platform.status_of(refund.id) is RefundStatus.SUCCEEDED
    assert platform.requery_after(3_600) == 0, "a final refund is never queried again"

    assert (platform.channels.submissions[refund.id], platform.channels.queries[refund.id]) == (1, 3)
    assert [kind for kind, _ in events_of(uow) if kind.startswith("refund.")] == ["refund.succeeded"]
    trail = [(t.from_status, t.to_status) for t in refund_transitions_of(uow, refund.id)]
    assert trail[0] == (None, "created")
    assert trail[-1][1] == "succeeded"
    assert balance_minor(uow, f"bank:{bank}:in_transit") == 0
    assert_ledger_sound(uow)


@pytest.mark.parametrize("bank", ["HBB", "JHB"])
def test_magic_96_is_unknown_until_a_query_finds_it_succeeded(platform: Platform, banks: Banks, bank: str) -> None:
    uow = platform.uow_factory
    payment = paid_payment(uow, platform.clock, platform.ids, banks, platform.receiver, bank=bank,
                           amount_minor=10_000).payment
    card_before, reserve_before = banks.books(bank)
    refund = platform.refund(payment.id, "R1", 1_096).refund
    assert refund.status is RefundStatus.UNKNOWN
    # The money has moved at the bank while we do not know it yet: it is in transit in the ledger.
    assert balance_minor(uow, f"bank:{bank}:in_transit") == -1_096
    assert platform.refunded_minor(payment.id) == 1_096

    assert platform.requery_after(61) == 1
    assert platform.status_of(refund.id) is RefundStatus.SUCCEEDED
    assert balance_minor(uow, f"bank:{bank}:in_transit") == 0
    card_after, reserve_after = banks.books(bank)
    assert (card_after - card_before, reserve_before - reserve_after) == (1_096, 1_096)
    assert platform.channels.submissions[refund.id] == 1
    assert_ledger_sound(uow)


@pytest.mark.parametrize(("bank", "not_found"), [("HBB", "34"), ("JHB", "1011")])
def test_magic_97_is_queried_never_resent_and_fails_once_the_bank_still_has_no_record_after_the_window(
    platform: Platform, banks: Banks, bank: str, not_found: str
) -> None:
    uow = platform.uow_factory
    payment = paid_payment(uow, platform.clock, platform.ids, banks, platform.receiver, bank=bank,
                           amount_minor=10_000).payment
    pending_before = pending(uow)
    books_before = banks.books(bank)
    refund = platform.refund(payment.id, "R1", 1_097).refund
    assert refund.status is RefundStatus.UNKNOWN

    # "No such refund" inside the window is an absence (the bank may still record it), not a failure.
    for wait_s in (61, 121, 241):
        assert platform.requery_after(wait_s) == 1
        assert platform.status_of(refund.id) is RefundStatus.UNKNOWN
    # Still counted against the payment and in transit: only the bank can say.
    assert platform.refunded_minor(payment.id) == 1_097
    assert balance_minor(uow, f"bank:{bank}:in_transit") == -1_097
    assert not [kind for kind, _ in events_of(uow) if kind.startswith("refund.")]

    # 30 minutes after the refund the bank still knows nothing of it: it never reached the bank.
    assert platform.requery_after(30 * 60) == 1
    failed = get_refund(uow, MERCHANT_ID, refund.id)
    assert (failed.status, failed.failure_code) == (RefundStatus.FAILED, not_found)
    assert platform.requery_after(3_600) == 0, "a final refund is never queried again"

    assert (platform.channels.submissions[refund.id], platform.channels.queries[refund.id]) == (1, 4)
    assert platform.refunded_minor(payment.id) == 0
    assert balance_minor(uow, f"bank:{bank}:in_transit") == 0
    assert pending(uow) == pending_before
    assert [(kind, data["id"]) for kind, data in events_of(uow) if kind.startswith("refund.")] == [
        ("refund.failed", refund.id)
    ]
    assert banks.books(bank) == books_before
    assert_ledger_sound(uow)


def test_an_hbb_refund_swallowed_by_an_outage_is_queried_and_fails_after_the_window(
    platform: Platform, banks: Banks
) -> None:
    uow = platform.uow_factory
    payment = paid_payment(uow, platform.clock, platform.ids, banks, platform.receiver, bank="HBB",
                           amount_minor=10_000).payment
    books_before = banks.books("HBB")
    # HTTP 503 from the gateway in front of HBB: HBB never saw the refund, but we cannot know that.
    banks.set_faults("HBB", outage=True)
    try:
        refund = platform.refund(payment.id, "R1", 2_000).refund
        assert refund.status is RefundStatus.UNKNOWN
        # Queries during the outage are answered 503 too: unknown, whatever the refund's age.
        assert platform.requery_after(31 * 60) == 1
        assert platform.status_of(refund.id) is RefundStatus.UNKNOWN
    finally:
        banks.set_faults("HBB", reset=True)
    assert platform.requery_after(600) == 1
    failed = get_refund(uow, MERCHANT_ID, refund.id)
    assert (failed.status, failed.failure_code) == (RefundStatus.FAILED, "34")
    assert platform.channels.submissions[refund.id] == 1
    assert platform.refunded_minor(payment.id) == 0
    assert banks.books("HBB") == books_before
    # The amount given back can be refunded again, and this time HBB takes it.
    assert platform.refund(payment.id, "R2", 2_000).refund.status is RefundStatus.SUCCEEDED
    assert_ledger_sound(uow)


def test_two_workers_never_query_the_same_refund_at_once(platform: Platform, banks: Banks) -> None:
    payment = paid_payment(platform.uow_factory, platform.clock, platform.ids, banks, platform.receiver,
                           bank="HBB", amount_minor=10_000).payment
    refund = platform.refund(payment.id, "R1", 1_097).refund
    platform.clock.advance(timedelta(seconds=61))
    claimed: list[int] = []

    def work() -> None:
        claimed.append(requery_refunds(platform.uow_factory, platform.clock, platform.ids, platform.channels,
                                       platform.clock.now(), policy=POLICY))

    workers = [threading.Thread(target=work) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(claimed) == [0, 0, 1]
    assert platform.channels.queries[refund.id] == 1


# ---- notifications and late successes ------------------------------------------------------------------


def test_a_bank_notification_after_the_answer_changes_nothing(platform: Platform, banks: Banks) -> None:
    uow = platform.uow_factory
    payment = paid_payment(uow, platform.clock, platform.ids, banks, platform.receiver, bank="HBB",
                           amount_minor=10_000).payment
    refund = platform.refund(payment.id, "R1", 2_500).refund
    assert refund.status is RefundStatus.SUCCEEDED
    channel = banks.registry.online_banking("HBB")
    notices = []
    for _ in range(100):
        notices = [
            notice for body, content_type in platform.receiver.of_bank("HBB")
            if (notice := channel.parse_notification(body, content_type)).platform_reference == refund.id
        ]
        if notices:
            break
        threading.Event().wait(0.1)
    assert notices, "HBB notifies the refund's result"
    events_before = events_of(uow)

    for notice in notices * 2:
        apply_refund_result(uow, platform.clock, platform.ids, refund.id, notice.result)

    assert get_refund(uow, MERCHANT_ID, refund.id) == refund
    assert events_of(uow) == events_before
    assert_ledger_sound(uow)


def test_a_late_success_is_refunded_from_suspense_by_the_job_without_telling_the_merchant(
    platform: Platform, banks: Banks
) -> None:
    uow = platform.uow_factory
    card_before, reserve_before = banks.books("HBB")
    paid = paid_payment(uow, platform.clock, platform.ids, banks, platform.receiver, bank="HBB",
                        amount_minor=4_321, attempts=2)
    late_attempt = paid.attempt_ids[1]
    assert balance_minor(uow, "platform:suspense") == -4_321

    processed = process_late_success_refunds(
        uow, platform.clock, platform.ids, platform.channels, platform.clock.now(),
        notify_base_url=platform.receiver.base_url, policy=POLICY,
    )
    again = process_late_success_refunds(
        uow, platform.clock, platform.ids, platform.channels, platform.clock.now(),
        notify_base_url=platform.receiver.base_url, policy=POLICY,
    )

    assert (processed, again) == (1, 0)
    [late] = refunds_of_payment(uow, paid.payment.id)
    assert (late.kind.value, late.attempt_id, late.status) == ("late_success", late_attempt, RefundStatus.SUCCEEDED)
    assert late.out_refund_no is None
    with uow() as unit:
        [row] = unit.payments.late_success_refunds_of(paid.payment.id)
    assert row.status == "done"
    assert balance_minor(uow, "platform:suspense") == 0
    assert balance_minor(uow, "bank:HBB:in_transit") == 0
    # The merchant keeps its one payment and never hears of the refund of the other attempt.
    assert platform.refunded_minor(paid.payment.id) == 0
    assert list_refunds_for_payment(uow, MERCHANT_ID, paid.payment.id) == []
    assert not [kind for kind, _ in events_of(uow) if kind.startswith("refund.")]
    card_after, reserve_after = banks.books("HBB")
    assert (card_before - card_after, reserve_after - reserve_before) == (4_321, 4_321)
    assert_ledger_sound(uow)
