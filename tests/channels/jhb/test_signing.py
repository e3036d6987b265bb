"""The JHB envelope: SM4 bodies and SM3withSM2 signatures, checked against standard vectors and gmalg."""

from __future__ import annotations

import base64
import dataclasses
import json

import gmalg
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from tianpay.channels.jhb import signing, wire
from tianpay.channels.jhb.config import JhbConfig
from tianpay.channels.jhb.signing import SM2_USER_ID, SigningKey, VerifyingKey

DATA_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


def _head(**changes: str) -> wire.Head:
    head = wire.Head("2.0", "JHB00000001", "pay.query", "R0001", "20250102030405", "K202501020001")
    return dataclasses.replace(head, **changes)


def _sealed(key: SigningKey, body: dict[str, str] | None = None) -> wire.Envelope:
    return signing.seal(_head(), body or {"out_trade_no": "att_1", "amount": "12.34"}, DATA_KEY, key)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


def _with(envelope: wire.Envelope, **changes: object) -> wire.Envelope:
    return dataclasses.replace(envelope, **changes)  # type: ignore[arg-type]


def test_a_sealed_envelope_opens_to_the_same_body(key: SigningKey) -> None:
    body = {"out_trade_no": "att_1", "amount": "12.34", "subject": "津门好物 茶叶"}
    envelope = signing.seal(_head(), body, DATA_KEY, key)
    reread = wire.read_envelope(json.loads(envelope.to_json_bytes()))
    assert signing.open_envelope(reread, key.public_key, {"K202501020001": DATA_KEY}) == body


def test_the_canonical_string_is_sorted_compact_head_dot_iv_dot_body() -> None:
    canonical = signing.canonical_string({"version": "2.0", "key_id": "K1"}, "SVY=", "Qk9EWQ==")
    assert canonical == b'{"key_id":"K1","version":"2.0"}.SVY=.Qk9EWQ=='


@pytest.mark.parametrize("part", ["head", "iv", "body", "sign"])
def test_tampering_with_any_part_breaks_the_signature(key: SigningKey, part: str) -> None:
    envelope = _sealed(key)
    other = _sealed(key, {"out_trade_no": "att_2", "amount": "99.99"})
    tampered = {
        "head": _with(envelope, raw_head={**envelope.raw_head, "req_no": "R0002"}),
        "iv": _with(envelope, iv=other.iv),
        "body": _with(envelope, body=other.body),
        "sign": _with(envelope, sign=other.sign),
    }[part]
    with pytest.raises(signing.SignatureInvalid):
        signing.verify(tampered, key.public_key)


def test_a_head_member_the_adapter_does_not_know_is_still_covered(key: SigningKey) -> None:
    envelope = _sealed(key)
    extended = _with(envelope, raw_head={**envelope.raw_head, "extra": "x"})
    with pytest.raises(signing.SignatureInvalid):
        signing.verify(extended, key.public_key)


def test_another_keys_signature_does_not_verify(key: SigningKey) -> None:
    with pytest.raises(signing.SignatureInvalid):
        signing.verify(_sealed(SigningKey.generate()), key.public_key)


def test_garbage_instead_of_a_der_signature_is_just_invalid(key: SigningKey) -> None:
    for sign in ("AAAA", "not base64!", base64.b64encode(b"\x30\x02\x01").decode()):
        with pytest.raises(signing.SignatureInvalid):
            signing.verify(_with(_sealed(key), sign=sign), key.public_key)


def test_a_wrong_data_key_fails_to_decrypt(key: SigningKey) -> None:
    with pytest.raises(signing.DecryptionFailed):
        signing.unseal(_sealed(key), bytes(16))


def test_an_unknown_key_id_fails_to_open(key: SigningKey) -> None:
    with pytest.raises(signing.DecryptionFailed):
        signing.open_envelope(_sealed(key), key.public_key, {"K-other": DATA_KEY})


def test_sm4_matches_the_standard_vector() -> None:
    # GB/T 32907 appendix A: key = plaintext = 0123456789abcdeffedcba9876543210. CBC with a zero IV
    # encrypts the first block exactly as ECB does.
    vector = bytes.fromhex("0123456789abcdeffedcba9876543210")
    ciphertext = signing.sm4_cbc_encrypt(vector, bytes(16), vector)
    assert ciphertext[:16].hex() == "681edf34d206965e86b3e94f536e4246"
    assert signing.sm4_cbc_decrypt(vector, bytes(16), ciphertext) == vector


def test_a_tongsuopy_signature_verifies_with_gmalg(key: SigningKey) -> None:
    message = signing.canonical_string(_head().to_dict(), "aXY=", "Ym9keQ==")
    r, s = decode_dss_signature(key.sign(message))
    verifier = gmalg.SM2(pk=key.public_key.to_point(), uid=SM2_USER_ID)
    assert verifier.verify(message, r.to_bytes(32, "big"), s.to_bytes(32, "big"))
    assert not verifier.verify(message + b"x", r.to_bytes(32, "big"), s.to_bytes(32, "big"))


def test_a_gmalg_signature_verifies_with_tongsuopy() -> None:
    secret, public = gmalg.SM2().generate_keypair()
    message = b'{"key_id":"K1"}.aXY=.Ym9keQ=='
    r, s = gmalg.SM2(sk=secret, pk=public, uid=SM2_USER_ID).sign(message)
    signature = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    verifying = VerifyingKey.from_text(public.hex())
    verifying.verify(signature, message)
    with pytest.raises(signing.SignatureInvalid):
        verifying.verify(signature, message + b"x")


def test_keys_survive_pem_and_point_round_trips(key: SigningKey) -> None:
    again = SigningKey.from_pem(key.to_pem())
    assert again.public_key.to_point() == key.public_key.to_point()
    assert VerifyingKey.from_text(key.public_key.to_pem()).to_point() == key.public_key.to_point()
    assert VerifyingKey.from_text(key.public_key.to_point().hex()[2:]).to_point() == key.public_key.to_point()


def test_no_repr_shows_a_key(key: SigningKey) -> None:
    config = JhbConfig(
        base_url="http://127.0.0.1:1",
        partner_id="JHB00000001",
        platform_private_key=key,
        jhb_public_key=key.public_key,
        data_keys={"K1": DATA_KEY},
        current_key_id="K1",
    )
    text = repr(config) + repr(key) + repr(key.public_key)
    assert DATA_KEY.hex() not in text
    assert "PRIVATE" not in text
    assert "K1" in text
