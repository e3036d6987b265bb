"""The SDK believes only responses signed by the platform's ed25519 key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sdk_fake_platform import FakePlatform, Reply, error_reply
from sdk_support import ClientFactory

from tianpay_sdk import InvalidRequestError, SignatureVerificationError, TianpayClient


def test_a_response_signed_by_the_platform_is_returned(platform: FakePlatform, make_client: ClientFactory) -> None:
    platform.then(Reply(json_body={"id": "pay_1", "status": "processing"}))

    assert make_client().payments.retrieve("pay_1") == {"id": "pay_1", "status": "processing"}


def test_the_platform_key_may_be_given_as_pem(platform: FakePlatform, make_client: ClientFactory) -> None:
    pem = platform.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()

    assert make_client(platform_public_key=pem).balance.retrieve() == {"ok": True}


@pytest.mark.parametrize("signing", ["missing", "tampered", "wrong_key"])
def test_an_unsigned_tampered_or_foreign_response_is_refused(
    signing: str, platform: FakePlatform, make_client: ClientFactory
) -> None:
    platform.then(Reply(json_body={"id": "pay_1", "status": "succeeded"}, signing=signing))

    with pytest.raises(SignatureVerificationError) as raised:
        make_client().payments.retrieve("pay_1")

    assert raised.value.http_status == 200
    assert raised.value.request_id == "req_from_header"


def test_a_signature_under_another_platform_key_id_is_refused(
    platform: FakePlatform, make_client: ClientFactory
) -> None:
    with pytest.raises(SignatureVerificationError):
        make_client(platform_key_id="platform-2023").balance.retrieve()


def test_error_responses_are_verified_too_so_a_forged_decline_is_not_believed(
    platform: FakePlatform, make_client: ClientFactory
) -> None:
    platform.then(
        error_reply(400, "invalid_request_error", "amount_invalid"),
        error_reply(400, "invalid_request_error", "amount_invalid", signing="tampered"),
    )
    client = make_client()

    with pytest.raises(InvalidRequestError):
        client.payments.create(amount=0, currency="CNY")
    with pytest.raises(SignatureVerificationError):
        client.payments.create(amount=0, currency="CNY")


def test_without_a_platform_key_responses_are_not_checked(platform: FakePlatform, make_client: ClientFactory) -> None:
    platform.then(Reply(signing="missing"))

    assert make_client(platform_public_key=None).balance.retrieve() == {"ok": True}


def test_the_platform_key_must_be_ed25519() -> None:
    p256_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    with pytest.raises(TypeError, match="ed25519"):
        TianpayClient("http://127.0.0.1:1", "M1", "k", b"s" * 32, algorithm="hmac-sha256", platform_public_key=p256_pem)
