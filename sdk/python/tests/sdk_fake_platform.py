"""A stand-in for the Tianpay platform on a loopback port, for the SDK's tests.

It verifies each request's RFC 9421 signature the way the platform does (with the
`http-message-signatures` verifier, nonce replay included), records what it received, and
answers with scripted replies signed (or deliberately not, or badly) by its own ed25519 key.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)

PLATFORM_KEY_ID = "platform-2024"
SIGNING_MODES = ("good", "missing", "tampered", "wrong_key")


@dataclass(frozen=True)
class Received:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    @property
    def nonce(self) -> str:
        return (self.header("signature-input") or "").split('nonce="')[1].split('"')[0]


@dataclass
class Reply:
    status: int = 200
    json_body: Any = None
    text: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    signing: str = "good"
    drop_connection: bool = False

    def body(self) -> bytes:
        if self.text is not None:
            return self.text.encode()
        return json.dumps({"ok": True} if self.json_body is None else self.json_body).encode()


def error_reply(status: int, type_: str, code: str, message: str = "nope", **extra: Any) -> Reply:
    envelope = {"type": type_, "code": code, "message": message, "param": extra.pop("param", None)}
    envelope["request_id"] = extra.pop("request_id", "req_from_body")
    return Reply(status=status, json_body={"error": envelope}, **extra)


class FakePlatform:
    def __init__(self, merchant_keys: dict[str, tuple[type[algorithms.HTTPSignatureAlgorithm], Any]]) -> None:
        self.merchant_keys = merchant_keys
        self.private_key = ed25519.Ed25519PrivateKey.generate()
        self.public_key = self.private_key.public_key()
        self.received: list[Received] = []
        self.replies: deque[Reply] = deque()
        self.default_reply: Callable[[Received], Reply] = lambda _: Reply()
        self.verification_failures: list[str] = []
        self._seen_nonces: set[str] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> FakePlatform:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def then(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def _answer(self, received: Received) -> Reply:
        self.received.append(received)
        problem = self._verify(received)
        if problem is not None:
            self.verification_failures.append(problem)
            return error_reply(401, "authentication_error", "signature_invalid", problem)
        return self.replies.popleft() if self.replies else self.default_reply(received)

    def _verify(self, received: Received) -> str | None:
        key_id = (received.header("signature-input") or "").partition('keyid="')[2].partition('"')[0]
        if key_id not in self.merchant_keys:
            return f"unknown key id {key_id!r}"
        algorithm, public_key = self.merchant_keys[key_id]
        verifier = HTTPMessageVerifier(
            signature_algorithm=algorithm,
            key_resolver=MappingKeyResolver(public_keys={key_id: public_key}, private_keys={}),
        )
        required = ["@method", "@target-uri"] + (["content-type", "content-digest"] if received.body else [])
        message = SimpleNamespace(method=received.method, url=received.url, headers=received.headers)
        try:
            result = verifier.verify(
                message,
                max_age=datetime.timedelta(minutes=5),
                require_components=required,
                body=received.body,
            )[0]
        except InvalidSignature as exc:
            return str(exc)
        if result.label != "sig1" or not result.nonce or result.nonce in self._seen_nonces:
            return "replayed or unlabelled signature"
        self._seen_nonces.add(result.nonce)
        return None

    def sign_response(self, reply: Reply, body: bytes) -> tuple[dict[str, str], bytes]:
        headers = {"Content-Type": reply.content_type, "Request-Id": "req_from_header", **reply.headers}
        if reply.signing == "missing":
            return headers, body
        key = self.private_key if reply.signing != "wrong_key" else ed25519.Ed25519PrivateKey.generate()
        signer = HTTPMessageSigner(
            signature_algorithm=algorithms.ED25519,
            key_resolver=MappingKeyResolver(public_keys={}, private_keys={PLATFORM_KEY_ID: key}),
        )
        response = SimpleNamespace(status_code=reply.status, headers=headers)
        signer.sign(
            response,
            key_id=PLATFORM_KEY_ID,
            label="sig1",
            covered_component_ids=("@status", "content-digest", "content-type"),
            body=body,
        )
        if reply.signing == "tampered":
            body += b" "
        return headers, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = Received(
                    method=self.command,
                    url=f"http://{self.headers['Host']}{self.path}",
                    headers=dict(self.headers.items()),
                    body=self.rfile.read(length),
                )
                reply = platform._answer(received)
                if reply.drop_connection:
                    self.close_connection = True
                    return
                headers, body = platform.sign_response(reply, reply.body())
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _handle

        return Handler


def running(platform: FakePlatform) -> Iterator[FakePlatform]:
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()
