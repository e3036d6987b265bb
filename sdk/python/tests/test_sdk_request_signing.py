"""The SDK's request signatures, checked by the fake platform and by two other verifiers."""

from __future__ import annotations

import time

import cryptography.exceptions
import pytest
import requests
import sdk_independent_rfc9421 as independent
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import MappingKeyResolver
from requests_http_signature import HTTPSignatureAuth
from sdk_fake_platform import FakePlatform, Received
from sdk_support import ALGORITHM_IDS, MERCHANT_ID, ClientFactory, MerchantKey

from tianpay_sdk import AuthenticationError, TianpayClient


def _verify_with_requests_http_signature(received: Received, key: MerchantKey, required: list[str]) -> None:
    prepared = requests.Request(
        received.method, received.url, headers=received.headers, data=received.body or None
    ).prepare()
    HTTPSignatureAuth.verify(
        prepared,
        signature_algorithm=key.algorithm,
        key_resolver=MappingKeyResolver(public_keys={key.key_id: key.public_key}, private_keys={}),
        require_components=required,
    )


@pytest.mark.parametrize("algorithm_id", ALGORITHM_IDS)
def test_each_algorithm_signs_a_post_that_three_verifiers_accept(
    algorithm_id: str,
    platform: FakePlatform,
    make_client: ClientFactory,
    merchant_keys: dict[str, MerchantKey],
) -> None:
    key = merchant_keys[algorithm_id]
    make_client(algorithm_id).payments.create(out_trade_no="T-1", amount=100, currency="CNY", subject="商品")

    assert platform.verification_failures == []
    received = platform.received[0]
    checked = independent.verify(
        received.method, received.url, received.headers, received.body, key.public_key, algorithm_id
    )
    assert checked.label == "sig1"
    assert checked.components == ["@method", "@target-uri", "content-type", "content-digest"]
    _verify_with_requests_http_signature(received, key, ["@method", "@target-uri", "content-digest"])


@pytest.mark.parametrize("algorithm_id", ALGORITHM_IDS)
def test_each_algorithm_signs_a_get_over_method_and_target_uri_only(
    algorithm_id: str,
    platform: FakePlatform,
    make_client: ClientFactory,
    merchant_keys: dict[str, MerchantKey],
) -> None:
    key = merchant_keys[algorithm_id]
    make_client(algorithm_id).payments.list(status="succeeded", limit=10)

    assert platform.verification_failures == []
    received = platform.received[0]
    assert received.url.endswith("/v1/payments?status=succeeded&limit=10")
    checked = independent.verify(received.method, received.url, received.headers, b"", key.public_key, algorithm_id)
    assert checked.components == ["@method", "@target-uri"]
    assert received.header("content-digest") is None
    _verify_with_requests_http_signature(received, key, ["@method", "@target-uri"])


def test_signature_parameters_are_created_keyid_nonce_and_alg(
    platform: FakePlatform, make_client: ClientFactory, merchant_keys: dict[str, MerchantKey]
) -> None:
    key = merchant_keys["ecdsa-p256-sha256"]
    make_client("ecdsa-p256-sha256").balance.retrieve()

    received = platform.received[0]
    params = independent.verify(
        received.method, received.url, received.headers, b"", key.public_key, "ecdsa-p256-sha256"
    ).params
    assert set(params) == {"created", "keyid", "nonce", "alg"}
    assert params["keyid"] == "key-p256"
    assert params["alg"] == "ecdsa-p256-sha256"
    assert abs(int(params["created"]) - time.time()) < 5
    # 16 random bytes are 22 url-safe base64 characters without padding.
    assert len(str(params["nonce"])) >= 22
    assert set(str(params["nonce"])) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_the_content_digest_is_over_the_exact_bytes_sent(platform: FakePlatform, make_client: ClientFactory) -> None:
    make_client().members.create(out_member_id="U1", name="张三")

    received = platform.received[0]
    assert received.header("content-type") == "application/json"
    assert received.body == '{"out_member_id":"U1","name":"张三"}'.encode()


def test_the_merchant_id_travels_in_its_own_header(platform: FakePlatform, make_client: ClientFactory) -> None:
    make_client().balance.retrieve()

    assert platform.received[0].header("Tianpay-Merchant-Id") == MERCHANT_ID
    # Responses must arrive uncompressed so their Content-Digest can be checked on the wire bytes.
    assert platform.received[0].header("Accept-Encoding") == "identity"


def test_a_pem_private_key_works_like_the_key_object(
    platform: FakePlatform, make_client: ClientFactory, merchant_keys: dict[str, MerchantKey]
) -> None:
    pem = merchant_keys["rsa-v1_5-sha256"].private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    client = TianpayClient(platform.base_url, MERCHANT_ID, "key-rsa", pem.decode(), sleep=lambda _: None)
    with client:
        client.balance.retrieve()

    assert platform.verification_failures == []
    assert 'alg="rsa-v1_5-sha256"' in (platform.received[0].header("signature-input") or "")


def test_a_key_the_platform_does_not_hold_is_refused_as_an_authentication_error(
    platform: FakePlatform, make_client: ClientFactory
) -> None:
    with pytest.raises(AuthenticationError) as raised:
        make_client("ed25519", key_id="key-unknown").balance.retrieve()

    assert raised.value.http_status == 401


@pytest.mark.parametrize(
    ("private_key", "algorithm", "message"),
    [
        (b"not a pem and no algorithm", None, "not PEM"),
        (ec.generate_private_key(ec.SECP384R1()), None, "P-256"),
        (b"short", "hmac-sha256", "at least 16 bytes"),
        (ec.generate_private_key(ec.SECP256R1()), "ed25519", "does not match"),
    ],
)
def test_keys_that_cannot_speak_the_contract_are_refused_at_construction(
    private_key: object, algorithm: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TianpayClient("http://127.0.0.1:1", MERCHANT_ID, "k", private_key, algorithm=algorithm)  # type: ignore[arg-type]


def test_the_independent_verifier_is_not_vacuous(
    platform: FakePlatform, make_client: ClientFactory, merchant_keys: dict[str, MerchantKey]
) -> None:
    key = merchant_keys["ed25519"]
    make_client("ed25519").payments.create(out_trade_no="T-1", amount=100, currency="CNY")
    received = platform.received[0]

    with pytest.raises(cryptography.exceptions.InvalidSignature):
        independent.verify("GET", received.url, received.headers, received.body, key.public_key, "ed25519")
    with pytest.raises(AssertionError):
        independent.verify(received.method, received.url, received.headers, b"{}", key.public_key, "ed25519")
