"""`TianpayClient`: signs each request, retries what is safe to repeat, verifies each response.

It is an explicit object with an injectable `httpx.Client` (as in stripe-python), and it turns
every failure into one of the errors in `tianpay_sdk.errors`.
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519

from . import resources, retries
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    RateLimitError,
    TianpayError,
)
from .signing import PrivateKey, RequestSigner, ResponseVerifier, load_platform_key, load_signing_key

__version__: Final = "0.1.0"
MERCHANT_ID_HEADER: Final = "Tianpay-Merchant-Id"
REQUEST_ID_HEADER: Final = "Request-Id"
USER_AGENT: Final = f"tianpay-sdk-python/{__version__}"

_ERRORS_BY_TYPE: Final[Mapping[str, type[TianpayError]]] = {
    "invalid_request_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "idempotency_error": IdempotencyError,
    "rate_limit_error": RateLimitError,
    "api_error": APIError,
}


class TianpayClient:
    """A merchant's connection to the Tianpay platform.

    `private_key` is a PEM string or bytes, a `cryptography` private key (RSA, P-256 or ed25519),
    or, with `algorithm="hmac-sha256"`, the shared secret bytes. Pass `platform_public_key` in
    production: without it, responses are not verified and a forged answer would be believed.
    """

    def __init__(
        self,
        base_url: str,
        merchant_id: str,
        key_id: str,
        private_key: str | bytes | PrivateKey,
        *,
        algorithm: str | None = None,
        platform_public_key: str | bytes | ed25519.Ed25519PublicKey | None = None,
        platform_key_id: str | None = None,
        http_client: httpx.Client | None = None,
        max_retries: int = 2,
        timeout_s: float = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self._base_url = base_url.rstrip("/")
        self._merchant_id = merchant_id
        self._signer = RequestSigner(key_id, *load_signing_key(private_key, algorithm))
        self._verifier = (
            None
            if platform_public_key is None
            else ResponseVerifier(load_platform_key(platform_public_key), platform_key_id)
        )
        self._owns_http_client = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        self._max_retries = max_retries
        self._timeout_s = timeout_s
        self._sleep = sleep

        self.payments = resources.Payments(self)
        self.refunds = resources.Refunds(self)
        self.members = resources.Members(self)
        self.card_bindings = resources.CardBindings(self)
        self.mandates = resources.Mandates(self)
        self.payouts = resources.Payouts(self)
        self.balance = resources.Balance(self)
        self.settlements = resources.Settlements(self)
        self.statements = resources.Statements(self)
        self.events = resources.Events(self)

    def request(
        self,
        method: str,
        path: str,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Sends one API call and returns its JSON (a dict), its text (for CSV), or {} when empty."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        response = self._send_with_retries(method.upper(), path, json, params)
        return _decode(response)

    def close(self) -> None:
        """Closes the HTTP client, if the SDK created it."""
        if self._owns_http_client:
            self._http.close()

    def __enter__(self) -> TianpayClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _send_with_retries(
        self, method: str, path: str, json: Mapping[str, Any] | None, params: Mapping[str, Any] | None
    ) -> httpx.Response:
        body = None if json is None else _encode(json)
        is_safe_to_repeat = retries.is_safe_to_repeat(method, json)
        retries_done = 0
        while True:
            try:
                response = self._send_once(method, path, body, params)
            except httpx.TransportError as exc:
                delay_s = self._delay_before_retry_s(is_safe_to_repeat, retries_done, None)
                if delay_s is None:
                    raise APIConnectionError(f"could not reach the platform: {exc!r}") from exc
            else:
                delay_s = self._delay_before_retry_s(is_safe_to_repeat, retries_done, response)
                if delay_s is None:
                    return self._checked(response)
                response.close()
            retries_done += 1
            self._sleep(delay_s)

    def _delay_before_retry_s(
        self, is_safe_to_repeat: bool, retries_done: int, response: httpx.Response | None
    ) -> float | None:
        """The wait before another attempt, or None when this outcome is final."""
        if not is_safe_to_repeat or retries_done >= self._max_retries:
            return None
        if response is None:
            return retries.retry_delay_s(retries_done + 1)
        if not retries.is_retryable_status(response.status_code):
            return None
        retry_after_s = retries.parse_retry_after_s(response.headers.get("retry-after"))
        return retries.retry_delay_s(retries_done + 1, retry_after_s)

    def _send_once(
        self, method: str, path: str, body: bytes | None, params: Mapping[str, Any] | None
    ) -> httpx.Response:
        # The response digest is over the bytes as sent; asking for no content coding keeps httpx
        # from decompressing them before the SDK can check the digest.
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": USER_AGENT,
            MERCHANT_ID_HEADER: self._merchant_id,
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        query = None if params is None else {key: value for key, value in params.items() if value is not None}
        request = self._http.build_request(
            method,
            self._base_url + path,
            content=body,
            headers=headers,
            params=query,
            timeout=self._timeout_s,
        )
        self._signer.sign(request, body)
        return self._http.send(request)

    def _checked(self, response: httpx.Response) -> httpx.Response:
        """Returns a verified 2xx response; raises the matching error for anything else."""
        if self._verifier is not None:
            self._verifier.verify(response)
        if response.is_success:
            return response
        raise _error_from(response)


def _encode(json: Mapping[str, Any]) -> bytes:
    # Compact UTF-8: the digest is over these exact bytes, and Chinese text stays readable in logs.
    return jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return response.json()
    return response.text


def _error_from(response: httpx.Response) -> TianpayError:
    envelope = _error_envelope(response)
    default_class = _error_class_for_status(response.status_code)
    error_class = _ERRORS_BY_TYPE.get(str(envelope.get("type")), default_class)
    error = error_class(
        str(envelope.get("message") or f"the platform answered HTTP {response.status_code}"),
        http_status=response.status_code,
        code=_optional_str(envelope.get("code")),
        param=_optional_str(envelope.get("param")),
        request_id=_optional_str(envelope.get("request_id")) or response.headers.get(REQUEST_ID_HEADER),
    )
    if isinstance(error, RateLimitError):
        error.retry_after_s = retries.parse_retry_after_s(response.headers.get("retry-after"))
    return error


def _error_envelope(response: httpx.Response) -> Mapping[str, Any]:
    # A proxy in front of the platform may answer with HTML; the status alone must then do.
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _error_class_for_status(status: int) -> type[TianpayError]:
    if status == 401:
        return AuthenticationError
    if status == 409:
        return IdempotencyError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return APIError
    return InvalidRequestError


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
