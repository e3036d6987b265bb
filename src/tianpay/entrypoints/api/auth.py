"""Request authentication for the merchant API: RFC 9421 signatures with RFC 9530 digests.

A request is accepted when exactly one signature, made by a valid key of an active merchant,
covers ``@method`` and ``@target-uri`` (plus ``content-type`` and ``content-digest`` when there is
a body), its ``Content-Digest`` (sha-256 or sha-512) matches the body, it was created less than
``signature_window_s`` ago (and not more than ``FUTURE_SKEW_S`` ahead), and neither the signed
content nor its nonce was seen before inside that window. ``@target-uri`` is rebuilt from
``Settings.public_base_url`` when set (behind a proxy), otherwise from the Host header.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    VerifyResult,
    algorithms,
)
from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList
from starlette.concurrency import run_in_threadpool

from tianpay.bootstrap import Container
from tianpay.domain.merchant import KeyAlgorithm
from tianpay.services import authentication
from tianpay.services.authentication import VerificationKey

from .errors import AuthenticationFailed, request_id_of

MERCHANT_ID_HEADER = "Tianpay-Merchant-Id"
REQUIRED_COMPONENTS: tuple[str, ...] = ("@method", "@target-uri")
REQUIRED_BODY_COMPONENTS: tuple[str, ...] = ("@method", "@target-uri", "content-type", "content-digest")
# Merchant servers' clocks run a little ahead at times; more than this is refused as not yet valid.
FUTURE_SKEW_S = 30
# Expired replay fingerprints are purged at most this often per process, in bounded batches.
PURGE_INTERVAL_S = 60.0

ALGORITHMS: dict[KeyAlgorithm, type[algorithms.HTTPSignatureAlgorithm]] = {
    KeyAlgorithm.RSA_V1_5_SHA256: algorithms.RSA_V1_5_SHA256,
    KeyAlgorithm.ECDSA_P256_SHA256: algorithms.ECDSA_P256_SHA256,
    KeyAlgorithm.ED25519: algorithms.ED25519,
    KeyAlgorithm.HMAC_SHA256: algorithms.HMAC_SHA256,
}


@dataclass(frozen=True, slots=True)
class MerchantContext:
    """Who is calling: the merchant, the key that signed the request, and the request's id."""

    merchant_id: str
    key_id: str
    request_id: str


class HeaderFields:
    """Header field lines as ``http-message-signatures`` reads them (names and values as str).

    Repeated fields stay separate lines, in wire order; writes replace every line of a name.
    """

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields = list(fields)

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> HeaderFields:
        return cls((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def get(self, name: str) -> str | None:
        values = [value for field, value in self._fields if field.lower() == name.lower()]
        return ", ".join(values) if values else None

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._fields))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(field.lower() == name.lower() for field, _ in self._fields)

    def __setitem__(self, name: str, value: str) -> None:
        self.__delitem__(name)
        self._fields.append((name, value))

    def __delitem__(self, name: str) -> None:
        self._fields = [(field, value) for field, value in self._fields if field.lower() != name.lower()]


@dataclass
class RequestView:
    """The request as the verifier sees it: method, rebuilt target URI and header fields."""

    method: str
    url: str
    headers: HeaderFields


class _Verifier(HTTPMessageVerifier):
    # Freshness against the window is checked by RequestAuthenticator with the platform's clock;
    # the library keeps only its own guard against far-future ``created`` values.
    max_clock_skew = timedelta(seconds=FUTURE_SKEW_S)

    def __init__(self, *, now: datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._now = now

    def validate_created_and_expires(self, sig_input: Any, max_age: timedelta | None = None) -> None:
        """The library's check, against the platform's clock instead of the system's.

        ``TIANPAY_CLOCK_FILE`` moves the platform in time (demos): RequestAuthenticator has already
        held ``created`` against that clock both ways, and an ``expires`` must be held against it too.
        """
        if "expires" not in sig_input.params:
            return
        try:
            expires = datetime.fromtimestamp(int(sig_input.params["expires"]), UTC)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidSignature('Malformed "expires" parameter') from exc
        if expires < self._now - self.max_clock_skew:
            raise InvalidSignature('Signature "expires" parameter is set to a time in the past')


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key: VerificationKey) -> None:
        self._key = key

    def resolve_public_key(self, key_id: str) -> bytes | None:
        return self._key.material if key_id == self._key.key_id else None

    def resolve_private_key(self, key_id: str) -> bytes:
        raise HTTPMessageSignaturesException("the platform never signs with a merchant key")


@dataclass(frozen=True, slots=True)
class _SignatureInput:
    label: str
    key_id: str
    created: int
    nonce: str | None


def target_uri(scope: Mapping[str, Any], headers: HeaderFields, public_base_url: str | None) -> str:
    """The ``@target-uri`` the merchant signed, rebuilt from what reached us.

    Behind a reverse proxy the Host header and scheme we see are the proxy's, so set
    ``TIANPAY_PUBLIC_BASE_URL`` to the URL merchants call; forwarded headers are not trusted, since
    anyone could send them. Without it the URI is ``<scheme>://<Host header><path>?<query>``.
    """
    raw_path = scope.get("raw_path") or str(scope.get("path", "/")).encode()
    query = scope.get("query_string", b"")
    path = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    if public_base_url:
        return public_base_url.rstrip("/") + path
    host = headers.get("host") or "localhost"
    return f"{scope.get('scheme', 'http')}://{host}{path}"


class RequestAuthenticator:
    """Verifies merchant request signatures; one per application, safe to share across threads."""

    def __init__(self, container: Container) -> None:
        self._container = container
        self._window = timedelta(seconds=container.settings.signature_window_s)
        self._purge_lock = threading.Lock()
        self._last_purge = 0.0

    def verify(self, request: RequestView, body: bytes, request_id: str) -> MerchantContext:
        """The caller, or AuthenticationFailed naming why the request is refused."""
        signature_input = _read_signature_input(request.headers)
        now = self._container.clock.now()
        created = datetime.fromtimestamp(signature_input.created, UTC)
        if created < now - self._window:
            raise AuthenticationFailed("signature_expired", "the signature is older than the allowed window")
        if created > now + timedelta(seconds=FUTURE_SKEW_S):
            raise AuthenticationFailed("signature_not_yet_valid", "the signature's created time is in the future")
        claimed_merchant = request.headers.get(MERCHANT_ID_HEADER)

        def check(key: VerificationKey) -> Sequence[str]:
            # Runs inside the authentication's unit of work, after the key look-up and before the
            # fingerprints are remembered: a request that fails here records nothing.
            if claimed_merchant != key.merchant_id:
                raise AuthenticationFailed(
                    "merchant_mismatch", f"{MERCHANT_ID_HEADER} must name the merchant that owns the key",
                    param=MERCHANT_ID_HEADER,
                )
            result = _verify_signature(request, body, key, now)
            return _fingerprints(key.key_id, result, signature_input.nonce)

        expires_at = max(created, now) + self._window + timedelta(seconds=FUTURE_SKEW_S)
        found = authentication.authenticate(
            self._container.uow, self._container.vault, signature_input.key_id, now, check, expires_at,
            purge_due=lambda: self._purge_due(now),
        )
        key = found.key
        if key is None:
            raise AuthenticationFailed("unknown_key", "no valid key has this keyid", param="keyid")
        if found.is_replayed:
            raise AuthenticationFailed("signature_replayed", "this signature or nonce was already used")
        return MerchantContext(key.merchant_id, key.key_id, request_id)

    def _purge_due(self, now: datetime) -> datetime | None:
        with self._purge_lock:
            if time.monotonic() - self._last_purge < PURGE_INTERVAL_S:
                return None
            self._last_purge = time.monotonic()
        return now


def _read_signature_input(headers: HeaderFields) -> _SignatureInput:
    raw_input, raw_signature = headers.get("signature-input"), headers.get("signature")
    if raw_input is None or raw_signature is None:
        raise AuthenticationFailed("signature_missing", "sign the request (RFC 9421 Signature-Input and Signature)")
    try:
        inputs, signatures = Dictionary(), Dictionary()
        inputs.parse(raw_input.encode("latin-1"))
        signatures.parse(raw_signature.encode("latin-1"))
    except ValueError as exc:
        raise AuthenticationFailed("signature_invalid", "Signature-Input or Signature is malformed") from exc
    if len(inputs) != 1 or list(inputs) != list(signatures):
        raise AuthenticationFailed("signature_invalid", "send exactly one signature, with the same label in both")
    label = next(iter(inputs))
    member = inputs[label]
    params = dict(getattr(member, "params", {}))
    key_id, created, nonce = params.get("keyid"), params.get("created"), params.get("nonce")
    if not isinstance(member, InnerList) or not isinstance(key_id, str):
        raise AuthenticationFailed("signature_invalid", "the signature needs a keyid parameter", param="keyid")
    if type(created) is not int:
        raise AuthenticationFailed("signature_invalid", "the signature needs a created parameter", param="created")
    if nonce is not None and not isinstance(nonce, str):
        raise AuthenticationFailed("signature_invalid", "nonce must be a string", param="nonce")
    return _SignatureInput(label, key_id, created, nonce)


def _verify_signature(request: RequestView, body: bytes, key: VerificationKey, now: datetime) -> VerifyResult:
    required = REQUIRED_BODY_COMPONENTS if body else REQUIRED_COMPONENTS
    verifier = _Verifier(signature_algorithm=ALGORITHMS[key.algorithm], key_resolver=_OneKey(key), now=now)
    try:
        results = verifier.verify(request, max_age=None, require_components=required, body=body)
    except HTTPMessageSignaturesException as exc:
        raise AuthenticationFailed("signature_invalid", f"the signature does not verify: {exc}") from exc
    return results[0]


def _fingerprints(key_id: str, result: VerifyResult, nonce: str | None) -> Sequence[str]:
    """What may not be seen twice: the signed content itself, and the nonce when there is one.

    The signed content (signature base), not the signature bytes, is fingerprinted: an ECDSA
    signature can be re-encoded into another valid one for the same content, which would slip past
    a check on the bytes.
    """
    base = "\n".join(f"{name}: {value}" for name, value in result.covered_components.items())
    fingerprints = ["b:" + hashlib.sha256(f"{key_id}\n{base}".encode()).hexdigest()[:62]]
    if nonce is not None:
        fingerprints.append("n:" + hashlib.sha256(f"{key_id}\n{nonce}".encode()).hexdigest()[:62])
    return fingerprints


async def authenticate(request: Request) -> MerchantContext:
    """FastAPI dependency: the verified merchant.

    The signing middleware authenticates every ``/v1`` request before routing; this dependency
    returns its result, or verifies the request itself for a route mounted elsewhere.
    """
    verified = getattr(request.state, "merchant", None)
    if isinstance(verified, MerchantContext):
        return verified
    authenticator: RequestAuthenticator = request.app.state.authenticator
    body = await request.body()
    headers = HeaderFields.from_raw(request.scope["headers"])
    view = RequestView(
        request.method, target_uri(request.scope, headers, authenticator_base_url(request)), headers
    )
    context = await run_in_threadpool(authenticator.verify, view, body, request_id_of(request))
    request.state.merchant = context
    return context


def authenticator_base_url(request: Request) -> str | None:
    container: Container = request.app.state.container
    return container.settings.public_base_url
