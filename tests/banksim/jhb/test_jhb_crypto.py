"""JHB's envelope crypto checked against an independent implementation (gmalg + our own kit)."""

from __future__ import annotations

import base64

import pytest
from jhbsim_kit import (
    JhbTestClient,
    Partner,
    canonical,
    der_to_raw,
    gm_sign,
    gm_verify,
    new_partner_keypair,
    sm4_decrypt,
)

from banksim.jhb import crypto, envelope


def test_sm4_matches_the_standard_vector() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    block = Cipher(algorithms.SM4(key), modes.ECB()).encryptor().update(key)
    assert block.hex() == "681edf34d206965e86b3e94f536e4246"


def test_a_tongsuopy_signature_verifies_with_gmalg() -> None:
    key = crypto.generate_sm2_private_key()
    signature = crypto.sm2_sign(key, b"head.iv.body")
    public_key = bytes.fromhex(crypto.public_key_to_hex(key.public_key()))
    assert gm_verify(public_key, signature, b"head.iv.body")
    assert not gm_verify(public_key, signature, b"head.iv.bodY")


def test_a_gmalg_signature_verifies_with_tongsuopy() -> None:
    secret_key, public_key = new_partner_keypair()
    signature = gm_sign(secret_key, public_key, b"head.iv.body")
    key = crypto.load_public_key(public_key.hex())
    crypto.sm2_verify(key, signature, b"head.iv.body")
    with pytest.raises(crypto.SignatureInvalid):
        crypto.sm2_verify(key, signature, b"head.iv.bodY")


def test_signatures_are_der_sequences_of_r_and_s() -> None:
    key = crypto.generate_sm2_private_key()
    signature = crypto.sm2_sign(key, b"x")
    assert signature[0] == 0x30
    r, s = der_to_raw(signature)
    assert len(r) == len(s) == 32


def test_garbage_is_an_invalid_signature_not_a_crash() -> None:
    key = crypto.generate_sm2_private_key()
    with pytest.raises(crypto.SignatureInvalid):
        crypto.sm2_verify(key.public_key(), b"not der", b"x")


def test_public_keys_load_from_pem_and_from_hex() -> None:
    key = crypto.generate_sm2_private_key().public_key()
    from_pem = crypto.load_public_key(crypto.public_key_to_pem(key))
    from_hex = crypto.load_public_key(crypto.public_key_to_hex(key))
    from_bare_hex = crypto.load_public_key(crypto.public_key_to_hex(key)[2:])
    assert from_pem.public_numbers() == from_hex.public_numbers() == from_bare_hex.public_numbers()


def test_sm4_cbc_round_trips_and_rejects_a_wrong_key() -> None:
    key, iv = crypto.new_data_key(), crypto.new_iv()
    ciphertext = crypto.sm4_cbc_encrypt(key, iv, "津海银行".encode())
    assert sm4_decrypt(key, iv, ciphertext).decode() == "津海银行"
    assert crypto.sm4_cbc_decrypt(key, iv, ciphertext).decode() == "津海银行"
    with pytest.raises(crypto.DecryptionFailed):
        crypto.sm4_cbc_decrypt(key, iv, ciphertext[:-1])


def _partner_pair() -> tuple[Partner, object]:
    jhb_key = crypto.generate_sm2_private_key()
    secret_key, public_key = new_partner_keypair()
    data_key = crypto.new_data_key()
    partner = Partner(
        partner_id="P1",
        secret_key=secret_key,
        public_key=public_key,
        jhb_public_key=bytes.fromhex(crypto.public_key_to_hex(jhb_key.public_key())),
        data_keys={"K1": data_key},
        key_id="K1",
    )
    return partner, jhb_key


def test_an_envelope_sealed_by_the_bank_opens_in_the_independent_kit() -> None:
    partner, jhb_key = _partner_pair()
    head = envelope.Head("2.0", "P1", "pay.query", "R1", "20260101120000", "K1")
    sealed = envelope.seal(head, {"ret_code": "0000", "amount": "12.34"}, partner.data_keys["K1"], jhb_key)  # type: ignore[arg-type]
    assert JhbTestClient(None, partner).open(sealed) == {"ret_code": "0000", "amount": "12.34"}  # type: ignore[arg-type]


def test_an_envelope_sealed_by_the_kit_opens_in_the_bank() -> None:
    partner, _ = _partner_pair()
    sealed = JhbTestClient(None, partner).seal("ebank.pay", {"subject": "茶叶"})  # type: ignore[arg-type]
    parsed = envelope.parse(sealed)
    envelope.verify(parsed, crypto.load_public_key(partner.public_key.hex()))
    assert envelope.unseal(parsed, partner.data_keys["K1"]) == {"subject": "茶叶"}
    assert parsed.head.service == "ebank.pay"


def test_the_signature_covers_head_iv_and_body() -> None:
    partner, _ = _partner_pair()
    sealed = JhbTestClient(None, partner).seal("ebank.pay", {"a": 1})  # type: ignore[arg-type]
    public_key = crypto.load_public_key(partner.public_key.hex())
    assert canonical(sealed["head"], sealed["iv"], sealed["body"]).startswith(b'{"key_id":"K1","partner_id"')
    for tamper in ("head", "iv", "body"):
        forged = dict(sealed)
        if tamper == "head":
            forged["head"] = {**sealed["head"], "req_no": "R2"}
        else:
            raw = bytearray(base64.b64decode(sealed[tamper]))
            raw[0] ^= 1
            forged[tamper] = base64.b64encode(bytes(raw)).decode()
        with pytest.raises(crypto.SignatureInvalid):
            envelope.verify(envelope.parse(forged), public_key)
