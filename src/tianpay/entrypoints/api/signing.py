"""The ASGI middleware around the whole app: request ids, authentication first, signed responses.

For every HTTP request it assigns a ``req_…`` id; for ``/v1`` (except the public platform-keys
route) it reads the body and verifies the merchant's signature before any routing or validation,
so an unauthenticated caller learns nothing but 401; and it signs every response, errors and 500s
included, with the platform's ed25519 key (label ``sig1``: ``@status``, ``content-digest``,
``content-type``; ``created``, ``keyid``, ``alg``) and adds ``Content-Digest`` and ``Request-Id``.
A route that streams (a CSV export) marks its response: that one is signed over its header fields.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tianpay.adapters.keys import PlatformSigningKey
from tianpay.domain import ids

from .auth import HeaderFields, RequestAuthenticator, RequestView, target_uri
from .errors import ApiError, error_response, internal_error_response

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RESPONSE_SIGNATURE_LABEL = "sig1"
RESPONSE_COMPONENTS = ("@status", "content-digest", "content-type")
REQUEST_ID_HEADER = "Request-Id"
API_PREFIX = "/v1"
PUBLIC_API_PATHS = frozenset({"/v1/platform-keys"})
MAX_BODY_BYTES = 1024 * 1024
# A route sets this header (never sent on) to stream its body instead of having it buffered; such a
# response is signed over its status and header fields only (docs/api.md, "Streamed exports").
STREAMED_RESPONSE_HEADER = "Tianpay-Stream-Signing"
STREAMED_RESPONSE_COMPONENTS = ("@status", "content-type", "content-disposition", "request-id")


def requires_signature(path: str) -> bool:
    """Every ``/v1`` route is authenticated unless listed as public: secure by default."""
    is_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
    return is_api and path.rstrip("/") not in PUBLIC_API_PATHS


class ResponseSigner:
    """Signs responses with the platform's ed25519 key (RFC 9421), building the signature base itself.

    The covered components and parameters are always the same few, so the base is assembled directly
    rather than through ``http-message-signatures``' general machinery, which cost more CPU than the
    ed25519 signature itself on every API response (docs/performance.md). ed25519 is deterministic:
    tests check that this signer's fields are byte for byte what the library would have produced.
    """

    def __init__(self, key: PlatformSigningKey, now: Callable[[], datetime] | None = None) -> None:
        self._key_id = key.key_id
        self._private_key = key.private_key
        # The platform's clock (moved by TIANPAY_CLOCK_FILE in demos), the one request freshness is
        # checked against: a merchant living in the same time must find the answer fresh too.
        self._now = now or (lambda: datetime.now(UTC))

    def sign(self, status_code: int, headers: HeaderFields, body: bytes) -> None:
        """Adds Content-Digest, Signature-Input and Signature to ``headers`` in place."""
        for name in ("content-digest", "signature-input", "signature"):
            del headers[name]
        headers["Content-Digest"] = content_digest(body)
        covered = [c for c in RESPONSE_COMPONENTS if c.startswith("@") or c in headers]
        self._sign(status_code, headers, covered)

    def sign_headers(self, status_code: int, headers: HeaderFields) -> None:
        """Signs a streamed response: status and header fields, no digest (the body is not known yet)."""
        for name in ("content-digest", "signature-input", "signature"):
            del headers[name]
        covered = [c for c in STREAMED_RESPONSE_COMPONENTS if c.startswith("@") or c in headers]
        self._sign(status_code, headers, covered)

    def _sign(self, status_code: int, headers: HeaderFields, covered: list[str]) -> None:
        created = int(self._now().timestamp())
        params = "({});created={};keyid=\"{}\";alg=\"ed25519\"".format(
            " ".join(f'"{component}"' for component in covered), created, self._key_id
        )
        lines = [f'"{component}": {_component_value(component, status_code, headers)}' for component in covered]
        lines.append(f'"@signature-params": {params}')
        signature = self._private_key.sign("\n".join(lines).encode("ascii"))
        headers["Signature-Input"] = f"{RESPONSE_SIGNATURE_LABEL}={params}"
        headers["Signature"] = f"{RESPONSE_SIGNATURE_LABEL}=:{base64.b64encode(signature).decode('ascii')}:"


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` field value of ``body`` (SHA-256)."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode('ascii')}:"


def _component_value(component: str, status_code: int, headers: HeaderFields) -> str:
    """A covered component's value in the signature base (RFC 9421 §2.1 and §2.2.9)."""
    if component == "@status":
        return str(status_code)
    value = headers.get(component)
    assert value is not None, "only fields present are covered"
    value = value.strip()
    # The base is one line per component: a field value with a line break or a non-ASCII character
    # could forge another line, so such a response is refused rather than signed.
    if "\n" in value or "\r" in value or not value.isascii():
        raise ValueError(f"the {component} field cannot be signed")
    return value


@dataclass
class _BufferedResponse:
    status_code: int = 500
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    started: bool = False
    complete: bool = False

    # Set for a streamed response: signs its header fields and sends them on, then every body part.
    stream_to: Callable[[Message], Awaitable[None]] | None = None
    streaming: bool = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status_code = int(message["status"])
            self.headers = list(message.get("headers", []))
            self.started = True
            marker = STREAMED_RESPONSE_HEADER.lower().encode("latin-1")
            if self.stream_to is not None and any(name.lower() == marker for name, _ in self.headers):
                self.streaming = True
                self.headers = [(name, value) for name, value in self.headers if name.lower() != marker]
                await self.stream_to({"type": "http.response.start", "status": self.status_code,
                                      "headers": self.headers})
        elif message["type"] == "http.response.body":
            if self.streaming and self.stream_to is not None:
                await self.stream_to(message)
                return
            self.body.extend(message.get("body", b""))
            self.complete = not message.get("more_body", False)


class SignedApiMiddleware:
    def __init__(self, app: ASGIApp, *, authenticator: RequestAuthenticator, signer: ResponseSigner,
                 public_base_url: str | None, new_id: Callable[[str], str]) -> None:
        self.app = app
        self._authenticator = authenticator
        self._signer = signer
        self._public_base_url = public_base_url
        self._new_id = new_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._new_id(ids.REQUEST)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        if requires_signature(str(scope.get("path", ""))):
            refusal, receive = await self._authenticate(scope, receive, request_id)
            if refusal is not None:
                await self._send_signed(
                    send, refusal.status_code, _raw_headers(refusal), bytes(refusal.body), request_id
                )
                return
        buffered = _BufferedResponse()

        async def send_streamed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=self._signed_stream_headers(message, request_id))
            await send(message)

        buffered.stream_to = send_streamed
        try:
            await self.app(scope, receive, buffered.send)
        except Exception:
            if buffered.streaming:
                # Half a body is already out: the connection is cut, and the client sees no end.
                logger.exception("error while streaming request %s", request_id)
                raise
            # The stack trace goes to the server log only; the caller gets the request id to quote.
            logger.exception("unhandled error on request %s", request_id)
            failure = internal_error_response(request_id)
            await self._send_signed(send, failure.status_code, _raw_headers(failure), bytes(failure.body), request_id)
            return
        if buffered.streaming:
            return
        await self._send_signed(send, buffered.status_code, buffered.headers, bytes(buffered.body), request_id)

    def _signed_stream_headers(self, start: Message, request_id: str) -> list[tuple[bytes, bytes]]:
        headers = HeaderFields.from_raw(start.get("headers", []))
        headers[REQUEST_ID_HEADER] = request_id
        self._signer.sign_headers(int(start["status"]), headers)
        return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def _authenticate(self, scope: Scope, receive: Receive, request_id: str) -> tuple[Response | None, Receive]:
        body, receive = await _read_body(receive)
        if body is None:
            return error_response(
                413, "invalid_request_error", "request_too_large",
                f"request bodies are limited to {MAX_BODY_BYTES} bytes", request_id=request_id,
            ), receive
        headers = HeaderFields.from_raw(scope.get("headers", []))
        view = RequestView(str(scope["method"]), target_uri(scope, headers, self._public_base_url), headers)
        try:
            context = await run_in_threadpool(self._authenticator.verify, view, body, request_id)
        except ApiError as exc:
            return error_response(
                exc.status_code, exc.type, exc.code, exc.message, param=exc.param, request_id=request_id
            ), receive
        scope["state"]["merchant"] = context
        return None, receive

    async def _send_signed(
        self, send: Send, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes, request_id: str
    ) -> None:
        headers = HeaderFields.from_raw(raw_headers)
        headers[REQUEST_ID_HEADER] = request_id
        self._signer.sign(status_code, headers, body)
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": status_code, "headers": encoded})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _raw_headers(response: Response) -> list[tuple[bytes, bytes]]:
    return list(response.raw_headers)


async def _read_body(receive: Receive) -> tuple[bytes | None, Receive]:
    """Reads the whole body (None when over the limit) and a ``receive`` that replays it once."""
    chunks = bytearray()
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.extend(message.get("body", b""))
        more_body = bool(message.get("more_body", False))
        if len(chunks) > MAX_BODY_BYTES:
            return None, receive
    body = bytes(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
