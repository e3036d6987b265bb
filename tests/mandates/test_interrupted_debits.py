"""A direct debit whose first call died between creating its payment and asking the bank (a killed
worker or server), against the real JHB simulator on both databases: a repeat with the same
``out_trade_no`` carries it on to the bank exactly once, however many repeats race; a payment that
already has an attempt is returned as it is and never sent again.

The crash is simulated by doing what the first call did before it died: creating the payment
through the payment service with the request ``mandates.debit`` builds, and not calling the bank.
Older code also recorded the debit against the mandate before the attempt; that state is built by
inserting the ``mandate_debits`` row it wrote.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tests.gateway.conftest import BankWorld
from tests.mandates import test_debit_schedules as schedule_tests
from tests.mandates.test_debit_schedules import SETTINGS, jhb_transfers, queued_events
from tests.payments.conftest import assert_ledger_sound
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.errors import Conflict, IdempotencyRecordExpired
from tianpay.domain.mandate import Mandate, MandateLimitExceeded, MandateNotActive, debit_period
from tianpay.domain.money import Money
from tianpay.domain.payment import AttemptStatus, Payment, PaymentMethod, PaymentRequest, PaymentStatus
from tianpay.ports.mandates import MandateDebit
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import mandates
from tianpay.services import payments as payment_service
from tianpay.services.housekeeping import HousekeepingPolicy, purge_once
from tianpay.services.member_tools import MemberTools

pytestmark = pytest.mark.e2e
# An active JHB mandate (200.00 per debit, 300.00 a month) of a merchant priced for direct debit.
merchant, mandate = schedule_tests.merchant, schedule_tests.mandate
SUBJECT = "燃气费"


def created_then_crashed(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator,
                         merchant_id: str, mandate: Mandate, out_trade_no: str, amount_minor: int) -> Payment:
    """What a debit leaves behind when its process dies right after the payment was created."""
    request = PaymentRequest(
        merchant_id=merchant_id, out_trade_no=out_trade_no, amount=Money.cny(amount_minor),
        method=PaymentMethod.DIRECT_DEBIT, subject=SUBJECT, metadata={"mandate_id": mandate.id},
    )
    created = payment_service.create_payment(uow_factory, clock, ids, request)
    assert (created.replayed, created.payment.status) == (False, PaymentStatus.CREATED)
    return created.payment


def recorded_by_old_code(uow_factory: UnitOfWorkFactory, clock: SettableClock, payment: Payment,
                         mandate: Mandate) -> MandateDebit:
    """The debit record the older code committed before the attempt it never got to create."""
    record = MandateDebit(payment.id, mandate.id, debit_period(clock.now()), payment.amount.minor, clock.now())
    with uow_factory() as uow:
        uow.mandates.add_debit(record)
        uow.commit()
    return record


def month_total(uow_factory: UnitOfWorkFactory, clock: SettableClock, mandate: Mandate) -> int:
    with uow_factory() as uow:
        return uow.mandates.month_total_minor(mandate.id, debit_period(clock.now()))


def debit_again(uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
                tools: MemberTools, merchant_id: str, mandate: Mandate, out_trade_no: str,
                amount_minor: int) -> payment_service.CreatedPayment:
    return mandates.debit(
        uow_factory, clock, ids, channels, tools.cipher, SETTINGS, merchant_id=merchant_id, mandate_id=mandate.id,
        out_trade_no=out_trade_no, amount=Money.cny(amount_minor), subject=SUBJECT,
    )


def attempts_of(uow_factory: UnitOfWorkFactory, payment_id: str) -> list[AttemptStatus]:
    with uow_factory() as uow:
        return [attempt.status for attempt in uow.payments.attempts_of(payment_id)]


def test_a_debit_left_created_by_a_crash_is_carried_on_to_the_bank_once_by_its_retry(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    stranded = created_then_crashed(uow_factory, clock, ids, merchant, mandate, "gas-2025-03", 4_200)
    transfers_before = jhb_transfers(bank_world)

    retried = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-2025-03", 4_200)
    assert retried.replayed
    assert retried.payment.id == stranded.id
    assert retried.payment.status is PaymentStatus.SUCCEEDED
    assert jhb_transfers(bank_world) == transfers_before + 1

    # Once it has an attempt, a repeat returns the payment as it is and the bank is not asked again.
    again = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-2025-03", 4_200)
    assert (again.replayed, again.payment.id, again.payment.status) == (True, stranded.id, PaymentStatus.SUCCEEDED)
    assert jhb_transfers(bank_world) == transfers_before + 1
    assert attempts_of(uow_factory, stranded.id) == [AttemptStatus.SUCCEEDED]
    assert [kind for kind, _ in queued_events(uow_factory, merchant) if kind.startswith("payment.")] == [
        "payment.succeeded"
    ]
    assert_ledger_sound(uow_factory)


def test_two_retries_racing_on_a_stranded_debit_reach_the_bank_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate, db_url: str,
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers; the race is PostgreSQL's")
    stranded = created_then_crashed(uow_factory, clock, ids, merchant, mandate, "gas-race", 3_300)
    transfers_before = jhb_transfers(bank_world)
    start = threading.Barrier(2)
    results: dict[str, payment_service.CreatedPayment] = {}
    errors: list[BaseException] = []

    def retry(name: str) -> None:
        start.wait()
        try:
            results[name] = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-race", 3_300)
        except BaseException as error:  # reported by the main thread's assertion
            errors.append(error)

    threads = [threading.Thread(target=retry, args=(name,)) for name in ("merchant", "worker")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert {created.payment.id for created in results.values()} == {stranded.id}
    assert all(created.replayed for created in results.values())
    assert jhb_transfers(bank_world) == transfers_before + 1
    assert attempts_of(uow_factory, stranded.id) == [AttemptStatus.SUCCEEDED]
    assert_ledger_sound(uow_factory)


def test_a_retry_of_a_debit_that_already_has_an_attempt_does_not_ask_the_bank_again(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    stranded = created_then_crashed(uow_factory, clock, ids, merchant, mandate, "gas-attempted", 2_100)
    # This process died after persisting its attempt, so the bank may or may not have it: only a
    # query may tell (the re-query job's), never a second submission.
    payment_service.start_attempt(uow_factory, clock, ids, stranded.id, channel="JHB:direct_debit", bank="JHB")
    transfers_before = jhb_transfers(bank_world)

    retried = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-attempted", 2_100)
    assert (retried.replayed, retried.payment.status) == (True, PaymentStatus.PROCESSING)
    assert jhb_transfers(bank_world) == transfers_before
    assert attempts_of(uow_factory, stranded.id) == [AttemptStatus.CREATED]


def test_a_stranded_debit_retried_after_the_mandate_was_revoked_is_closed_before_the_bank(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    stranded = created_then_crashed(uow_factory, clock, ids, merchant, mandate, "gas-revoked", 1_500)
    mandates.revoke_mandate(uow_factory, clock, channels, tools.cipher, mandate.id, merchant_id=merchant)
    transfers_before = jhb_transfers(bank_world)

    with pytest.raises(MandateNotActive):
        debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-revoked", 1_500)
    assert jhb_transfers(bank_world) == transfers_before
    closed = payment_service.find_payment(uow_factory, merchant, stranded.id)
    assert closed.status is PaymentStatus.CLOSED
    assert attempts_of(uow_factory, stranded.id) == []
    assert [kind for kind, _ in queued_events(uow_factory, merchant) if kind == "payment.closed"] == ["payment.closed"]
    # A repeat now names the closed payment.
    again = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-revoked", 1_500)
    assert (again.replayed, again.payment.status) == (True, PaymentStatus.CLOSED)


def test_a_stranded_debit_retried_after_its_expiry_is_left_to_close_and_never_sent(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    stranded = created_then_crashed(uow_factory, clock, ids, merchant, mandate, "gas-expired", 1_600)
    clock.advance(timedelta(minutes=31))
    transfers_before = jhb_transfers(bank_world)

    retried = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-expired", 1_600)
    assert (retried.replayed, retried.payment.status) == (True, PaymentStatus.CREATED)
    assert jhb_transfers(bank_world) == transfers_before
    assert payment_service.expire_payments(uow_factory, clock.now()) == 1
    assert payment_service.find_payment(uow_factory, merchant, stranded.id).status is PaymentStatus.CLOSED


def test_a_repeat_of_a_debit_that_used_most_of_the_month_returns_it_instead_of_refusing(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    first = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-big", 20_000)
    assert (first.replayed, first.payment.status) == (False, PaymentStatus.SUCCEEDED)
    transfers_before = jhb_transfers(bank_world)

    # 200.00 more would pass the month's 300.00, but this is the same debit asked again.
    again = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-big", 20_000)
    assert (again.replayed, again.payment.id, again.payment.status) == (True, first.payment.id,
                                                                         PaymentStatus.SUCCEEDED)
    mandates.revoke_mandate(uow_factory, clock, channels, tools.cipher, mandate.id, merchant_id=merchant)
    after_revocation = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-big", 20_000)
    assert after_revocation.payment.id == first.payment.id
    assert jhb_transfers(bank_world) == transfers_before


def test_a_retry_reuses_the_debit_record_older_code_left_without_an_attempt(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    # Another debit this month already took 100.00 of the month's 300.00.
    other = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-other", 10_000)
    assert other.payment.status is PaymentStatus.SUCCEEDED
    stranded = created_then_crashed(uow_factory, clock, ids, merchant, mandate, "gas-recorded", 20_000)
    record = recorded_by_old_code(uow_factory, clock, stranded, mandate)
    clock.advance(timedelta(minutes=5))
    transfers_before = jhb_transfers(bank_world)

    # 100.00 + 200.00 fills the month exactly: counting the stranded debit's own record a second time
    # would refuse it, and inserting the record again would break on its primary key.
    retried = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-recorded", 20_000)
    assert (retried.replayed, retried.payment.id, retried.payment.status) == (True, stranded.id,
                                                                               PaymentStatus.SUCCEEDED)
    assert jhb_transfers(bank_world) == transfers_before + 1
    assert attempts_of(uow_factory, stranded.id) == [AttemptStatus.SUCCEEDED]
    with uow_factory() as uow:
        assert uow.mandates.debit_of(stranded.id) == record
    assert month_total(uow_factory, clock, mandate) == 30_000

    # The other payment's debit and this one's still count in full: the month has no room left.
    with pytest.raises(MandateLimitExceeded):
        debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-third", 100)
    again = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-recorded", 20_000)
    assert (again.replayed, again.payment.status) == (True, PaymentStatus.SUCCEEDED)
    assert jhb_transfers(bank_world) == transfers_before + 1
    assert_ledger_sound(uow_factory)


def test_a_stranded_debit_record_holds_its_share_of_the_month_against_other_debits(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    stranded = created_then_crashed(uow_factory, clock, ids, merchant, mandate, "gas-held", 20_000)
    recorded_by_old_code(uow_factory, clock, stranded, mandate)
    transfers_before = jhb_transfers(bank_world)

    # Until the stranded payment closes, its 200.00 may still move: a different debit of 150.00 would
    # pass the month's 300.00 and is refused before the bank.
    with pytest.raises(MandateLimitExceeded):
        debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-newer", 15_000)
    retried = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-held", 20_000)
    assert retried.payment.status is PaymentStatus.SUCCEEDED
    assert jhb_transfers(bank_world) == transfers_before + 1

    # A record of another debit that no longer fits stops the repeat before the bank, as any debit.
    crowded = created_then_crashed(uow_factory, clock, ids, merchant, mandate, "gas-crowded", 15_000)
    recorded_by_old_code(uow_factory, clock, crowded, mandate)
    with pytest.raises(MandateLimitExceeded):
        debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-crowded", 15_000)
    assert payment_service.find_payment(uow_factory, merchant, crowded.id).status is PaymentStatus.CLOSED
    assert attempts_of(uow_factory, crowded.id) == []
    assert jhb_transfers(bank_world) == transfers_before + 1
    assert_ledger_sound(uow_factory)


def test_a_debit_record_that_does_not_match_its_payment_is_never_sent_to_the_bank(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    stranded = created_then_crashed(uow_factory, clock, ids, merchant, mandate, "gas-odd", 2_000)
    with uow_factory() as uow:
        uow.mandates.add_debit(MandateDebit(stranded.id, mandate.id, debit_period(clock.now()), 2_500, clock.now()))
        uow.commit()
    transfers_before = jhb_transfers(bank_world)

    with pytest.raises(Conflict):
        debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-odd", 2_000)
    assert jhb_transfers(bank_world) == transfers_before
    assert attempts_of(uow_factory, stranded.id) == []
    assert payment_service.find_payment(uow_factory, merchant, stranded.id).status is PaymentStatus.CREATED


def test_a_repeat_of_a_debit_whose_record_was_purged_names_the_payment_instead_of_the_mandates_refusal(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, bank_world: BankWorld, merchant: str, mandate: Mandate,
) -> None:
    first = debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-late", 1_700)
    assert first.payment.status is PaymentStatus.SUCCEEDED
    later = clock.now() + HousekeepingPolicy().idempotency_retention + timedelta(days=1)
    assert purge_once(uow_factory, later, HousekeepingPolicy())["idempotency_records"] == 1
    mandates.revoke_mandate(uow_factory, clock, channels, tools.cipher, mandate.id, merchant_id=merchant)
    transfers_before = jhb_transfers(bank_world)

    # The payment under the number, not its purged record, says this is a repeat: the revoked mandate is
    # not consulted, and the answer names the first payment.
    with pytest.raises(IdempotencyRecordExpired) as refused:
        debit_again(uow_factory, clock, ids, channels, tools, merchant, mandate, "gas-late", 1_700)
    assert first.payment.id in refused.value.message
    assert jhb_transfers(bank_world) == transfers_before
    with uow_factory() as uow:
        assert uow.payments.id_of_out_trade_no(merchant, "gas-late") == first.payment.id
