"""BCB's AIPG dialect over real loopback HTTP (docs/banks/bcb.md): a partner onboards with its RSA key,
signs GBK documents, and the simulator answers signed. Covered here: a bad signature is 1106, a
REQ_SN is accepted once (1102), a debit naming another account holder is 3028, the bank enforces
the mandate itself (3071: per debit, per month, revoked), magic 91 is 3999 with nothing recorded
(the query says 1002), magic 94 answers 2000 to the debit and the first two queries then 0000 with
the money moved, and a query for a REQ_SN never sent is 1002.
"""

from __future__ import annotations

import itertools
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from banksim.bcb import wire

WANG_FANG = {"ACCOUNT_NO": "6230990000000000017", "ACCOUNT_NAME": "王芳", "ID": "12010119900725002X",
             "TEL": "13800138002"}
BCB_RESERVE = "6230990000000000991"
_serial = itertools.count(1)


@dataclass(frozen=True)
class Answer:
    info: dict[str, str]
    body: ET.Element

    @property
    def code(self) -> str:
        return self.info["RET_CODE"]


class BcbPartner:
    """A partner of BCB: signs each document with its key, checks every answer against BCB's."""

    def __init__(self, http: httpx.Client, key: rsa.RSAPrivateKey, user_name: str, bcb_key: rsa.RSAPublicKey):
        self.http, self.key, self.user_name, self.bcb_key = http, key, user_name, bcb_key

    def document(self, trx_code: str, req_sn: str, section: str, fields: dict[str, str]) -> ET.Element:
        body = ET.Element("BODY")
        body.append(wire.element(section, fields))
        info = {"TRX_CODE": trx_code, "VERSION": wire.VERSION, "DATA_TYPE": wire.DATA_TYPE, "LEVEL": wire.LEVEL,
                "USER_NAME": self.user_name, "REQ_SN": req_sn}
        return wire.build(info, body)

    def post(self, raw: bytes) -> Answer:
        response = self.http.post("/aipg/ProcessServlet", content=raw,
                                  headers={"Content-Type": "text/xml; charset=GBK"})
        assert response.status_code == 200, response.status_code
        root, document = wire.parse(response.content)
        assert wire.verify(root, self.bcb_key), "BCB's answer must verify with BCB's key"
        return Answer(document.info, document.body)

    def call(self, trx_code: str, section: str, fields: dict[str, str], *, req_sn: str | None = None) -> Answer:
        return self.post(wire.sign(self.document(trx_code, req_sn or new_req_sn(), section, fields), self.key))

    def sign_mandate(self, *, per_debit: int = 100_000, per_month: int = 150_000) -> str:
        until = date.today() + timedelta(days=365)
        applied = self.call("100010", "MANDATE_REQ", {
            **WANG_FANG, "ID_TYPE": "0", "MAX_AMOUNT": str(per_debit), "MAX_MONTH_AMOUNT": str(per_month),
            "END_DATE": f"{until:%Y%m%d}", "PURPOSE": "utility:electricity",
        })
        assert applied.code == "0000", applied.info
        code = self.http.get("/_sim/sms", params={"phone": WANG_FANG["TEL"]}).json()[0]["code"]
        confirmed = self.call("100011", "MANDATE_REQ",
                              {"TOKEN": wire.text(applied.body, "MANDATE_RSP/TOKEN"), "VERIFY_CODE": str(code)})
        assert confirmed.code == "0000", confirmed.info
        return wire.text(confirmed.body, "MANDATE_RSP/MANDATE_NO")

    def debit(self, mandate_no: str, amount_fen: int, *, req_sn: str | None = None,
              name: str = WANG_FANG["ACCOUNT_NAME"]) -> Answer:
        return self.call("100002", "TRANS", {
            "MANDATE_NO": mandate_no, "SN": "0001", "ACCOUNT_NO": WANG_FANG["ACCOUNT_NO"], "ACCOUNT_NAME": name,
            "AMOUNT": str(amount_fen), "SUMMARY": "电费",
        }, req_sn=req_sn)

    def query(self, req_sn: str) -> Answer:
        return self.call("200004", "QTRANSREQ", {"QUERY_SN": req_sn})


def new_req_sn() -> str:
    return f"T{next(_serial):04d}{uuid.uuid4().hex[:16]}"


def detail_code(answer: Answer) -> str:
    """The queried request's code; "no such request" is the query's own RET_CODE 1002 (no QTDETAIL)."""
    if answer.code == "1002":
        assert answer.body.find("QTRANSRSP") is None
        return answer.code
    assert answer.code == "0000", answer.info
    return wire.text(answer.body, "QTRANSRSP/QTDETAIL/RET_CODE")


@pytest.fixture(scope="module")
def bcb(bank_urls: dict[str, str]) -> Iterator[BcbPartner]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with httpx.Client(base_url=bank_urls["BCB"], timeout=15.0) as http:
        pack = http.post("/_sim/partners", json={"name": "天付支付有限公司", "public_key_pem": pem.decode()}).json()
        bcb_key = serialization.load_pem_public_key(pack["bcb_public_key_pem"].encode())
        assert isinstance(bcb_key, rsa.RSAPublicKey)
        yield BcbPartner(http, key, pack["user_name"], bcb_key)


def balance(bcb: BcbPartner, acc_no: str) -> int:
    accounts = bcb.http.get("/_sim/state").json()["accounts"]
    return int(next(a["balance_minor"] for a in accounts if a["acc_no"] == acc_no))


def test_a_document_whose_signature_fails_is_refused_with_1106_and_not_recorded(bcb: BcbPartner) -> None:
    mandate_no = bcb.sign_mandate()
    req_sn = new_req_sn()
    signed = wire.sign(bcb.document("100002", req_sn, "TRANS", {
        "MANDATE_NO": mandate_no, "SN": "0001", "ACCOUNT_NO": WANG_FANG["ACCOUNT_NO"], "ACCOUNT_NAME": "王芳",
        "AMOUNT": "1000", "SUMMARY": "电费",
    }), bcb.key)
    tampered = signed.replace(b"<AMOUNT>1000</AMOUNT>", b"<AMOUNT>9000</AMOUNT>")
    assert tampered != signed
    assert bcb.post(tampered).code == "1106"
    # Signed by a key BCB does not know for this USER_NAME: the same refusal.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert bcb.post(wire.sign(bcb.document("200004", new_req_sn(), "QTRANSREQ", {"QUERY_SN": req_sn}),
                              stranger)).code == "1106"
    assert detail_code(bcb.query(req_sn)) == "1002"


def test_a_req_sn_is_accepted_once(bcb: BcbPartner) -> None:
    mandate_no = bcb.sign_mandate()
    req_sn = new_req_sn()
    card_before = balance(bcb, WANG_FANG["ACCOUNT_NO"])
    assert bcb.debit(mandate_no, 1_000, req_sn=req_sn).code == "0000"
    again = bcb.debit(mandate_no, 1_000, req_sn=req_sn)
    assert again.code == "1102"
    assert balance(bcb, WANG_FANG["ACCOUNT_NO"]) == card_before - 1_000
    assert detail_code(bcb.query(req_sn)) == "0000"


def test_a_debit_naming_another_account_holder_is_3028(bcb: BcbPartner) -> None:
    mandate_no = bcb.sign_mandate()
    card_before = balance(bcb, WANG_FANG["ACCOUNT_NO"])
    answer = bcb.debit(mandate_no, 1_000, name="王小芳")
    assert wire.text(answer.body, "TRANSRET/RET_CODE") == "3028"
    assert balance(bcb, WANG_FANG["ACCOUNT_NO"]) == card_before


def test_the_bank_enforces_the_mandate_itself_with_3071(bcb: BcbPartner) -> None:
    mandate_no = bcb.sign_mandate(per_debit=100_000, per_month=150_000)
    card_before = balance(bcb, WANG_FANG["ACCOUNT_NO"])
    assert wire.text(bcb.debit(mandate_no, 100_001).body, "TRANSRET/RET_CODE") == "3071"  # per debit
    assert bcb.debit(mandate_no, 100_000).code == "0000"
    assert wire.text(bcb.debit(mandate_no, 50_001).body, "TRANSRET/RET_CODE") == "3071"  # per month
    assert bcb.debit(mandate_no, 50_000).code == "0000"
    assert balance(bcb, WANG_FANG["ACCOUNT_NO"]) == card_before - 150_000

    other = bcb.sign_mandate()
    revoked = bcb.call("100012", "MANDATE_REQ", {"MANDATE_NO": other})
    assert wire.text(revoked.body, "MANDATE_RSP/STATUS") == "REVOKED"
    assert wire.text(bcb.debit(other, 1_000).body, "TRANSRET/RET_CODE") == "3071"
    assert balance(bcb, WANG_FANG["ACCOUNT_NO"]) == card_before - 150_000


def test_magic_91_is_3999_and_nothing_is_recorded(bcb: BcbPartner) -> None:
    mandate_no = bcb.sign_mandate()
    card_before = balance(bcb, WANG_FANG["ACCOUNT_NO"])
    req_sn = new_req_sn()
    assert bcb.debit(mandate_no, 1_091, req_sn=req_sn).code == "3999"
    assert detail_code(bcb.query(req_sn)) == "1002"
    assert balance(bcb, WANG_FANG["ACCOUNT_NO"]) == card_before
    # Not recorded, so the REQ_SN is not spent either (the platform never resends it: docs/banks/bcb.md).
    assert bcb.debit(mandate_no, 1_000, req_sn=req_sn).code == "0000"


def test_magic_94_is_2000_then_two_queries_say_2000_and_the_third_0000(bcb: BcbPartner) -> None:
    mandate_no = bcb.sign_mandate()
    card_before, reserve_before = balance(bcb, WANG_FANG["ACCOUNT_NO"]), balance(bcb, BCB_RESERVE)
    req_sn = new_req_sn()
    answer = bcb.debit(mandate_no, 1_094, req_sn=req_sn)
    assert answer.code == "2000"
    assert [detail_code(bcb.query(req_sn)) for _ in range(2)] == ["2000", "2000"]
    assert balance(bcb, WANG_FANG["ACCOUNT_NO"]) == card_before
    assert detail_code(bcb.query(req_sn)) == "0000"
    assert balance(bcb, WANG_FANG["ACCOUNT_NO"]) == card_before - 1_094
    assert balance(bcb, BCB_RESERVE) == reserve_before + 1_094
    assert detail_code(bcb.query(req_sn)) == "0000"


def test_a_query_for_a_req_sn_never_sent_is_1002(bcb: BcbPartner) -> None:
    assert detail_code(bcb.query(new_req_sn())) == "1002"
