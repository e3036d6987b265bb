"""The signed merchant API against an independent RFC 9421 client (requests-http-signature).

Every algorithm a merchant may use is accepted; a replayed, tampered, stale, future-dated or
unknown-key request is refused with 401 and the error envelope and changes nothing; every response,
refusals included, verifies with the platform's published ed25519 key.
"""

from __future__ import annotations

import datetime
import json

import pytest
import requests
from sqlalchemy import func, select

from tianpay.adapters.db.tables import merchant_keys, request_replays

from .conftest import ApiServer, MerchantFactory
from .rfc9421_client import (
    MERCHANT_ID_HEADER,
    MerchantCredentials,
    PlatformKey,
    SignedClient,
    signature_auth,
    verify_platform_signature,
)


def _count(api_server: ApiServer, table: object) -> int:
    with api_server.container.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _assert_auth_error(response: requests.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == code
    assert error["request_id"] == response.headers["Request-Id"]
    assert error["request_id"].startswith("req_")


def test_the_platform_key_is_published_without_authentication(api_server: ApiServer) -> None:
    response = requests.get(api_server.url("/v1/platform-keys"), timeout=10)
    assert response.status_code == 200
    (key,) = response.json()["data"]
    assert key["key_id"] == api_server.container.platform_key.key_id
    assert key["algorithm"] == "ed25519"
    verify_platform_signature(response, PlatformKey(key["key_id"], key["public_key_pem"].encode()))


@pytest.mark.parametrize("kind", ["rsa", "ed25519", "p256", "hmac"])
def test_a_signed_balance_request_succeeds_with_every_key_type(
    api_server: ApiServer, merchant_factory: MerchantFactory, kind: str
) -> None:
    credentials = merchant_factory(kind)
    client = SignedClient(api_server.base_url, credentials, api_server.platform_key)
    response = client.get("/v1/balance")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "object": "balance",
        "merchant_id": credentials.merchant_id,
        "pending": {"amount": 0, "currency": "CNY"},
        "available": {"amount": 0, "currency": "CNY"},
    }
    assert response.headers["Request-Id"].startswith("req_")


def test_the_same_signed_request_sent_twice_is_refused_the_second_time(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    prepared = requests.Request(
        "GET", api_server.url("/v1/balance"), headers={MERCHANT_ID_HEADER: merchant_credentials.merchant_id},
        auth=signature_auth(merchant_credentials),
    ).prepare()
    with requests.Session() as session:
        first = session.send(prepared, timeout=10)
        replays_after_first = _count(api_server, request_replays)
        second = session.send(prepared, timeout=10)
    assert first.status_code == 200
    _assert_auth_error(second, "signature_replayed")
    verify_platform_signature(second, api_server.platform_key)
    assert _count(api_server, request_replays) == replays_after_first


def test_a_replay_without_a_nonce_is_refused_too(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    prepared = requests.Request(
        "GET", api_server.url("/v1/balance"), headers={MERCHANT_ID_HEADER: merchant_credentials.merchant_id},
        auth=signature_auth(merchant_credentials, use_nonce=False),
    ).prepare()
    with requests.Session() as session:
        assert session.send(prepared, timeout=10).status_code == 200
        _assert_auth_error(session.send(prepared, timeout=10), "signature_replayed")


def _signed_key_rotation(api_server: ApiServer, credentials: MerchantCredentials) -> requests.PreparedRequest:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    new_public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return requests.Request(
        "POST", api_server.url("/v1/keys"), json={"public_key": new_public.decode(), "overlap_s": 60},
        headers={MERCHANT_ID_HEADER: credentials.merchant_id},
        auth=signature_auth(credentials, has_body=True),
    ).prepare()


def test_a_signed_post_is_accepted_and_acts(api_server: ApiServer, merchant_credentials: MerchantCredentials) -> None:
    keys_before = _count(api_server, merchant_keys)
    with requests.Session() as session:
        response = session.send(_signed_key_rotation(api_server, merchant_credentials), timeout=10)
    assert response.status_code == 201, response.text
    verify_platform_signature(response, api_server.platform_key)
    body = response.json()
    assert body["algorithm"] == "ed25519"
    assert [k["key_id"] for k in body["retiring"]] == [merchant_credentials.key_id]
    assert _count(api_server, merchant_keys) == keys_before + 1


def test_one_byte_of_the_body_changed_is_refused_and_changes_nothing(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    prepared = _signed_key_rotation(api_server, merchant_credentials)
    assert isinstance(prepared.body, bytes)
    prepared.body = prepared.body.replace(b'"overlap_s": 60', b'"overlap_s": 61')
    keys_before, replays_before = _count(api_server, merchant_keys), _count(api_server, request_replays)
    with requests.Session() as session:
        response = session.send(prepared, timeout=10)
    _assert_auth_error(response, "signature_invalid")
    verify_platform_signature(response, api_server.platform_key)
    assert _count(api_server, merchant_keys) == keys_before
    assert _count(api_server, request_replays) == replays_before


def test_a_changed_body_with_a_recomputed_digest_is_refused(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    from http_message_signatures import ContentDigest

    prepared = _signed_key_rotation(api_server, merchant_credentials)
    assert isinstance(prepared.body, bytes)
    prepared.body = prepared.body.replace(b'"overlap_s": 60', b'"overlap_s": 61')
    prepared.headers["Content-Digest"] = ContentDigest.create(prepared.body)
    with requests.Session() as session:
        _assert_auth_error(session.send(prepared, timeout=10), "signature_invalid")


def test_a_signature_older_than_the_window_is_refused(api_client: SignedClient, api_server: ApiServer) -> None:
    replays_before = _count(api_server, request_replays)
    response = api_client.get("/v1/balance", created_offset=datetime.timedelta(seconds=-301))
    _assert_auth_error(response, "signature_expired")
    assert _count(api_server, request_replays) == replays_before


def test_a_signature_from_the_future_is_refused(api_client: SignedClient) -> None:
    response = api_client.get("/v1/balance", created_offset=datetime.timedelta(minutes=5))
    _assert_auth_error(response, "signature_not_yet_valid")


def test_an_unknown_keyid_is_refused(api_client: SignedClient, api_server: ApiServer) -> None:
    replays_before = _count(api_server, request_replays)
    response = api_client.get("/v1/balance", key_id="key_DOESNOTEXIST")
    _assert_auth_error(response, "unknown_key")
    assert _count(api_server, request_replays) == replays_before


def test_a_key_of_another_merchant_is_refused(
    api_server: ApiServer, merchant_factory: MerchantFactory
) -> None:
    mine, theirs = merchant_factory("ed25519"), merchant_factory("ed25519")
    response = requests.get(
        api_server.url("/v1/balance"), headers={MERCHANT_ID_HEADER: theirs.merchant_id},
        auth=signature_auth(mine), timeout=10,
    )
    _assert_auth_error(response, "merchant_mismatch")


def test_an_unsigned_request_is_refused_before_routing(api_server: ApiServer) -> None:
    for method, path in (("GET", "/v1/balance"), ("GET", "/v1/no-such-route"), ("POST", "/v1/keys")):
        response = requests.request(method, api_server.url(path), data=b"{not json", timeout=10)
        _assert_auth_error(response, "signature_missing")
        verify_platform_signature(response, api_server.platform_key)


def test_a_signature_that_does_not_cover_the_body_is_refused(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

    prepared = requests.Request(
        "POST", api_server.url("/v1/keys"), json={"public_key": "x"},
        headers={MERCHANT_ID_HEADER: merchant_credentials.merchant_id},
    ).prepare()
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.RSA_V1_5_SHA256,
        key_resolver=MappingKeyResolver(
            public_keys={}, private_keys={merchant_credentials.key_id: merchant_credentials.signing_key}
        ),
    )
    signer.sign(prepared, key_id=merchant_credentials.key_id, covered_component_ids=("@method", "@target-uri"))
    with requests.Session() as session:
        _assert_auth_error(session.send(prepared, timeout=10), "signature_invalid")


def test_a_tampered_response_fails_platform_verification(api_client: SignedClient) -> None:
    from requests_http_signature import InvalidSignature

    response = api_client.get("/v1/balance")
    response._content = json.dumps({"available": {"amount": 10**9, "currency": "CNY"}}).encode()
    with pytest.raises(InvalidSignature):
        verify_platform_signature(response, api_client.platform_key)


def test_a_request_signed_for_another_host_is_refused(api_client: SignedClient) -> None:
    response = api_client.get("/v1/balance", headers={"Host": "api.other.example"})
    _assert_auth_error(response, "signature_invalid")


def test_concurrent_replays_of_one_signature_let_exactly_one_through(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    import threading

    prepared = requests.Request(
        "GET", api_server.url("/v1/balance"), headers={MERCHANT_ID_HEADER: merchant_credentials.merchant_id},
        auth=signature_auth(merchant_credentials),
    ).prepare()
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def send() -> None:
        with requests.Session() as session:
            barrier.wait()
            status = session.send(prepared.copy(), timeout=20).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [401] * 7
