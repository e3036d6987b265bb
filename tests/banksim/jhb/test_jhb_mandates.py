"""JHB direct-debit mandates (代扣) over real loopback HTTP: mandate.apply → SMS → mandate.confirm →
mandate_no, mandate.debit with no payer step, out-of-mandate 1071 (per debit, per month, revoked),
the magic amounts on debits, and the payer revoking in JHB's app (`POST /_sim/mandates/{no}/revoke`),
which JHB reports to the partner as a signed `mandate.revoke.notify`.
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from typing import Any

import httpx
from jhbsim_kit import RESERVE, ZHANG_WEI_CARD, JhbTestClient, balance, order_no

ZHANG = {"card_no": ZHANG_WEI_CARD, "acct_name": "张伟", "id_no": "110105198503120012", "bind_mob": "13800138001"}


def latest_code(http: httpx.Client, phone: str) -> str:
    return str(http.get("/_sim/sms", params={"phone": phone}).json()[0]["code"])


def sign(jhb: JhbTestClient, http: httpx.Client, per_debit: str = "200.00", per_month: str = "300.00",
         **extra: str) -> str:
    applied = jhb.call(
        "mandate.apply",
        {
            **ZHANG, "id_type": "0", "user_id": "member-7", "max_amount_per_debit": per_debit,
            "max_amount_per_month": per_month, "valid_until": f"{date.today() + timedelta(days=365):%Y%m%d}",
            "purpose": "utility:electricity", **extra,
        },
    )
    assert applied["ret_code"] == "0000", applied
    assert applied["status"] == "APPLIED"
    code = latest_code(http, "13800138001")
    confirmed = jhb.call("mandate.confirm", {"token": applied["token"], "verify_code": code})
    assert confirmed["ret_code"] == "0000", confirmed
    assert confirmed["status"] == "ACTIVE"
    return str(confirmed["mandate_no"])


def debit(jhb: JhbTestClient, mandate_no: str, amount: str, out_trade_no: str | None = None) -> dict[str, Any]:
    return jhb.call(
        "mandate.debit",
        {
            "mandate_no": mandate_no, "out_trade_no": out_trade_no or order_no("D"), "amount": amount,
            "notify_url": "http://127.0.0.1:9/notify",
        },
    )


def test_a_confirmed_mandate_debits_without_a_payer_step(jhb: JhbTestClient, http: httpx.Client) -> None:
    mandate_no = sign(jhb, http)
    card_before, reserve_before = balance(http, ZHANG_WEI_CARD), balance(http, RESERVE)
    answer = debit(jhb, mandate_no, "100.00")
    assert answer["ret_code"] == "0000"
    assert answer["status"] == "SUCCESS"
    assert balance(http, ZHANG_WEI_CARD) == card_before - 10000
    assert balance(http, RESERVE) == reserve_before + 10000
    queried = jhb.call("pay.query", {"out_trade_no": answer["out_trade_no"]})
    assert queried["status"] == "SUCCESS"


def test_the_same_out_trade_no_answers_the_same_debit_again(jhb: JhbTestClient, http: httpx.Client) -> None:
    mandate_no = sign(jhb, http)
    number = order_no("D")
    first = debit(jhb, mandate_no, "10.00", number)
    again = debit(jhb, mandate_no, "10.00", number)
    assert again["jhb_trade_no"] == first["jhb_trade_no"]
    assert debit(jhb, mandate_no, "11.00", number)["ret_code"] == "1010"


def test_debits_outside_the_mandate_are_refused_with_1071(jhb: JhbTestClient, http: httpx.Client) -> None:
    mandate_no = sign(jhb, http)
    card_before = balance(http, ZHANG_WEI_CARD)
    assert debit(jhb, mandate_no, "200.01")["ret_code"] == "1071"  # over the per-debit limit
    assert debit(jhb, mandate_no, "200.00")["ret_code"] == "0000"
    assert debit(jhb, mandate_no, "100.01")["ret_code"] == "1071"  # over the month's 300.00
    assert debit(jhb, mandate_no, "100.00")["ret_code"] == "0000"
    revoked = jhb.call("mandate.revoke", {"mandate_no": mandate_no})
    assert revoked["status"] == "REVOKED"
    assert debit(jhb, mandate_no, "1.00")["ret_code"] == "1071"
    assert balance(http, ZHANG_WEI_CARD) == card_before - 30000


def test_a_declined_debit_does_not_count_against_the_month(jhb: JhbTestClient, http: httpx.Client) -> None:
    mandate_no = sign(jhb, http)
    assert debit(jhb, mandate_no, "150.51")["ret_code"] == "1051"  # magic 51: insufficient funds
    assert debit(jhb, mandate_no, "200.00")["ret_code"] == "0000"


def test_an_unknown_mandate_number_is_refused(jhb: JhbTestClient) -> None:
    assert debit(jhb, "JHM000", "1.00")["ret_code"] == "1068"


def test_the_payer_revoking_in_jhbs_app_is_notified_once_to_the_partner(
    jhb: JhbTestClient, http: httpx.Client, jhb_world: Any
) -> None:
    tag = order_no("R")
    mandate_no = sign(jhb, http, out_mandate_no="mdt_platform_7", notify_url=f"{jhb_world.sink_url}/notify/ok/{tag}")
    revoked = http.post(f"/_sim/mandates/{mandate_no}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "REVOKED"
    [envelope] = jhb_world.sink.wait_for(tag)
    assert envelope["head"]["service"] == "mandate.revoke.notify"
    notice = jhb.open(envelope)
    assert notice["mandate_no"] == mandate_no
    assert notice["out_mandate_no"] == "mdt_platform_7"
    assert notice["status"] == "REVOKED"
    assert notice["revoke_time"]
    assert ZHANG_WEI_CARD not in json.dumps(notice)  # the card travels masked
    assert debit(jhb, mandate_no, "1.00")["ret_code"] == "1071"
    # Revoking again changes nothing and sends nothing new; an unknown number is 404.
    assert http.post(f"/_sim/mandates/{mandate_no}/revoke").json()["status"] == "REVOKED"
    time.sleep(0.3)
    assert len(jhb_world.sink.seen(tag)) == 1
    assert http.post("/_sim/mandates/JHM000/revoke").status_code == 404


def test_a_mandate_without_a_notify_url_is_revoked_silently(jhb: JhbTestClient, http: httpx.Client) -> None:
    mandate_no = sign(jhb, http)
    assert http.post(f"/_sim/mandates/{mandate_no}/revoke").json()["status"] == "REVOKED"
    assert jhb.call("mandate.query", {"mandate_no": mandate_no})["status"] == "REVOKED"
