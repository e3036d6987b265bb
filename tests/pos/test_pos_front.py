"""POS acquiring end to end: an independent terminal, the real pos-front, the real TCS and issuers.

The terminal (tests/pos/terminal.py) is written with pyiso8583 and cryptography only; pos-front
runs in the test's event loop; TCS and the banks run in their own process (tests/pos/conftest.py).
After each scenario the issuers' books (``/_sim/state``) must agree with the platform's ledger:
the money TCS moved into the HBB reserve is exactly what ``bank:HBB:reserve`` says we hold there.
"""

from __future__ import annotations

import asyncio

from tests.payments.conftest import assert_ledger_sound, events_of
from tests.pos.conftest import HBB_RESERVE, MERCHANT_ID, Acquiring, CardWorld
from tests.pos.terminal import HBB_CARD, JHB_CARD
from tianpay.domain.errors import NotFound
from tianpay.domain.pos import PosStatus, ReversalStatus
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import pos


def platform_reserve(uow_factory: UnitOfWorkFactory) -> int:
    with uow_factory() as uow:
        try:
            return uow.ledger.balance("bank:HBB:reserve").minor
        except NotFound:
            return 0


def books(world: CardWorld) -> dict[str, int]:
    return {
        "hbb_card": world.balance("HBB", HBB_CARD),
        "jhb_card": world.balance("JHB", JHB_CARD),
        "reserve": world.balance("HBB", HBB_RESERVE),
    }


async def wait_for_reversals(acquiring: Acquiring, *, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if not pos.reversals_due(acquiring.uow, acquiring.clock) and not _pending(acquiring):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("a reversal is still owed")


def _pending(acquiring: Acquiring) -> bool:
    with acquiring.uow() as uow:
        return any(
            t.reversal_status is ReversalStatus.PENDING for t in uow.pos_transactions.in_batch(acquiring.tid, 1)
        )


def test_a_terminal_signs_on_buys_voids_buys_interbank_asks_balance_and_settles(
    card_world: CardWorld, acquiring: Acquiring
) -> None:
    before = books(card_world)

    async def scenario() -> None:
        async with acquiring.running() as (terminal, _front):
            assert (await terminal.sign_on())["39"] == "00"
            bought = await terminal.purchase(1234)
            assert bought["39"] == "00", bought
            assert len(bought["38"]) == 6
            assert len(bought["37"]) == 12
            assert (await terminal.purchase(1234, stan=bought["11"]))["39"] == "94"
            tampered = {"t": "0200", "2": HBB_CARD, "3": "000000", "4": "000000000100",
                        "11": terminal.next_stan(), "60": "22000001"}  # fmt: skip
            assert (await terminal.send(tampered, bad_mac=True))["39"] == "A0"
            second = await terminal.purchase(500)
            assert second["39"] == "00", second
            voided = await terminal.void(500, second["11"], second["37"])
            assert voided["39"] == "00", voided
            interbank = await terminal.purchase(2000, card=JHB_CARD)
            assert interbank["39"] == "00", interbank
            balance = await terminal.balance()
            assert balance["39"] == "00", balance
            assert int(balance["4"]) == before["hbb_card"] - 1234
            wrong = await terminal.settle((1, 1234), (0, 0))
            assert wrong["48"][-1] == "2"
            settled = await terminal.settle((3, 3734), (1, 500))
            assert settled["39"] == "00"
            assert settled["48"][-1] == "1", settled

    asyncio.run(scenario())
    after = books(card_world)
    # The issuers: 张伟's HBB card paid ¥12.34 (the ¥5.00 was voided), the JHB card ¥20.00 through
    # the interbank clearing; both landed in the platform's HBB reserve (docs/banks/tcs.md §4).
    assert after["hbb_card"] - before["hbb_card"] == -1234
    assert after["jhb_card"] - before["jhb_card"] == -2000
    assert after["reserve"] - before["reserve"] == 3234
    assert platform_reserve(acquiring.uow) == 3234
    types = [event.type for event in events_of(acquiring.uow, MERCHANT_ID)]
    assert types.count("payment.succeeded") == 3
    assert types.count("refund.succeeded") == 1
    assert_ledger_sound(acquiring.uow)


def test_without_an_answer_the_purchase_is_reversed_at_the_issuer_and_never_booked(
    card_world: CardWorld, acquiring: Acquiring
) -> None:
    before = books(card_world)

    async def scenario() -> str:
        async with acquiring.running() as (terminal, front):
            await terminal.sign_on()
            card_world.faults(drop_answers=True)
            bought = await terminal.purchase(2000)
            assert bought["39"] == "98"
            await wait_for_reversals(acquiring)
            assert not front.reversal_tasks or all(t.done() for t in front.reversal_tasks)
            return bought["11"]

    stan = asyncio.run(scenario())
    assert card_world.tcs_transaction(acquiring.tid, stan)["status"] == "reversed"
    assert books(card_world) == before
    assert platform_reserve(acquiring.uow) == 0
    assert events_of(acquiring.uow, MERCHANT_ID) == []
    with acquiring.uow() as uow:
        assert uow.ledger.stats()[1] == 0
        txn = uow.pos_transactions.get(acquiring.tid, 1, stan)
    assert txn is not None
    assert txn.status is PosStatus.REVERSED
    assert_ledger_sound(acquiring.uow)


def test_reversing_a_void_brings_the_purchase_and_its_credit_back(
    card_world: CardWorld, acquiring: Acquiring
) -> None:
    before = books(card_world)

    async def scenario() -> None:
        async with acquiring.running() as (terminal, _front):
            await terminal.sign_on()
            bought = await terminal.purchase(800)
            voided = await terminal.void(800, bought["11"], bought["37"])
            assert voided["39"] == "00"
            assert platform_reserve(acquiring.uow) == 0
            assert (await terminal.reverse(voided))["39"] == "00"
            # A second 0400 for the same void is acknowledged and changes nothing (idempotent).
            assert (await terminal.reverse(voided))["39"] == "00"
            settled = await terminal.settle((1, 800), (0, 0))
            assert settled["48"][-1] == "1", settled

    asyncio.run(scenario())
    assert books(card_world)["hbb_card"] - before["hbb_card"] == -800
    assert books(card_world)["reserve"] - before["reserve"] == 800
    assert platform_reserve(acquiring.uow) == 800
    with acquiring.uow() as uow:
        purchase = uow.pos_transactions.get(acquiring.tid, 1, "000002")
        assert purchase is not None
        assert purchase.status is PosStatus.APPROVED
        assert purchase.payment_id is not None
        payment = uow.payments.get(purchase.payment_id)
        assert payment is not None
        assert payment.refunded_amount.minor == 0
    assert_ledger_sound(acquiring.uow)


def test_the_worker_finishes_a_reversal_left_owed_by_a_crash(card_world: CardWorld, acquiring: Acquiring) -> None:
    """pos-front dies between the timeout and its first 0400: the worker's job reverses later."""
    before = books(card_world)
    crashed = acquiring.front()
    # Simulates the crash: the reversal is persisted as owed, but pos-front never sends it.
    crashed._start_reversal = lambda _txn_id: None  # type: ignore[method-assign]

    async def scenario() -> str:
        async with acquiring.running(crashed) as (terminal, _front):
            await terminal.sign_on()
            card_world.faults(drop_answers=True)
            bought = await terminal.purchase(4321)
            assert bought["39"] == "98"
            return bought["11"]

    stan = asyncio.run(scenario())
    assert card_world.tcs_transaction(acquiring.tid, stan)["status"] == "approved"
    assert [t.stan for t in pos.reversals_due(acquiring.uow, acquiring.clock)] == [stan]
    # After the restart: a fresh PosFront (as the worker's job builds one) continues the reversal.
    assert asyncio.run(acquiring.front().continue_reversals()) == 1
    assert card_world.tcs_transaction(acquiring.tid, stan)["status"] == "reversed"
    assert books(card_world) == before
    assert pos.reversals_due(acquiring.uow, acquiring.clock) == []
    # Nothing is owed any more: another tick sends nothing.
    assert asyncio.run(acquiring.front().continue_reversals()) == 0
    assert platform_reserve(acquiring.uow) == 0
    assert_ledger_sound(acquiring.uow)
