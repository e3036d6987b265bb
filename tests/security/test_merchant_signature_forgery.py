"""Forged and replayed merchant requests on the money-moving entrance, ``POST /v1/payments``.

``tests/api/test_signed_requests.py`` proves each refusal on cheap routes (balance, key rotation);
here every forgery is aimed at creating a payment, and after each one every row of every table is
compared: a request signed with a key other than the one its ``keyid`` names, a body changed after
signing (the old digest kept), a request sent to another target than the one signed, a stale
signature, the same signature twice, and a new signature reusing a nonce. Each is refused with 401,
the envelope and its own code, and nothing at all is written.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from requests_http_signature import HTTPSignatureAuth

from tests.api.conftest import ApiServer, MerchantFactory
from tests.api.rfc9421_client import ALGORITHMS, MERCHANT_ID_HEADER, MerchantCredentials, signature_auth

from .conftest import changed_tables, database_snapshot

_numbers = iter(range(1, 1_000_000))


class _FixedNonceAuth(HTTPSignatureAuth):
    def __init__(self, nonce: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._nonce = nonce

    def get_nonce(self, request: requests.PreparedRequest) -> str | None:
        return self._nonce


def _payment_body() -> dict[str, Any]:
    return {"out_trade_no": f"forgery-{next(_numbers)}", "amount": 8_800, "currency": "CNY", "method": "cashier",
            "subject": "茶叶礼盒"}


def _prepared(server: ApiServer, credentials: MerchantCredentials, auth: requests.auth.AuthBase | None = None,
              path: str = "/v1/payments") -> requests.PreparedRequest:
    return requests.Request(
        "POST", server.url(path), json=_payment_body(), headers={MERCHANT_ID_HEADER: credentials.merchant_id},
        auth=auth or signature_auth(credentials, has_body=True),
    ).prepare()


def _send(prepared: requests.PreparedRequest) -> requests.Response:
    with requests.Session() as session:
        return session.send(prepared, timeout=10)


def _assert_refused_and_nothing_written(server: ApiServer, prepared: requests.PreparedRequest, code: str) -> None:
    before = database_snapshot(server.container.engine)
    response = _send(prepared)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["type"] == "authentication_error"
    assert changed_tables(before, database_snapshot(server.container.engine)) == []


@pytest.fixture
def shop(merchant_factory: MerchantFactory) -> MerchantCredentials:
    return merchant_factory("ed25519")


def test_a_payment_signed_with_another_key_under_the_merchants_keyid_is_refused(
    api_server: ApiServer, shop: MerchantCredentials
) -> None:
    stranger_pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged = dataclasses.replace(shop, private_key_pem=stranger_pem)
    _assert_refused_and_nothing_written(api_server, _prepared(api_server, forged), "signature_invalid")


def test_a_payment_whose_amount_was_changed_after_signing_is_refused(
    api_server: ApiServer, shop: MerchantCredentials
) -> None:
    prepared = _prepared(api_server, shop)
    assert isinstance(prepared.body, bytes)
    prepared.body = prepared.body.replace(b'"amount": 8800', b'"amount": 1')
    prepared.prepare_content_length(prepared.body)
    _assert_refused_and_nothing_written(api_server, prepared, "signature_invalid")


def test_a_payment_sent_to_another_target_than_signed_is_refused(
    api_server: ApiServer, shop: MerchantCredentials
) -> None:
    prepared = _prepared(api_server, shop)
    prepared.prepare_url(api_server.url("/v1/payments?on_behalf_of=someone"), None)
    _assert_refused_and_nothing_written(api_server, prepared, "signature_invalid")


def test_a_stale_signed_payment_is_refused(api_server: ApiServer, shop: MerchantCredentials) -> None:
    auth = signature_auth(shop, has_body=True, created_offset=datetime.timedelta(minutes=-6))
    _assert_refused_and_nothing_written(api_server, _prepared(api_server, shop, auth), "signature_expired")


def test_a_signed_payment_replayed_creates_one_payment(api_server: ApiServer, shop: MerchantCredentials) -> None:
    prepared = _prepared(api_server, shop)
    assert _send(prepared).status_code == 201
    _assert_refused_and_nothing_written(api_server, prepared, "signature_replayed")


def test_a_new_signature_reusing_a_nonce_is_refused(api_server: ApiServer, shop: MerchantCredentials) -> None:
    options: dict[str, Any] = {
        "signature_algorithm": ALGORITHMS[shop.algorithm],
        "key": shop.signing_key, "key_id": shop.key_id, "label": "sig1", "use_nonce": True,
        "covered_component_ids": ("@method", "@target-uri", "content-type"),
    }
    assert _send(_prepared(api_server, shop, _FixedNonceAuth("n-reused-1", **options))).status_code == 201
    second = _prepared(api_server, shop, _FixedNonceAuth("n-reused-1", **options))
    _assert_refused_and_nothing_written(api_server, second, "signature_replayed")
