"""HBB payout (txnType 12) against a live world: same bank, across the clearing, declines and magic amounts.

Every request is signed and its account number encrypted as the platform would (tests/banksim/live_world.py);
balances are read from the banks' books, the payout's fate from HBB's query (txnType 00).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.banksim.acp_kit import Receiver, wait_for
from tests.banksim.live_world import Live, live_world

HBB_RESERVE = "6217990000000000998"
WANG_FANG_HBB = "6217990000000000022"
ZHANG_WEI_JHB = "6227990000000000013"
NOBODY_HBB = "6217990000000000774"


@pytest.fixture
def live(seeded_template: Path, tmp_path: Path) -> Iterator[Live]:
    yield from live_world(seeded_template, tmp_path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def _balance(live: Live, bank: str, acc_no: str) -> int:
    account = live.world.books(bank).account(acc_no)
    assert account is not None
    return account.balance_minor


def _query(live: Live, fields: dict[str, str]) -> dict[str, str]:
    return live.post_back(live.platform.query(fields["orderId"], fields["txnTime"]), "queryTrans.do")


def test_a_payout_to_an_hbb_account_moves_reserve_money_and_is_notified(live: Live, receiver: Receiver) -> None:
    reserve, payee = _balance(live, "HBB", HBB_RESERVE), _balance(live, "HBB", WANG_FANG_HBB)
    fields = live.payout_fields(WANG_FANG_HBB, "王芳", 5_000, f"{receiver.url}/payout")
    answer = live.post_back(fields)
    live.platform.verify_from_hbb(answer)
    assert (answer["respCode"], answer["txnType"], answer["accNo"]) == ("00", "12", "621799*********0022")
    assert _balance(live, "HBB", HBB_RESERVE) == reserve - 5_000
    assert _balance(live, "HBB", WANG_FANG_HBB) == payee + 5_000
    queried = _query(live, fields)
    assert (queried["respCode"], queried["origRespCode"], queried["queryId"]) == ("00", "00", answer["queryId"])
    wait_for(lambda: receiver.at("/payout"))
    notice = receiver.at("/payout")[0].fields
    live.platform.verify_from_hbb(notice)
    assert (notice["respCode"], notice["orderId"], notice["txnType"]) == ("00", fields["orderId"], "12")


def test_a_payout_to_another_banks_account_goes_through_the_clearing(live: Live) -> None:
    total = sum(live.world.books(code).total_minor() for code in live.world.contexts)
    payee = _balance(live, "JHB", ZHANG_WEI_JHB)
    answer = live.post_back(live.payout_fields(ZHANG_WEI_JHB, "张伟", 7_000))
    assert answer["respCode"] == "00"
    assert _balance(live, "JHB", ZHANG_WEI_JHB) == payee + 7_000
    assert live.world.clearing.positions() == {"HBB": 7_000, "JHB": -7_000}
    assert sum(live.world.books(code).total_minor() for code in live.world.contexts) == total


@pytest.mark.parametrize(
    ("acc_no", "name", "amount_minor", "code"),
    [
        (WANG_FANG_HBB, "王小芳", 5_000, "56"),
        (NOBODY_HBB, "王芳", 5_000, "14"),
        ("6212340000000000011", "王芳", 5_000, "14"),
        (WANG_FANG_HBB, "王芳", 5_051, "51"),
        (WANG_FANG_HBB, "王芳", 5_061, "61"),
        (WANG_FANG_HBB, "王芳", 5_091, "91"),
    ],
)
def test_a_payout_hbb_refuses_moves_nothing(live: Live, acc_no: str, name: str, amount_minor: int, code: str) -> None:
    reserve = _balance(live, "HBB", HBB_RESERVE)
    fields = live.payout_fields(acc_no, name, amount_minor)
    answer = live.post_back(fields)
    assert answer["respCode"] == code
    assert _balance(live, "HBB", HBB_RESERVE) == reserve
    queried = _query(live, fields)
    # 91 is refused before processing, so HBB has no record of it; the others are final failures.
    assert (queried["respCode"], queried.get("origRespCode")) == (("34", None) if code == "91" else ("00", code))


def test_more_than_the_reserve_holds_is_declined_51(live: Live) -> None:
    reserve = _balance(live, "HBB", HBB_RESERVE)
    answer = live.post_back(live.payout_fields(WANG_FANG_HBB, "王芳", reserve + 100))
    assert answer["respCode"] == "51"
    assert _balance(live, "HBB", HBB_RESERVE) == reserve


def test_a_94_payout_is_processing_for_two_queries_then_paid(live: Live) -> None:
    payee = _balance(live, "HBB", WANG_FANG_HBB)
    fields = live.payout_fields(WANG_FANG_HBB, "王芳", 5_094)
    assert live.post_back(fields)["respCode"] == "05"
    assert [_query(live, fields)["origRespCode"] for _ in range(3)] == ["05", "05", "00"]
    assert _balance(live, "HBB", WANG_FANG_HBB) == payee + 5_094


def test_a_96_payout_is_paid_although_the_answer_never_comes(live: Live) -> None:
    payee = _balance(live, "HBB", WANG_FANG_HBB)
    fields = live.payout_fields(WANG_FANG_HBB, "王芳", 5_096)
    with pytest.raises(httpx.ReadTimeout):
        live.post_back(fields, timeout_s=0.5)
    assert _query(live, fields)["origRespCode"] == "00"
    assert _balance(live, "HBB", WANG_FANG_HBB) == payee + 5_096


def test_a_98_payout_is_paid_but_its_notification_is_never_sent(live: Live, receiver: Receiver) -> None:
    answer = live.post_back(live.payout_fields(WANG_FANG_HBB, "王芳", 5_098, f"{receiver.url}/payout98"))
    assert answer["respCode"] == "00"
    books = live.world.books("HBB")
    rows = books.query("SELECT status FROM notifications WHERE event_ref LIKE ?", (answer["queryId"] + "%",))
    assert [row["status"] for row in rows] == ["suppressed"]


def test_the_same_order_id_twice_is_a_duplicate(live: Live) -> None:
    fields = live.payout_fields(WANG_FANG_HBB, "王芳", 5_000)
    assert live.post_back(fields)["respCode"] == "00"
    assert live.post_back(fields)["respCode"] == "12"
