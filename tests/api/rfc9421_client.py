"""An independent RFC 9421 client for the API tests: ``requests`` + ``requests-http-signature``.

It shares no code with the platform's verifier or the SDK's signer, so a test that passes proves
interoperability with a third-party implementation, not agreement of our code with itself.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import requests
from http_message_signatures import MappingKeyResolver, algorithms
from requests_http_signature import HTTPSignatureAuth

MERCHANT_ID_HEADER = "Tianpay-Merchant-Id"
RESPONSE_COMPONENTS = ("@status", "content-digest", "content-type")

ALGORITHMS: dict[str, type[algorithms.HTTPSignatureAlgorithm]] = {
    "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
    "ed25519": algorithms.ED25519,
    "hmac-sha256": algorithms.HMAC_SHA256,
}


@dataclass(frozen=True)
class MerchantCredentials:
    """What a merchant holds after sign-up. ``signing_key`` is the private PEM or the HMAC secret."""

    merchant_id: str
    key_id: str
    private_key_pem: bytes | None
    webhook_secret: str
    algorithm: str = "rsa-v1_5-sha256"
    hmac_secret: bytes | None = None

    @property
    def signing_key(self) -> bytes:
        key = self.hmac_secret if self.algorithm == "hmac-sha256" else self.private_key_pem
        assert key is not None
        return key


class _BackdatedAuth(HTTPSignatureAuth):
    """Signs with a chosen ``created`` offset (negative: in the past), to test freshness."""

    def __init__(self, *, offset: datetime.timedelta, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._offset = offset

    def get_created(self, request: requests.PreparedRequest) -> datetime.datetime:
        return datetime.datetime.now() + self._offset


def signature_auth(
    credentials: MerchantCredentials,
    *,
    has_body: bool = False,
    key_id: str | None = None,
    use_nonce: bool = True,
    created_offset: datetime.timedelta | None = None,
) -> HTTPSignatureAuth:
    """An auth plugin signing as the merchant: method and target URI, plus content type with a body
    (``requests-http-signature`` adds the Content-Digest and its coverage itself)."""
    components = ("@method", "@target-uri", "content-type") if has_body else ("@method", "@target-uri")
    options: dict[str, Any] = {
        "signature_algorithm": ALGORITHMS[credentials.algorithm],
        "key": credentials.signing_key,
        "key_id": key_id or credentials.key_id,
        "covered_component_ids": components,
        "use_nonce": use_nonce,
        "label": "sig1",
    }
    if created_offset is not None:
        return _BackdatedAuth(offset=created_offset, **options)
    return HTTPSignatureAuth(**options)


@dataclass
class PlatformKey:
    key_id: str
    public_key_pem: bytes


def verify_platform_signature(response: requests.Response, platform_key: PlatformKey) -> None:
    """Raises unless the response is signed by the platform over status, digest and content type."""
    HTTPSignatureAuth.verify(
        response,
        require_components=RESPONSE_COMPONENTS,
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(
            public_keys={platform_key.key_id: platform_key.public_key_pem}, private_keys={}
        ),
        max_age=datetime.timedelta(minutes=5),
    )


@dataclass
class SignedClient:
    """A merchant's HTTP client for tests: signs each request, verifies each response's signature."""

    base_url: str
    credentials: MerchantCredentials
    platform_key: PlatformKey
    session: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, *, json: Any = None, data: bytes | None = None,
                headers: dict[str, str] | None = None, verify: bool = True, **auth_options: Any
                ) -> requests.Response:
        has_body = json is not None or data is not None
        all_headers = {MERCHANT_ID_HEADER: self.credentials.merchant_id, **(headers or {})}
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        response = self.session.request(
            method, self.base_url + path, json=json, data=data, headers=all_headers, timeout=10,
            auth=signature_auth(self.credentials, has_body=has_body, **auth_options),
        )
        if verify:
            verify_platform_signature(response, self.platform_key)
        return response

    def get(self, path: str, **options: Any) -> requests.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, json: Any = None, **options: Any) -> requests.Response:
        return self.request("POST", path, json=json, **options)
