"""JHB's notification retries and the rotation of the SM4 data key."""

from __future__ import annotations

import time

import httpx
from jhbsim_kit import JhbTestClient, Partner, ebank_pay, order_no, paid_order, pay_with_browser


def notification_rows(http: httpx.Client, event_ref: str) -> list[dict]:
    return [n for n in http.get("/_sim/state").json()["notifications"] if n["event_ref"] == event_ref]


def test_a_notification_is_retried_until_the_platform_answers_0000(jhb: JhbTestClient, http, jhb_world) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "11.00", notify="fail/3")
    pay_with_browser(jhb_world.url, answer["redirect_url"])
    attempts = jhb_world.sink.wait_for(out_trade_no, count=4)
    assert all(attempt == attempts[0] for attempt in attempts)
    time.sleep(0.3)
    assert len(jhb_world.sink.seen(out_trade_no)) == 4
    [row] = notification_rows(http, "N" + answer["jhb_trade_no"])
    assert (row["status"], row["attempts"]) == ("delivered", 4)


def test_a_bare_ok_is_not_an_acknowledgement(jhb: JhbTestClient, http, jhb_world) -> None:
    out_trade_no, answer = ebank_pay(jhb, jhb_world.sink_url, "12.00", notify="plain-ok")
    pay_with_browser(jhb_world.url, answer["redirect_url"])
    jhb_world.sink.wait_for(out_trade_no, count=3)
    # The bank records an attempt once the answer is back, a moment after the sink saw the request.
    row = _row_after_attempts(http, "N" + answer["jhb_trade_no"], 3)
    assert row["status"] == "pending"
    assert row["attempts"] >= 3


def _row_after_attempts(http: httpx.Client, event_ref: str, attempts: int, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        [row] = notification_rows(http, event_ref)
        if row["attempts"] >= attempts or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def test_the_retry_schedule_is_jhbs_own(jhb_world) -> None:
    policy = jhb_world.context.notifier.policy
    assert policy.delays_s[:4] == (15.0, 15.0, 30.0, 180.0)
    assert len(policy.delays_s) == 15
    assert policy.scale == 0.001


def rotate(http: httpx.Client, partner: Partner, grace_s: float) -> dict:
    response = http.post(f"/_sim/partners/{partner.partner_id}/rotate-key", json={"grace_s": grace_s})
    assert response.status_code == 200, response.text
    rotation = response.json()
    partner.data_keys[rotation["key_id"]] = bytes.fromhex(rotation["data_key"])
    return rotation


def test_after_a_rotation_both_keys_work_until_the_grace_period_ends(
    jhb: JhbTestClient, http, partner: Partner, clock_reset
) -> None:
    old_key_id = partner.key_id
    rotation = rotate(http, partner, grace_s=600)
    assert rotation["key_id"] != old_key_id
    assert rotation["previous_key_ids"] == [old_key_id]
    assert rotation["previous_valid_until"] is not None

    old = jhb.post_raw("pay.query", jhb.seal("pay.query", {"out_trade_no": order_no()})).json()
    assert old["head"]["key_id"] == old_key_id
    assert jhb.open(old)["ret_code"] == "1011"
    partner.key_id = rotation["key_id"]
    new = jhb.post_raw("pay.query", jhb.seal("pay.query", {"out_trade_no": order_no()})).json()
    assert new["head"]["key_id"] == rotation["key_id"]
    assert jhb.open(new)["ret_code"] == "1011"

    clock_reset.advance(601)
    stale = jhb.seal("pay.query", {"out_trade_no": order_no()}, key_id=old_key_id)
    assert jhb.post_raw("pay.query", stale).json()["ret_code"] == "1002"
    assert jhb.call("pay.query", {"out_trade_no": order_no()})["ret_code"] == "1011"


def test_a_rotation_without_grace_retires_the_old_key_at_once(jhb: JhbTestClient, http, partner: Partner) -> None:
    old_key_id = partner.key_id
    rotation = rotate(http, partner, grace_s=0)
    time.sleep(0.01)
    stale = jhb.seal("pay.query", {"out_trade_no": order_no()}, key_id=old_key_id)
    assert jhb.post_raw("pay.query", stale).json()["ret_code"] == "1002"
    partner.key_id = rotation["key_id"]
    assert jhb.call("pay.query", {"out_trade_no": order_no()})["ret_code"] == "1011"


def test_notifications_follow_the_key_the_partner_last_used(jhb: JhbTestClient, http, jhb_world, partner) -> None:
    old_key_id = partner.key_id
    rotation = rotate(http, partner, grace_s=600)
    out_trade_no, _ = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "13.00")
    assert jhb_world.sink.wait_for(out_trade_no)[0]["head"]["key_id"] == old_key_id
    partner.key_id = rotation["key_id"]
    out_trade_no, _ = paid_order(jhb, jhb_world.url, jhb_world.sink_url, "14.00")
    notice = jhb_world.sink.wait_for(out_trade_no)[0]
    assert notice["head"]["key_id"] == rotation["key_id"]
    assert jhb.open(notice)["status"] == "SUCCESS"


def test_rotating_the_key_of_an_unknown_partner_is_404(http: httpx.Client) -> None:
    assert http.post("/_sim/partners/JHB99999999/rotate-key", json={}).status_code == 404
