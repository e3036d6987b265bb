"""JHB's envelope over real HTTP: answers are sealed and signed, forgeries and bad keys are refused."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from jhbsim_kit import JhbTestClient, Partner, canonical, gm_sign, gm_verify, onboard, order_no

from banksim.jhb import crypto


def _flip_first_byte(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_onboarding_gives_the_platform_what_it_needs(partner: Partner) -> None:
    pack = partner.pack
    assert pack["partner_id"].startswith("JHB")
    assert pack["signature_encoding"] == "DER"
    assert pack["sm2_user_id"] == "1234567812345678"
    assert len(bytes.fromhex(pack["data_key"])) == 16
    assert pack["reserve_acc_no"] == "6227990000000000997"
    pem_key = crypto.load_public_key(pack["jhb_public_key_pem"])
    assert crypto.public_key_to_hex(pem_key) == pack["jhb_public_key_hex"]


def test_onboarding_the_same_key_twice_gives_the_same_partner_and_key(http: httpx.Client) -> None:
    first = onboard(http)
    again = http.post("/_sim/partners", json={"name": "x", "public_key": first.public_key.hex()}).json()
    assert (again["partner_id"], again["key_id"], again["data_key"]) == (
        first.partner_id,
        first.key_id,
        first.pack["data_key"],
    )


def test_onboarding_accepts_a_pem_public_key_and_refuses_garbage(http: httpx.Client) -> None:
    key = crypto.generate_sm2_private_key()
    pem = crypto.public_key_to_pem(key.public_key())
    assert http.post("/_sim/partners", json={"public_key": pem}).status_code == 200
    assert http.post("/_sim/partners", json={"public_key": "04abcd"}).status_code == 400
    assert http.post("/_sim/partners", json={}).status_code == 400


def test_an_answer_is_a_sealed_envelope_signed_by_jhb(jhb: JhbTestClient, partner: Partner) -> None:
    response = jhb.post_raw("pay.query", jhb.seal("pay.query", {"out_trade_no": order_no()}))
    envelope = response.json()
    assert set(envelope) == {"head", "iv", "body", "sign"}
    assert set(envelope["head"]) == {"version", "partner_id", "service", "req_no", "req_time", "key_id"}
    assert envelope["head"]["version"] == "2.0"
    assert envelope["head"]["req_no"] == jhb.last_request["head"]["req_no"]
    assert len(base64.b64decode(envelope["iv"])) == 16
    message = canonical(envelope["head"], envelope["iv"], envelope["body"])
    assert gm_verify(partner.jhb_public_key, base64.b64decode(envelope["sign"]), message)
    assert jhb.open(envelope)["ret_code"] == "1011"


@pytest.mark.parametrize("part", ["head", "iv", "body"])
def test_a_tampered_envelope_is_refused_with_1001(jhb: JhbTestClient, part: str) -> None:
    sealed = jhb.seal("pay.query", {"out_trade_no": order_no()})
    if part == "head":
        sealed["head"] = {**sealed["head"], "req_no": sealed["head"]["req_no"] + "X"}
    else:
        sealed[part] = _flip_first_byte(sealed[part])
    answer = jhb.post_raw("pay.query", sealed).json()
    assert answer["ret_code"] == "1001"
    assert "head" not in answer


def test_a_request_signed_by_another_key_is_refused_with_1001(http: httpx.Client, partner: Partner) -> None:
    stranger = onboard(http)
    impostor = Partner(**{**partner.__dict__, "secret_key": stranger.secret_key, "public_key": stranger.public_key})
    answer = JhbTestClient(http, impostor).call("pay.query", {"out_trade_no": order_no()})
    assert answer["ret_code"] == "1001"


def test_a_body_under_the_wrong_data_key_is_refused_with_1002(jhb: JhbTestClient) -> None:
    sealed = jhb.seal("pay.query", {"out_trade_no": order_no()}, data_key=bytes(16))
    assert jhb.post_raw("pay.query", sealed).json()["ret_code"] == "1002"


def test_an_unknown_or_foreign_key_id_is_refused_with_1002(http: httpx.Client, jhb: JhbTestClient) -> None:
    unknown = jhb.seal("pay.query", {"out_trade_no": order_no()}, key_id="K000", data_key=bytes(16))
    assert jhb.post_raw("pay.query", unknown).json()["ret_code"] == "1002"
    other = onboard(http)
    foreign_key = other.data_keys[other.key_id]
    foreign = jhb.seal("pay.query", {"out_trade_no": order_no()}, key_id=other.key_id, data_key=foreign_key)
    assert jhb.post_raw("pay.query", foreign).json()["ret_code"] == "1002"


def test_an_unknown_partner_is_refused_with_1003(jhb: JhbTestClient, partner: Partner) -> None:
    sealed = jhb.seal("pay.query", {"out_trade_no": order_no()})
    sealed["head"]["partner_id"] = "JHB99999999"
    assert jhb.post_raw("pay.query", sealed).json()["ret_code"] == "1003"


def test_malformed_messages_are_refused_with_1004(http: httpx.Client, jhb: JhbTestClient) -> None:
    assert http.post("/api/pay.query", content=b"not json").json()["ret_code"] == "1004"
    assert http.post("/api/pay.query", json=["a"]).json()["ret_code"] == "1004"
    sealed = jhb.seal("pay.query", {"out_trade_no": order_no()})
    assert http.post("/api/refund.query", json=sealed).json()["ret_code"] == "1004"
    missing = {k: v for k, v in sealed.items() if k != "iv"}
    assert http.post("/api/pay.query", json=missing).json()["ret_code"] == "1004"


def test_a_body_missing_required_fields_gets_a_sealed_1004(jhb: JhbTestClient) -> None:
    answer = jhb.call("ebank.pay", {"out_trade_no": order_no(), "amount": "1.00"})
    assert answer["ret_code"] == "1004"


def test_services_jhb_does_not_offer_answer_1006(jhb: JhbTestClient) -> None:
    assert jhb.call("no.such", {})["ret_code"] == "1006"


BAD_AMOUNTS = ["12.3", "12.345", "-1.00", "0.00", "012.34", "1,000.00", " 12.34", "12", "１２.３４", "1e3"]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_amounts_must_be_positive_yuan_strings_with_two_decimals(jhb: JhbTestClient, jhb_world, amount: str) -> None:
    body = {
        "out_trade_no": order_no(),
        "amount": amount,
        "subject": "测试",
        "notify_url": f"{jhb_world.sink_url}/notify/ok/x",
        "return_url": "http://shop.example/return",
    }
    assert jhb.call("ebank.pay", body)["ret_code"] == "1005"


def test_a_json_number_is_not_an_amount(jhb: JhbTestClient, jhb_world) -> None:
    body = {
        "out_trade_no": order_no(),
        "amount": 12.34,
        "subject": "测试",
        "notify_url": f"{jhb_world.sink_url}/notify/ok/x",
        "return_url": "http://shop.example/return",
    }
    assert jhb.call("ebank.pay", body)["ret_code"] == "1005"


def test_the_answer_body_is_utf8_json(jhb: JhbTestClient) -> None:
    answer = jhb.call("pay.query", {"out_trade_no": order_no()})
    assert answer["ret_msg"] == "订单不存在"
    json.dumps(answer, ensure_ascii=False)


def test_a_req_time_that_is_not_yyyymmddhhmmss_is_refused_with_1004(jhb: JhbTestClient) -> None:
    sealed = jhb.seal("pay.query", {"out_trade_no": order_no()})
    sealed["head"]["req_time"] = "2026-11-27 10:00:00"
    # The head is signed, so re-sign it as the partner would have.
    message = canonical(sealed["head"], sealed["iv"], sealed["body"])
    sealed["sign"] = base64.b64encode(gm_sign(jhb.partner.secret_key, jhb.partner.public_key, message)).decode()
    assert jhb.post_raw("pay.query", sealed).json()["ret_code"] == "1004"
