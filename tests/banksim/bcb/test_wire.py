"""BCB's AIPG test kit: GBK documents signed in place, read back by the simulator's own parser."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa

from banksim.bcb import wire
from banksim.bcb.service import HANDLERS


def test_a_gbk_document_signed_with_an_empty_signed_msg_verifies_and_a_changed_one_does_not() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body = wire.element("BODY", {})
    body.append(wire.element("TRANS", {"ACCOUNT_NAME": "王芳", "AMOUNT": "10000"}))
    raw = wire.sign(wire.build({"TRX_CODE": "100002", "USER_NAME": "200604000000001", "REQ_SN": "R1"}, body), key)
    assert raw.startswith(b'<?xml version="1.0" encoding="GBK"?>')
    assert "王芳".encode("gbk") in raw
    root, document = wire.parse(raw)
    assert document.info["TRX_CODE"] == "100002"
    assert wire.text(document.body, "TRANS/ACCOUNT_NAME") == "王芳"
    assert wire.verify(root, key.public_key())
    tampered, _ = wire.parse(raw.replace(b"10000", b"90000"))
    assert not wire.verify(tampered, key.public_key())


def test_bcb_serves_mandates_debit_payout_query_and_statement() -> None:
    assert set(HANDLERS) == {"100001", "100002", "100010", "100011", "100012", "200004", "200005"}
