"""signMethod 01: a known-answer vector computed with the openssl CLI, and every way HBB's signature is refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tianpay.channels.hbb import signing
from tianpay.channels.hbb.signing import HbbVerifier, SignatureRejected, Signer

from .conftest import HbbPki, Platform
from .kit import NOW, Authority, hbb_signed, verify_platform_signature

# A consume request; the signature below was made independently of this code with
#   printf %s "$DIGEST_HEX" > hex.txt && openssl dgst -sha256 -sign vector_key.pem hex.txt | base64 -w0
VECTOR_FIELDS = {
    "version": "5.1.0",
    "encoding": "UTF-8",
    "signMethod": "01",
    "certId": "68759663125",
    "txnType": "01",
    "txnSubType": "01",
    "bizType": "000201",
    "channelType": "07",
    "accessType": "0",
    "merId": "898120000000001",
    "orderId": "att01JD3Q7W2M9X4N5P6R7S8T9V0AB",
    "txnTime": "20261127103000",
    "txnAmt": "12345",
    "currencyCode": "156",
    "frontUrl": "http://127.0.0.1:8000/cashier/return?x=1&y=2",
    "backUrl": "http://127.0.0.1:8000/channels/hbb/notify",
    "payTimeout": "20261127104500",
    "merAbbr": "津门好物商城",
}
VECTOR_STRING = (
    "accessType=0&backUrl=http://127.0.0.1:8000/channels/hbb/notify&bizType=000201&certId=68759663125"
    "&channelType=07&currencyCode=156&encoding=UTF-8&frontUrl=http://127.0.0.1:8000/cashier/return?x=1&y=2"
    "&merAbbr=津门好物商城&merId=898120000000001&orderId=att01JD3Q7W2M9X4N5P6R7S8T9V0AB"
    "&payTimeout=20261127104500&signMethod=01&txnAmt=12345&txnSubType=01&txnTime=20261127103000&txnType=01"
    "&version=5.1.0"
)
VECTOR_DIGEST = "a4072c60421a54ef4a16bef2d5f5ada0187782c7b484549d4c6ebe21d599bb1a"
VECTOR_SIGNATURE = (
    "LTzrphB1w4OxMIIYkQu1g8vguoQh6Rc/AI6XzddIABDzVJ17u/LXhxeUj15/aqOQEeRefKA6zn8CcZ7Y021foLHXX75r7MD6MUM+j+7AL/Ti"
    "vb6nbLB5s7itstYFj4O7d/jiIX8Yk1+Jfiz7drtsXK+OZkkQNbtfUHavKa3J2z9qLfffvZZBsVGsDcUKcJGkwlGjKyv9dEYtcTuQtdgvV2gY"
    "2VuvC/CdAW/EjDI5h/s4fnMvTOgUYnCImk4wRa9XMdwK/E+JGSDSBO0Ljw3nN5vNRU3njpnFgqAPJlU8BFxhvMalZ6lbH2eC4D+Vz7gqRZMS"
    "dn1qyVV8kfRMLjTDOw=="
)


@pytest.fixture(scope="module")
def vector_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((Path(__file__).parent / "data" / "vector_key.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def test_the_signing_string_sorts_keys_and_keeps_raw_values() -> None:
    assert signing.signing_string({**VECTOR_FIELDS, "signature": "ignored"}) == VECTOR_STRING


def test_the_digest_is_lowercase_hex_sha256_of_the_signing_string() -> None:
    assert signing.digest_hex(VECTOR_FIELDS) == VECTOR_DIGEST


def test_signing_reproduces_the_openssl_vector(vector_key: rsa.RSAPrivateKey) -> None:
    assert signing.sign(VECTOR_FIELDS, vector_key) == VECTOR_SIGNATURE


def test_the_vector_verifies_and_one_tampered_field_does_not(vector_key: rsa.RSAPrivateKey) -> None:
    signed = {**VECTOR_FIELDS, "signature": VECTOR_SIGNATURE}
    assert signing.verify_with_key(signed, vector_key.public_key())
    assert not signing.verify_with_key({**signed, "txnAmt": "12346"}, vector_key.public_key())
    assert not signing.verify_with_key({**signed, "extra": ""}, vector_key.public_key())
    assert not signing.verify_with_key({**signed, "signature": "not base64!"}, vector_key.public_key())
    assert not signing.verify_with_key({**signed, "signature": ""}, vector_key.public_key())


def test_the_signer_adds_its_cert_id_before_signing(vector_key: rsa.RSAPrivateKey) -> None:
    unsigned = {k: v for k, v in VECTOR_FIELDS.items() if k != "certId"}
    signed = Signer(vector_key, "68759663125").signed(unsigned)
    assert signed["certId"] == "68759663125"
    assert signed["signature"] == VECTOR_SIGNATURE


def test_the_signer_never_shows_its_key_in_a_repr(vector_key: rsa.RSAPrivateKey) -> None:
    assert repr(Signer(vector_key, "1")) == "Signer(cert_id='1')"


def test_a_cert_id_is_the_decimal_serial(hbb_pki: HbbPki) -> None:
    assert signing.cert_id(hbb_pki.signing_cert) == "68759663125"


# Verifying HBB's messages


def _verifier(hbb_pki: HbbPki, **kwargs: object) -> HbbVerifier:
    return HbbVerifier([hbb_pki.root.cert], clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


NOTICE = {"respCode": "00", "respMsg": "成功", "merId": "898120000000001", "orderId": "att01JD3Q7W2M", "txnAmt": "100"}


def test_a_message_signed_by_hbbs_signing_certificate_verifies(hbb_pki: HbbPki) -> None:
    message = hbb_signed(NOTICE, hbb_pki.signing_key, hbb_pki.signing_cert)
    assert _verifier(hbb_pki).verify(message) == hbb_pki.signing_cert


def test_a_tampered_field_is_refused(hbb_pki: HbbPki) -> None:
    message = hbb_signed(NOTICE, hbb_pki.signing_key, hbb_pki.signing_cert)
    with pytest.raises(SignatureRejected, match="does not verify"):
        _verifier(hbb_pki).verify({**message, "txnAmt": "10000"})


def test_an_unsigned_message_is_refused(hbb_pki: HbbPki) -> None:
    message = hbb_signed(NOTICE, hbb_pki.signing_key, hbb_pki.signing_cert)
    del message["signature"]
    with pytest.raises(SignatureRejected, match="not signed"):
        _verifier(hbb_pki).verify(message)


def test_a_message_without_its_certificate_is_refused(hbb_pki: HbbPki) -> None:
    message = hbb_signed(NOTICE, hbb_pki.signing_key, hbb_pki.signing_cert)
    del message["signPubKeyCert"]
    with pytest.raises(SignatureRejected, match="missing"):
        _verifier(hbb_pki).verify(message)


def test_a_certificate_with_the_wrong_cn_is_refused(hbb_pki: HbbPki) -> None:
    key, cert = hbb_pki.root.leaf("Huabei Bank Encryption")
    with pytest.raises(SignatureRejected, match="CN"):
        _verifier(hbb_pki).verify(hbb_signed(NOTICE, key, cert))


def test_a_certificate_not_chained_to_hbbs_root_is_refused_even_with_the_right_cn(hbb_pki: HbbPki) -> None:
    forger = Authority.root("Huabei Bank Root CA")
    key, cert = forger.leaf()
    with pytest.raises(SignatureRejected, match="chain"):
        _verifier(hbb_pki).verify(hbb_signed(NOTICE, key, cert))


def test_hbbs_key_in_a_certificate_from_another_root_is_refused(hbb_pki: HbbPki) -> None:
    key, cert = Authority.root().leaf(key=hbb_pki.signing_key)
    with pytest.raises(SignatureRejected, match="chain"):
        _verifier(hbb_pki).verify(hbb_signed(NOTICE, key, cert))


def test_an_expired_certificate_is_refused(hbb_pki: HbbPki) -> None:
    key, cert = hbb_pki.root.leaf(not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(seconds=1))
    with pytest.raises(SignatureRejected, match="validity"):
        _verifier(hbb_pki).verify(hbb_signed(NOTICE, key, cert))


def test_a_certificate_not_yet_valid_is_refused(hbb_pki: HbbPki) -> None:
    key, cert = hbb_pki.root.leaf(not_before=NOW + timedelta(days=1), not_after=NOW + timedelta(days=30))
    with pytest.raises(SignatureRejected, match="validity"):
        _verifier(hbb_pki).verify(hbb_signed(NOTICE, key, cert))


def test_a_leaf_under_an_expired_root_is_refused() -> None:
    root = Authority.root(not_after=NOW - timedelta(days=1))
    key, cert = root.leaf(not_after=NOW + timedelta(days=30))
    with pytest.raises(SignatureRejected, match="validity"):
        HbbVerifier([root.cert], clock=lambda: NOW).verify(hbb_signed(NOTICE, key, cert))


def test_a_ca_certificate_named_like_the_signing_one_cannot_sign(hbb_pki: HbbPki) -> None:
    key, cert = hbb_pki.root.leaf(ca=True)
    with pytest.raises(SignatureRejected, match="CA"):
        _verifier(hbb_pki).verify(hbb_signed(NOTICE, key, cert))


def test_a_cert_id_that_does_not_name_the_certificate_is_refused(hbb_pki: HbbPki) -> None:
    message = hbb_signed(NOTICE, hbb_pki.signing_key, hbb_pki.signing_cert)
    with pytest.raises(SignatureRejected, match="certId"):
        _verifier(hbb_pki).verify({**message, "certId": "1"})


def test_another_sign_method_is_refused(hbb_pki: HbbPki) -> None:
    message = hbb_signed({**NOTICE, "signMethod": "11"}, hbb_pki.signing_key, hbb_pki.signing_cert)
    message["signMethod"] = "11"
    with pytest.raises(SignatureRejected, match="signMethod"):
        _verifier(hbb_pki).verify(message)


def test_a_garbled_certificate_is_refused(hbb_pki: HbbPki) -> None:
    message = hbb_signed(NOTICE, hbb_pki.signing_key, hbb_pki.signing_cert)
    with pytest.raises(SignatureRejected, match="PEM"):
        _verifier(hbb_pki).verify({**message, "signPubKeyCert": "-----BEGIN CERTIFICATE-----\nAAAA\n"})


def test_our_requests_verify_under_our_certificate_with_an_independent_verifier(platform: Platform) -> None:
    signed = Signer(platform.key, signing.cert_id(platform.cert)).signed({"txnType": "00", "orderId": "att12345678"})
    assert verify_platform_signature(signed, platform.cert)
