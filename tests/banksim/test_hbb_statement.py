"""HBB's statement (txnType 76) against a live world: the file is the reserve's day, charges booked once.

Payments go through HBB's real pages, POS money through TCS's ISO listener, a payout through
backTransReq.do; then the world's clock ends the day and the statement is compared with the books.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from banksim.core.dayend import FEE_KIND
from banksim.core.seed import INCOME_ACCOUNTS
from tests.banksim.acp_kit import Browser, Receiver
from tests.banksim.live_world import Live, file_text, live_world, pos_reversal

HBB_RESERVE = "6217990000000000998"
HBB_INCOME = INCOME_ACCOUNTS["HBB"]
ZHANG_WEI_HBB = "6217990000000000014"
ZHANG_WEI_JHB = "6227990000000000013"
WANG_FANG_HBB = "6217990000000000022"


@pytest.fixture
def live(seeded_template: Path, tmp_path: Path) -> Iterator[Live]:
    yield from live_world(seeded_template, tmp_path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def _pay(live: Live, browser: Browser, receiver: Receiver, amount_minor: int) -> dict[str, str]:
    fields = live.platform.consume(amount_minor, "http://127.0.0.1:9/front", f"{receiver.url}/notify")
    page = browser.pay(fields, ZHANG_WEI_HBB)
    result = page.front_post
    assert result["respCode"] == "00", result
    return result


def _fee_transfers(live: Live) -> list[str]:
    rows = live.world.books("HBB").query("SELECT bank_ref FROM transfers WHERE kind = ?", (FEE_KIND,))
    return sorted(str(row["bank_ref"]) for row in rows)


def test_the_statement_is_the_reserve_day_with_hbbs_charges_in_the_fee_column(live: Live, receiver: Receiver) -> None:
    browser = Browser(live.hbb_url)
    big = _pay(live, browser, receiver, 12_345)
    small = _pay(live, browser, receiver, 100)
    late = _pay(live, browser, receiver, 1_093)
    refund = live.post_back(live.platform.refund(big["queryId"], 2_000, f"{receiver.url}/notify"))
    assert refund["respCode"] == "00"
    tcs = live.tcs
    client = tcs.client()
    own_card = client.send(tcs.purchase(ZHANG_WEI_HBB, 1_000))
    other_bank = client.send(tcs.purchase(ZHANG_WEI_JHB, 2_000))
    undone_request = tcs.purchase(ZHANG_WEI_HBB, 3_000)
    undone = client.send(undone_request)
    assert client.send(pos_reversal(tcs, undone_request)) is not None
    client.close()
    assert own_card is not None
    assert other_bank is not None
    assert undone is not None
    payout = live.post_back(live.payout_fields(WANG_FANG_HBB, "王芳", 5_000))
    assert payout["respCode"] == "00"
    day = live.world.clock.business_date()

    live.end_day()
    answer = live.statement(f"{day:%m%d}")
    live.platform.verify_from_hbb(answer)
    assert answer["respCode"] == "00"
    lines = file_text(answer).splitlines()
    items, trailer = lines[:-1], lines[-1]

    books = live.world.books("HBB")
    kinds = {t.bank_ref: t.kind for t in books.transfers(limit=1000)}
    movements = [m for m in books.movements(HBB_RESERVE, day) if kinds[m.bank_ref] != FEE_KIND]
    assert len(items) == len(movements) == 8
    for line, movement in zip(items, movements, strict=True):
        assert len(line) == 163
        assert int(line[128:141]) + int(line[115:127]) == movement.amount_minor
    assert [line[:3] for line in items] == ["S22", "S22", "S30", "P22", "P22", "P22", "P24", "S40"]
    assert [line[26:66].rstrip() for line in items[:3]] == [big["orderId"], small["orderId"], refund["orderId"]]
    assert [line[26:38] for line in items[3:7]] == [own_card["37"], other_bank["37"], undone["37"], undone["37"]]
    assert [int(line[115:127]) for line in items] == [12, 1, 0, 0, 0, 0, 0, 100]
    assert items[2][142:163] == big["queryId"]
    assert late["queryId"] not in "\n".join(lines)
    net = sum(m.amount_minor for m in movements) - 113
    assert trailer == f"TRL {8:010d} +{net + 113:015d} {113:015d} +{net:015d}"

    assert _fee_transfers(live) == sorted(f"FEE{q}" for q in (big["queryId"], small["queryId"], payout["queryId"]))
    assert books.account(HBB_INCOME).balance_minor == 113  # type: ignore[union-attr]
    again = live.statement(f"{day:%m%d}")
    assert again["fileContent"] == answer["fileContent"]
    assert len(_fee_transfers(live)) == 3


def test_a_93_item_is_on_the_next_days_statement_with_its_charge(live: Live, receiver: Receiver) -> None:
    browser = Browser(live.hbb_url)
    late = _pay(live, browser, receiver, 1_093)
    day = live.world.clock.business_date()
    live.end_day()
    assert late["queryId"] not in file_text(live.statement(f"{day:%m%d}"))
    live.end_day()
    next_day = live.world.clock.business_date().toordinal() - 1
    text = file_text(live.statement(f"{day.fromordinal(next_day):%m%d}"))
    (line,) = [line for line in text.splitlines() if late["queryId"] in line]
    assert line.startswith("S22 ")
    assert int(line[115:127]) == 1
    assert line[128:141] == "+000000001092"


def test_a_day_that_is_not_over_has_no_statement_yet(live: Live) -> None:
    today = live.world.clock.business_date()
    answer = live.statement(f"{today:%m%d}")
    live.platform.verify_from_hbb(answer)
    assert answer["respCode"] == "98"
    assert _fee_transfers(live) == []


def test_tcs_refuses_the_clearing_file_of_a_day_that_is_not_over(live: Live) -> None:
    client = live.tcs.client()
    approved = client.send(live.tcs.purchase(ZHANG_WEI_HBB, 1_000))
    client.close()
    assert approved is not None
    day = live.world.clock.business_date().isoformat()
    params = {"date": day, "acquirer_id": live.tcs.acquirer_id}
    early = httpx.get(f"{live.tcs_admin_url}/_sim/clearing-file", params=params, timeout=10)
    assert early.status_code == 409
    assert "not over" in early.text
    live.end_day()
    later = httpx.get(f"{live.tcs_admin_url}/_sim/clearing-file", params=params, timeout=10)
    assert later.status_code == 200
    assert approved["37"] in later.text
