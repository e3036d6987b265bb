"""The interbank clearing keeps every bank's books true: money is conserved, positions net to zero,
each bank's CLEARING account mirrors its position, and no customer account goes below zero."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banksim.core.bank import SimConfig
from banksim.core.books import AccountKind, AccountStatus, Declined
from banksim.core.clearing import ClearingStatus
from banksim.core.seed import CLEARING_ACC_NO
from banksim.world import World
from tests.banksim.conftest import copy_world

BCB_RESERVE = "6230990000000000991"
HBB_WANG_FANG = "6217990000000000022"
JHB_LI_NA = "6227990000000000021"
BCB_MERCHANT = "6230990000000000033"
ZHAO_LEI = "6217990000000000519"
_refs = itertools.count(1)


@pytest.fixture
def world(tmp_path: Path, seeded_template: Path) -> World:
    return copy_world(seeded_template, tmp_path)


def _total(world: World) -> int:
    return sum(world.books(code).total_minor() for code in world.contexts)


def _assert_true_books(world: World) -> None:
    positions = world.clearing.positions()
    assert sum(positions.values()) == 0
    for code in world.contexts:
        mirror = world.books(code).account(CLEARING_ACC_NO)
        assert mirror is not None
        assert mirror.balance_minor == positions.get(code, 0)
        for account in world.books(code).accounts():
            if account.kind is not AccountKind.CLEARING:
                assert account.balance_minor >= 0


def test_a_payout_from_bcb_reserve_reaches_an_hbb_card(world: World) -> None:
    total = _total(world)
    reserve = world.books("BCB").account(BCB_RESERVE).balance_minor  # type: ignore[union-attr]
    card = world.books("HBB").account(HBB_WANG_FANG).balance_minor  # type: ignore[union-attr]

    result = world.clearing.transfer(
        clearing_ref="P1",
        from_bank="BCB",
        from_acc=BCB_RESERVE,
        to_bank="HBB",
        to_acc=HBB_WANG_FANG,
        amount_minor=12_300,
    )

    assert result.status is ClearingStatus.SETTLED
    assert world.books("BCB").account(BCB_RESERVE).balance_minor == reserve - 12_300  # type: ignore[union-attr]
    assert world.books("HBB").account(HBB_WANG_FANG).balance_minor == card + 12_300  # type: ignore[union-attr]
    assert world.clearing.positions() == {"BCB": 12_300, "HBB": -12_300}
    assert _total(world) == total
    _assert_true_books(world)


def test_the_same_clearing_reference_moves_money_once(world: World) -> None:
    for _ in range(3):
        world.clearing.transfer(
            clearing_ref="P2", from_bank="BCB", from_acc=BCB_RESERVE, to_bank="JHB", to_acc=JHB_LI_NA, amount_minor=500
        )
    assert world.books("JHB").account(JHB_LI_NA).balance_minor == 800_500  # type: ignore[union-attr]


def test_a_sender_without_the_money_is_rejected_and_nothing_moves(world: World) -> None:
    total = _total(world)
    result = world.clearing.transfer(
        clearing_ref="P3", from_bank="HBB", from_acc=ZHAO_LEI, to_bank="BCB", to_acc=BCB_MERCHANT, amount_minor=1_001
    )
    assert result.status is ClearingStatus.REJECTED
    assert result.reason == "insufficient_funds"
    assert world.books("HBB").account(ZHAO_LEI).balance_minor == 1_000  # type: ignore[union-attr]
    assert _total(world) == total
    _assert_true_books(world)


def test_a_receiver_that_cannot_take_the_money_returns_it_to_the_sender(world: World) -> None:
    world.books("HBB").set_status(HBB_WANG_FANG, AccountStatus.CLOSED)
    total = _total(world)
    result = world.clearing.transfer(
        clearing_ref="P4", from_bank="BCB", from_acc=BCB_RESERVE, to_bank="HBB", to_acc=HBB_WANG_FANG, amount_minor=700
    )
    assert result.status is ClearingStatus.RETURNED
    assert world.books("BCB").account(BCB_RESERVE).balance_minor == 100_000_000  # type: ignore[union-attr]
    assert _total(world) == total
    _assert_true_books(world)


def test_a_half_done_transfer_is_finished_on_restart(tmp_path: Path, seeded_template: Path) -> None:
    world = copy_world(seeded_template, tmp_path)
    clearing = world.clearing
    # Simulate a crash after the sender's bank booked its leg: record and debit, but stop there.
    clearing._record("P5", "BCB", BCB_RESERVE, "JHB", JHB_LI_NA, 900, "")
    found = clearing.find("P5")
    assert found is not None
    clearing._debit_sender(found)
    world.close()

    restarted = World(SimConfig(data_dir=tmp_path))
    assert restarted.clearing.find("P5").status is ClearingStatus.SETTLED  # type: ignore[union-attr]
    assert restarted.books("JHB").account(JHB_LI_NA).balance_minor == 800_900  # type: ignore[union-attr]
    _assert_true_books(restarted)


def test_books_refuse_to_go_negative_even_when_asked_directly(world: World) -> None:
    with pytest.raises(Declined):
        world.books("HBB").transfer(
            bank_ref="X1",
            kind="test",
            debit_acc=ZHAO_LEI,
            credit_acc="6217990000000000998",
            amount_minor=1_001,
            at=world.clock.now(),
        )
    assert world.books("HBB").account(ZHAO_LEI).balance_minor == 1_000  # type: ignore[union-attr]


ACCOUNTS = {
    "HBB": ["6217990000000000014", HBB_WANG_FANG, ZHAO_LEI, "6217990000000000998"],
    "JHB": ["6227990000000000013", JHB_LI_NA, "6227990000000000997"],
    "BCB": [BCB_RESERVE, BCB_MERCHANT, "6230990000000000025"],
}
_account = st.sampled_from([(bank, acc) for bank, accs in ACCOUNTS.items() for acc in accs])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(st.tuples(_account, _account, st.integers(1, 3_000_000)), min_size=1, max_size=15))
def test_any_sequence_of_clearing_transfers_conserves_money(
    tmp_path_factory: pytest.TempPathFactory,
    seeded_template: Path,
    moves: list[tuple[tuple[str, str], tuple[str, str], int]],
) -> None:
    world = copy_world(seeded_template, tmp_path_factory.mktemp("clearing"))
    total = _total(world)
    for (from_bank, from_acc), (to_bank, to_acc), amount_minor in moves:
        if from_bank == to_bank:
            continue
        world.clearing.transfer(
            clearing_ref=f"H{next(_refs)}",
            from_bank=from_bank,
            from_acc=from_acc,
            to_bank=to_bank,
            to_acc=to_acc,
            amount_minor=amount_minor,
        )
    assert _total(world) == total
    _assert_true_books(world)
    world.close()
