"""Requests signed by hand from RFC 9421 and RFC 9530 alone: no signing library at all.

``requests-http-signature`` is built on the same ``http-message-signatures`` package the server
verifies with, so a shared misreading of the RFC could pass both. Here the signature base is written
out by hand and signed with ``cryptography``, which proves the server speaks the RFC itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.api.conftest import ApiServer
from tests.api.rfc9421_client import MerchantCredentials


def _signed_headers(
    credentials: MerchantCredentials,
    method: str,
    url: str,
    body: bytes | None,
    *,
    created: int | None = None,
) -> dict[str, str]:
    components = ['"@method"', '"@target-uri"']
    lines = [f'"@method": {method}', f'"@target-uri": {url}']
    headers = {"Tianpay-Merchant-Id": credentials.merchant_id}
    if body is not None:
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
        headers |= {"Content-Type": "application/json", "Content-Digest": digest}
        components += ['"content-type"', '"content-digest"']
        lines += ['"content-type": application/json', f'"content-digest": {digest}']
    params = (
        f'({" ".join(components)});created={created or int(time.time())};keyid="{credentials.key_id}"'
        f';nonce="{secrets.token_urlsafe(16)}";alg="rsa-v1_5-sha256"'
    )
    base = "\n".join([*lines, f'"@signature-params": {params}']).encode()
    assert credentials.private_key_pem is not None
    key = serialization.load_pem_private_key(credentials.private_key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(base, padding.PKCS1v15(), hashes.SHA256())
    headers |= {"Signature-Input": f"sig1={params}", "Signature": f"sig1=:{base64.b64encode(signature).decode()}:"}
    return headers


def test_a_hand_signed_balance_request_is_accepted(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    url = api_server.url("/v1/balance")
    response = httpx.get(url, headers=_signed_headers(merchant_credentials, "GET", url, None))
    assert response.status_code == 200, response.text
    assert response.json()["pending"]["amount"] == 0


def test_a_hand_signed_post_with_a_body_is_accepted_and_a_changed_byte_is_not(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    url = api_server.url("/v1/payments")
    payload = {"out_trade_no": "hand-1", "amount": 1234, "currency": "CNY", "method": "cashier", "subject": "茶具"}
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = _signed_headers(merchant_credentials, "POST", url, body)
    tampered = body.replace(b"1234", b"1235")
    refused = httpx.post(url, content=tampered, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    accepted = httpx.post(url, content=body, headers=_signed_headers(merchant_credentials, "POST", url, body))
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["amount"] == 1234


def test_a_hand_signed_request_replayed_or_stale_is_refused(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    url = api_server.url("/v1/balance")
    headers = _signed_headers(merchant_credentials, "GET", url, None)
    assert httpx.get(url, headers=headers).status_code == 200
    replayed = httpx.get(url, headers=headers)
    assert replayed.status_code == 401
    stale = httpx.get(
        url, headers=_signed_headers(merchant_credentials, "GET", url, None, created=int(time.time()) - 301)
    )
    assert stale.status_code == 401
    assert replayed.json()["error"]["code"] == "signature_replayed"
    assert stale.json()["error"]["code"] == "signature_expired"
