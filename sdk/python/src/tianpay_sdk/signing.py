"""RFC 9421 message signatures as the Tianpay merchant API uses them.

Requests are signed with the merchant's key (label `sig1`, covering method, target URI and,
when there is a body, content type and RFC 9530 content digest); responses are verified
against the platform's ed25519 key. The `http-message-signatures` library does the RFC work.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

from .errors import SignatureVerificationError

SIGNATURE_LABEL: Final = "sig1"
REQUEST_COMPONENTS: Final = ("@method", "@target-uri")
REQUEST_BODY_COMPONENTS: Final = ("@method", "@target-uri", "content-type", "content-digest")
RESPONSE_COMPONENTS: Final = ("@status", "content-digest", "content-type")
NONCE_BYTES: Final = 16
HMAC_SHA256: Final = "hmac-sha256"
# The platform rejects request signatures older than five minutes; a response older than that
# is as suspect, since it cannot be the answer to a request made just now.
RESPONSE_MAX_AGE: Final = datetime.timedelta(minutes=5)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
Algorithm = type[algorithms.HTTPSignatureAlgorithm]


class _OneKey(HTTPSignatureKeyResolver):
    """Holds one key: the merchant's for signing, or the platform's for verifying.

    When verifying with a configured key id, a signature naming another key id finds no key.
    """

    def __init__(self, key_id: str | None, key: object) -> None:
        self._key_id = key_id
        self._key = key

    def resolve_private_key(self, key_id: str) -> Any:
        return self._key

    def resolve_public_key(self, key_id: str) -> Any:
        # Without a configured key id any key id is accepted: the key itself is what is trusted.
        if self._key_id is not None and key_id != self._key_id:
            return None
        return self._key


class _ClockTolerantVerifier(HTTPMessageVerifier):
    # The library allows only 5 s of clock skew for a `created` in the future; merchant servers'
    # clocks drift further than that, and a false alarm here would fail a payment that went through.
    max_clock_skew = datetime.timedelta(seconds=60)


def load_signing_key(private_key: str | bytes | PrivateKey, algorithm: str | None) -> tuple[Algorithm, Any]:
    """Returns the signature algorithm and key material for the merchant's key.

    The algorithm follows from the key type; `algorithm` is needed only to mark raw bytes as an
    HMAC secret, and when given for another key it must agree with the key.
    """
    if algorithm == HMAC_SHA256:
        return algorithms.HMAC_SHA256, _hmac_secret(private_key)
    key = _load_private_key(private_key)
    chosen = _algorithm_for(key)
    if algorithm is not None and algorithm != chosen.algorithm_id:
        raise ValueError(f"algorithm {algorithm!r} does not match a {chosen.algorithm_id} key")
    return chosen, key


def _hmac_secret(secret: object) -> bytes:
    if not isinstance(secret, bytes):
        raise TypeError("an hmac-sha256 secret must be bytes")
    if len(secret) < 16:
        raise ValueError("an hmac-sha256 secret must be at least 16 bytes")
    return secret


def _load_private_key(private_key: str | bytes | PrivateKey) -> PrivateKey:
    if isinstance(private_key, str):
        private_key = private_key.encode()
    if not isinstance(private_key, bytes):
        return private_key
    if not private_key.lstrip().startswith(b"-----BEGIN"):
        raise ValueError('private_key bytes are not PEM; pass algorithm="hmac-sha256" for a shared secret')
    loaded = load_pem_private_key(private_key, password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise TypeError(f"unsupported private key type {type(loaded).__name__}")
    return loaded


def _algorithm_for(key: object) -> Algorithm:
    if isinstance(key, rsa.RSAPrivateKey):
        return algorithms.RSA_V1_5_SHA256
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return algorithms.ED25519
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"ECDSA keys must be on P-256, not {key.curve.name}")
        return algorithms.ECDSA_P256_SHA256
    raise TypeError(f"unsupported private key type {type(key).__name__}")


def load_platform_key(public_key: str | bytes | ed25519.Ed25519PublicKey) -> ed25519.Ed25519PublicKey:
    """Loads the platform's response-signing key, which is always ed25519."""
    if isinstance(public_key, str):
        public_key = public_key.encode()
    if isinstance(public_key, bytes):
        public_key = load_pem_public_key(public_key)  # type: ignore[assignment]
    if not isinstance(public_key, ed25519.Ed25519PublicKey):
        raise TypeError("platform_public_key must be an ed25519 public key")
    return public_key


class RequestSigner:
    """Signs outgoing requests with the merchant's key."""

    def __init__(self, key_id: str, algorithm: Algorithm, key: Any) -> None:
        self._key_id = key_id
        self._signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=_OneKey(key_id, key))

    def sign(self, request: httpx.Request, body: bytes | None) -> None:
        """Adds `Content-Digest`, `Signature-Input` and `Signature` to `request` in place.

        Each call takes a new `created` and `nonce`, because the platform refuses a signature or
        nonce it has seen before, so a retried request must be signed again.
        """
        self._signer.sign(
            request,
            key_id=self._key_id,
            created=datetime.datetime.now(datetime.UTC),
            nonce=secrets.token_urlsafe(NONCE_BYTES),
            label=SIGNATURE_LABEL,
            covered_component_ids=REQUEST_BODY_COMPONENTS if body is not None else REQUEST_COMPONENTS,
            body=body,
        )


class ResponseVerifier:
    """Checks that a response, status and body included, was signed by the platform."""

    def __init__(self, public_key: ed25519.Ed25519PublicKey, key_id: str | None) -> None:
        self._verifier = _ClockTolerantVerifier(
            signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(key_id, public_key)
        )

    def verify(self, response: httpx.Response) -> None:
        body = response.content
        # An empty body (a 204, say) has no content type to sign; the status still must be signed.
        required = RESPONSE_COMPONENTS if body else ("@status",)
        try:
            results = self._verifier.verify(response, max_age=RESPONSE_MAX_AGE, require_components=required, body=body)
        except HTTPMessageSignaturesException as exc:
            raise _verification_error(response, f"response signature is not valid: {exc}") from exc
        if results[0].label != SIGNATURE_LABEL:
            raise _verification_error(response, f"response signature label is not {SIGNATURE_LABEL!r}")


def _verification_error(response: httpx.Response, message: str) -> SignatureVerificationError:
    return SignatureVerificationError(
        message, http_status=response.status_code, request_id=response.headers.get("request-id")
    )
