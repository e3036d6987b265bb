"""JHB's daily statement (`bill.download`) over real loopback HTTP, with JHB's clock moved by the test.

Each test onboards a partner with a reserve account of its own, so the statement of a date lists
only that test's movements. The day is played on a past date D: online banking, quick pay, direct
debit, a refund and a magic-93 payment; then the clock moves past midnight and the file is read
with the csv module, independently of the simulator's renderer.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import secrets
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from jhbsim_kit import (
    ZHANG_WEI_CARD,
    JhbTestClient,
    Partner,
    new_partner_keypair,
    order_no,
    paid_order,
)

from banksim.core.books import Account, AccountKind, AccountStatus
from banksim.core.clock import SHANGHAI, SimClock
from banksim.core.dayend import FEE_KIND
from banksim.core.seed import INCOME_ACCOUNTS

ZHANG = {"card_no": ZHANG_WEI_CARD, "acct_name": "张伟", "id_no": "110105198503120012", "bind_mob": "13800138001"}
# A date well in the past, so moving the clock to it and back never touches "today".
DAY = date.today() - timedelta(days=40)
DETAIL_HEADER = ["交易时间", "交易类型", "JHB流水号", "商户订单号", "金额", "手续费", "状态"]
SUMMARY_HEADER = ["总笔数", "总金额", "总手续费"]


def luhn_number(prefix: str) -> str:
    """A 19-digit Luhn-valid account number on JHB's BIN."""
    body = prefix + "".join(secrets.choice("0123456789") for _ in range(18 - len(prefix)))
    total = 0
    for index, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


@pytest.fixture
def reserve(jhb_world: Any) -> str:
    acc_no = luhn_number("622799")
    account = Account(acc_no, "天付支付有限公司备付金", None, AccountKind.RESERVE, AccountStatus.ACTIVE, 0, None)
    assert jhb_world.context.books.open_account(account, opened_at=jhb_world.context.clock.now())
    return acc_no


@pytest.fixture
def platform(http: httpx.Client, reserve: str) -> JhbTestClient:
    """A partner whose reserve at JHB is the test's own account."""
    secret_key, public_key = new_partner_keypair()
    answer = http.post("/_sim/partners", json={"public_key": public_key.hex(), "reserve_acc_no": reserve})
    assert answer.status_code == 200, answer.text
    pack = answer.json()
    assert pack["reserve_acc_no"] == reserve
    partner = Partner(
        partner_id=pack["partner_id"],
        secret_key=secret_key,
        public_key=public_key,
        jhb_public_key=bytes.fromhex(pack["jhb_public_key_hex"]),
        data_keys={pack["key_id"]: bytes.fromhex(pack["data_key"])},
        key_id=pack["key_id"],
        pack=pack,
    )
    return JhbTestClient(http, partner)


@pytest.fixture
def clock(clock_reset: SimClock) -> SimClock:
    """JHB's clock on DAY at 10:00; `clock_reset` puts it back after the test."""
    clock_reset.set_now(at(DAY, 10))
    return clock_reset


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SHANGHAI)


def latest_code(http: httpx.Client, phone: str) -> str:
    return str(http.get("/_sim/sms", params={"phone": phone}).json()[0]["code"])


def quick_pay(jhb: JhbTestClient, http: httpx.Client, amount: str) -> dict[str, Any]:
    applied = jhb.call("bind.apply", {**ZHANG, "id_type": "0", "user_id": "member-42"})
    assert applied["ret_code"] == "0000", applied
    confirmed = jhb.call("bind.confirm", {"token": applied["token"], "verify_code": latest_code(http, "13800138001")})
    assert confirmed["ret_code"] == "0000", confirmed
    body = {
        "no_agree": confirmed["no_agree"],
        "out_trade_no": order_no("Q"),
        "amount": amount,
        "subject": "津门好物 茶叶礼盒",
        "notify_url": "http://127.0.0.1:9/notify",
    }
    answer = jhb.call("pay", body)
    assert (answer["ret_code"], answer["status"]) == ("0000", "SUCCESS"), answer
    return answer


def direct_debit(jhb: JhbTestClient, http: httpx.Client, amount: str) -> dict[str, Any]:
    applied = jhb.call(
        "mandate.apply",
        {
            **ZHANG, "id_type": "0", "user_id": "member-7", "max_amount_per_debit": "200.00",
            "max_amount_per_month": "300.00", "valid_until": f"{date.today() + timedelta(days=365):%Y%m%d}",
            "purpose": "utility:electricity",
        },
    )
    assert applied["ret_code"] == "0000", applied
    code = latest_code(http, "13800138001")
    confirmed = jhb.call("mandate.confirm", {"token": applied["token"], "verify_code": code})
    assert confirmed["ret_code"] == "0000", confirmed
    body = {
        "mandate_no": confirmed["mandate_no"], "out_trade_no": order_no("D"), "amount": amount,
        "notify_url": "http://127.0.0.1:9/notify",
    }
    answer = jhb.call("mandate.debit", body)
    assert (answer["ret_code"], answer["status"]) == ("0000", "SUCCESS"), answer
    return answer


def refund(jhb: JhbTestClient, out_trade_no: str, amount: str) -> dict[str, Any]:
    body = {"out_refund_no": order_no("R"), "orig_out_trade_no": out_trade_no, "amount": amount, "reason": "退货"}
    answer = jhb.call("refund", body)
    assert (answer["ret_code"], answer["status"]) == ("0000", "SUCCESS"), answer
    return answer


def download(jhb: JhbTestClient, day: date) -> dict[str, Any]:
    return jhb.call("bill.download", {"bill_date": day.isoformat()})


def parse(answer: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """The file's detail rows and its summary row, backticks stripped; checks the hash and layout."""
    assert answer["ret_code"] == "0000", answer
    content = base64.b64decode(answer["bill_content"])
    assert hashlib.sha256(content).hexdigest() == answer["bill_sha256"]
    lines = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    assert lines[0] == DETAIL_HEADER
    assert lines[-2] == SUMMARY_HEADER
    body = [*lines[1:-2], lines[-1]]
    assert all(value.startswith("`") for line in body for value in line)
    details = [[value[1:] for value in line] for line in lines[1:-2]]
    return details, [value[1:] for value in lines[-1]]


def fen(yuan: str) -> int:
    whole, _, cents = yuan.lstrip("-").partition(".")
    return (-1 if yuan.startswith("-") else 1) * (int(whole) * 100 + int(cents))


def fee_transfers(jhb_world: Any, reserve: str) -> list[Any]:
    rows = jhb_world.context.books.query(
        "SELECT * FROM transfers WHERE kind = ? AND debit_acc = ? ORDER BY bank_ref", (FEE_KIND, reserve)
    )
    return [dict(row) for row in rows]


def test_the_statement_lists_the_reserves_movements_of_the_day_with_jhbs_charges(
    platform: JhbTestClient, http: httpx.Client, clock: SimClock, jhb_world: Any, reserve: str
) -> None:
    ebank_no, ebank_jhb_no = paid_order(platform, jhb_world.url, jhb_world.sink_url, "100.00")
    quick = quick_pay(platform, http, "250.00")
    debit = direct_debit(platform, http, "88.88")
    small_no, small_jhb_no = paid_order(platform, jhb_world.url, jhb_world.sink_url, "0.40")
    refunded = refund(platform, ebank_no, "30.00")
    late_no, _ = paid_order(platform, jhb_world.url, jhb_world.sink_url, "12.93")

    clock.set_now(at(DAY + timedelta(days=1), 0, 0, 5))
    details, summary = parse(download(platform, DAY))

    assert [row[1:] for row in details] == [
        ["网银支付", ebank_jhb_no, ebank_no, "100.00", "0.12", "SUCCESS"],
        ["快捷支付", quick["jhb_trade_no"], quick["out_trade_no"], "250.00", "0.30", "SUCCESS"],
        # 88.88 × 12 bps = 0.106656 yuan, half up to 0.11; 0.40 × 12 bps is below a fen: the minimum 0.01.
        ["代扣", debit["jhb_trade_no"], debit["out_trade_no"], "88.88", "0.11", "SUCCESS"],
        ["网银支付", small_jhb_no, small_no, "0.40", "0.01", "SUCCESS"],
        # Refunds are money out of the reserve: negative, and free.
        ["退款", refunded["jhb_refund_no"], refunded["out_refund_no"], "-30.00", "0.00", "SUCCESS"],
    ]
    assert all(row[0].startswith(DAY.isoformat()) for row in details)
    assert summary == ["5", "409.28", "0.54"]
    # The reserve moved by exactly the lines' amounts less their charges on this statement date.
    movements = jhb_world.context.books.movements(reserve, DAY)
    assert sum(m.amount_minor for m in movements) == fen(summary[1]) - fen(summary[2])
    assert late_no not in {row[3] for row in details}


def test_the_day_is_closed_once_so_a_second_download_is_the_same_file(
    platform: JhbTestClient, clock: SimClock, jhb_world: Any, reserve: str
) -> None:
    paid_order(platform, jhb_world.url, jhb_world.sink_url, "100.00")
    paid_order(platform, jhb_world.url, jhb_world.sink_url, "20.00")
    clock.set_now(at(DAY + timedelta(days=2), 9))
    income = INCOME_ACCOUNTS["JHB"]
    income_before = jhb_world.context.books.account(income).balance_minor

    first, second = download(platform, DAY), download(platform, DAY)

    assert first["bill_content"] == second["bill_content"]
    assert first["bill_sha256"] == second["bill_sha256"]
    assert first["bill_name"] == f"JHB_{platform.partner.partner_id}_{DAY:%Y%m%d}.csv"
    fees = fee_transfers(jhb_world, reserve)
    assert sorted(f["amount_minor"] for f in fees) == [2, 12]
    assert {f["statement_date"] for f in fees} == {DAY.isoformat()}
    assert {f["credit_acc"] for f in fees} == {income}
    assert jhb_world.context.books.account(income).balance_minor == income_before + 14
    assert jhb_world.context.books.account(reserve).balance_minor == 12000 - 14


def test_a_day_that_is_not_over_in_jhbs_clock_is_refused_with_1031(
    platform: JhbTestClient, clock: SimClock, jhb_world: Any, reserve: str
) -> None:
    paid_order(platform, jhb_world.url, jhb_world.sink_url, "100.00")
    clock.set_now(at(DAY, 23, 59, 59))

    assert download(platform, DAY)["ret_code"] == "1031"
    assert download(platform, DAY + timedelta(days=3))["ret_code"] == "1031"
    # Refusing closes nothing: no charge is taken before the day is over.
    assert fee_transfers(jhb_world, reserve) == []
    clock.set_now(at(DAY + timedelta(days=1), 0, 0, 1))
    assert download(platform, DAY)["ret_code"] == "0000"


def test_a_magic_93_payment_is_on_the_next_days_statement(
    platform: JhbTestClient, clock: SimClock, jhb_world: Any
) -> None:
    late_no, late_jhb_no = paid_order(platform, jhb_world.url, jhb_world.sink_url, "12.93")
    next_day = DAY + timedelta(days=1)
    clock.set_now(at(next_day, 8))

    today, _ = parse(download(platform, DAY))
    assert today == []
    assert download(platform, next_day)["ret_code"] == "1031"
    clock.set_now(at(next_day + timedelta(days=1), 8))
    details, summary = parse(download(platform, next_day))

    # Paid on D (its time says so), booked and charged on D+1: 12.93 × 12 bps = 0.015516, so 0.02.
    assert [row[1:] for row in details] == [["网银支付", late_jhb_no, late_no, "12.93", "0.02", "SUCCESS"]]
    assert details[0][0].startswith(DAY.isoformat())
    assert summary == ["1", "12.93", "0.02"]


def test_a_date_without_movements_has_an_empty_detail_block_and_a_zero_summary(
    platform: JhbTestClient, clock: SimClock
) -> None:
    details, summary = parse(download(platform, DAY - timedelta(days=1)))

    assert details == []
    assert summary == ["0", "0.00", "0.00"]


@pytest.mark.parametrize("bill_date", ["", "2026/01/01", "2026-02-30", "20260101"])
def test_a_bill_date_that_is_not_a_real_yyyy_mm_dd_is_refused_with_1004(
    platform: JhbTestClient, bill_date: str
) -> None:
    assert platform.call("bill.download", {"bill_date": bill_date})["ret_code"] == "1004"
