"""A test-only JHB partner client, written apart from `banksim.jhb` so the tests check the format.

It builds and opens envelopes with gmalg (pure-Python SM2) and `cryptography` (SM4) and its own
canonical string, so a bug shared by the simulator's seal and open paths cannot hide here.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import gmalg
import httpx
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

USER_ID = b"1234567812345678"
ZHANG_WEI_CARD = "6227990000000000013"
LI_NA_CARD = "6227990000000000021"
RESERVE = "6227990000000000997"
BEIJING = timezone(timedelta(hours=8))


def der_to_raw(signature_der: bytes) -> tuple[bytes, bytes]:
    r, s = decode_dss_signature(signature_der)
    return r.to_bytes(32, "big"), s.to_bytes(32, "big")


def raw_to_der(r: bytes, s: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))


def canonical(head: dict[str, str], iv_b64: str, body_b64: str) -> bytes:
    head_json = json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (head_json + "." + iv_b64 + "." + body_b64).encode("utf-8")


def sm4_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    return enc.update(padder.update(plaintext) + padder.finalize()) + enc.finalize()


def sm4_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    dec = Cipher(algorithms.SM4(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(ciphertext) + dec.finalize()) + unpadder.finalize()


def gm_sign(secret_key: bytes, public_key: bytes, message: bytes) -> bytes:
    r, s = gmalg.SM2(sk=secret_key, pk=public_key, uid=USER_ID).sign(message)
    return raw_to_der(r, s)


def gm_verify(public_key: bytes, signature_der: bytes, message: bytes) -> bool:
    r, s = der_to_raw(signature_der)
    return bool(gmalg.SM2(pk=public_key, uid=USER_ID).verify(message, r, s))


def new_partner_keypair() -> tuple[bytes, bytes]:
    """(secret key, public key 04‖x‖y) for the platform side."""
    sk, pk = gmalg.SM2().generate_keypair()
    return sk, pk


@dataclass
class Partner:
    """What the platform keeps after onboarding at JHB."""

    partner_id: str
    secret_key: bytes
    public_key: bytes
    jhb_public_key: bytes
    data_keys: dict[str, bytes]
    key_id: str
    pack: dict[str, Any] = field(default_factory=dict)


class JhbTestClient:
    """Speaks JHB's envelope over real HTTP; every answer is verified and opened."""

    def __init__(self, http: httpx.Client, partner: Partner) -> None:
        self.http = http
        self.partner = partner
        self.last_request: dict[str, Any] = {}
        self.last_request_body: dict[str, Any] = {}

    def head(self, service: str, *, key_id: str | None = None) -> dict[str, str]:
        return {
            "version": "2.0",
            "partner_id": self.partner.partner_id,
            "service": service,
            "req_no": "R" + secrets.token_hex(12),
            "req_time": datetime.now(BEIJING).strftime("%Y%m%d%H%M%S"),
            "key_id": key_id or self.partner.key_id,
        }

    def seal(
        self, service: str, body: dict[str, Any], *, key_id: str | None = None, data_key: bytes | None = None
    ) -> dict[str, Any]:
        head = self.head(service, key_id=key_id)
        key = data_key if data_key is not None else self.partner.data_keys[head["key_id"]]
        iv = secrets.token_bytes(16)
        iv_b64 = base64.b64encode(iv).decode()
        body_b64 = base64.b64encode(sm4_encrypt(key, iv, json.dumps(body).encode())).decode()
        sign = gm_sign(self.partner.secret_key, self.partner.public_key, canonical(head, iv_b64, body_b64))
        return {"head": head, "iv": iv_b64, "body": body_b64, "sign": base64.b64encode(sign).decode()}

    def open(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Verify JHB's signature and decrypt; returns the body (raises AssertionError if forged)."""
        message = canonical(envelope["head"], envelope["iv"], envelope["body"])
        assert gm_verify(self.partner.jhb_public_key, base64.b64decode(envelope["sign"]), message)
        key = self.partner.data_keys[envelope["head"]["key_id"]]
        plain = sm4_decrypt(key, base64.b64decode(envelope["iv"]), base64.b64decode(envelope["body"]))
        body: dict[str, Any] = json.loads(plain)
        return body

    def post_raw(self, service: str, envelope: dict[str, Any], timeout_s: float = 10.0) -> httpx.Response:
        self.last_request = envelope
        return self.http.post(f"/api/{service}", json=envelope, timeout=timeout_s)

    def call(self, service: str, body: dict[str, Any], *, timeout_s: float = 10.0) -> dict[str, Any]:
        """Send one request; return the opened answer body, or the plain error object."""
        self.last_request_body = body
        response = self.post_raw(service, self.seal(service, body), timeout_s)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        if "head" not in answer:
            return answer
        assert answer["head"]["service"] == service
        assert answer["head"]["req_no"] == self.last_request["head"]["req_no"]
        return self.open(answer)


def onboard(http: httpx.Client, *, public_key_text: str | None = None, name: str = "天付支付有限公司") -> Partner:
    """Onboard a fresh platform key pair at JHB and keep what the pack says."""
    secret_key, public_key = new_partner_keypair()
    response = http.post("/_sim/partners", json={"name": name, "public_key": public_key_text or public_key.hex()})
    assert response.status_code == 200, response.text
    pack = response.json()
    return Partner(
        partner_id=pack["partner_id"],
        secret_key=secret_key,
        public_key=public_key,
        jhb_public_key=bytes.fromhex(pack["jhb_public_key_hex"]),
        data_keys={pack["key_id"]: bytes.fromhex(pack["data_key"])},
        key_id=pack["key_id"],
        pack=pack,
    )


def order_no(prefix: str = "T") -> str:
    return prefix + secrets.token_hex(8)


def pay_with_browser(
    base_url: str, redirect_url: str, card_no: str = "6227990000000000013", password: str = "Passw0rd!"
) -> httpx.Response:
    """Play the payer: open JHB's page, log in, confirm; returns the answer to the confirmation."""
    with httpx.Client(base_url=base_url, timeout=10.0, follow_redirects=False) as browser:
        page = browser.get(redirect_url)
        assert page.status_code == 200, page.text
        token = redirect_url.split("token=", 1)[1]
        login = browser.post("/ebank/login", data={"token": token, "card_no": card_no, "password": password})
        assert login.status_code == 303, login.text
        confirm_page = browser.get(login.headers["location"])
        assert confirm_page.status_code == 200, confirm_page.text
        assert "确认支付" in confirm_page.text
        return browser.post("/ebank/confirm", data={"token": token})


def balance(http: httpx.Client, acc_no: str) -> int:
    accounts = http.get("/_sim/state").json()["accounts"]
    return int(next(a["balance_minor"] for a in accounts if a["acc_no"] == acc_no))


def ebank_pay(
    jhb: JhbTestClient, sink_url: str, amount: str, *, notify: str = "ok", timeout_s: float = 10.0, **extra: str
) -> tuple[str, dict[str, Any]]:
    """Place an online-banking order; the notification goes to the sink under the order number."""
    out_trade_no = order_no()
    body = {
        "out_trade_no": out_trade_no,
        "amount": amount,
        "subject": "津门好物 茶叶礼盒",
        "notify_url": f"{sink_url}/notify/{notify}/{out_trade_no}",
        "return_url": "http://shop.example/cashier/return?from=jhb",
        **extra,
    }
    return out_trade_no, jhb.call("ebank.pay", body, timeout_s=timeout_s)


def paid_order(jhb: JhbTestClient, bank_url: str, sink_url: str, amount: str) -> tuple[str, str]:
    """An order Zhang Wei has paid; returns (out_trade_no, jhb_trade_no)."""
    out_trade_no, answer = ebank_pay(jhb, sink_url, amount)
    assert answer["ret_code"] == "0000", answer
    done = pay_with_browser(bank_url, answer["redirect_url"])
    assert "status=SUCCESS" in done.headers["location"]
    return out_trade_no, str(answer["jhb_trade_no"])
