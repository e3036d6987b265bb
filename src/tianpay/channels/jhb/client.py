"""The JHB client: seals one request, POSTs it once to `/api/{service}`, and opens the answer.

It never resubmits: a timeout, a 5xx, or an answer it cannot verify is reported as such and the
caller maps it to UNKNOWN, to be resolved by a query (DESIGN.md §7). Only a refused connection,
where no byte of the request left the platform, is reported as "not sent".
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog

from tianpay.channels.jhb import signing, wire
from tianpay.channels.jhb.config import JhbConfig
from tianpay.channels.jhb.mapping import to_wire_time

log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Answered:
    """A verified, decrypted answer that belongs to our request."""

    head: wire.Head
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """No answer arrived (timeout, broken connection, non-200). `request_sent` is False only when
    the connection itself failed, so JHB cannot have seen the request."""

    request_sent: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Unverifiable:
    """Something arrived that we cannot trust: bad signature, wrong head, JHB's unsigned error."""

    reason: str
    plain: wire.PlainError | None = None


CallResult = Answered | NoAnswer | Unverifiable


class JhbClient:
    """One partner's connection to JHB; thread-safe as far as `httpx.Client` is."""

    def __init__(
        self,
        config: JhbConfig,
        http: httpx.Client,
        clock: Callable[[], datetime],
        new_req_no: Callable[[], str] | None = None,
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._new_req_no = new_req_no or (lambda: secrets.token_hex(16))

    def call(self, service: wire.Service, body: Mapping[str, Any]) -> CallResult:
        config = self._config
        head = wire.Head(
            version=wire.ENVELOPE_VERSION,
            partner_id=config.partner_id,
            service=service.value,
            req_no=self._new_req_no(),
            req_time=to_wire_time(self._clock()),
            key_id=config.current_key_id,
        )
        envelope = signing.seal(head, body, config.current_data_key, config.platform_private_key)
        started = time.monotonic()
        posted = self._post(service, envelope)
        result = self._open(posted, head) if isinstance(posted, httpx.Response) else posted
        log.info(
            "jhb call",
            service=service.value,
            req_no=head.req_no,
            key_id=head.key_id,
            result=type(result).__name__,
            ret_code=_ret_code_of(result),
            elapsed_ms=round((time.monotonic() - started) * 1000),
        )
        return result

    def _post(self, service: wire.Service, envelope: wire.Envelope) -> httpx.Response | NoAnswer:
        url = f"{self._config.base_url}/api/{service.value}"
        try:
            return self._http.post(
                url,
                content=envelope.to_json_bytes(),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self._config.timeout_s,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # The TCP (or TLS) connection was never established, so no byte of the request left.
            return NoAnswer(request_sent=False, reason=f"could not connect: {type(exc).__name__}")
        except httpx.TimeoutException as exc:
            return NoAnswer(request_sent=True, reason=f"timed out: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return NoAnswer(request_sent=True, reason=f"transport error: {type(exc).__name__}")

    def _open(self, response: httpx.Response, sent: wire.Head) -> CallResult:
        if response.status_code != 200:
            # A 5xx may come from anywhere between us and the bank, after the bank processed it.
            return NoAnswer(request_sent=True, reason=f"HTTP {response.status_code}")
        try:
            answer = wire.read_answer(json.loads(response.content))
        except (ValueError, UnicodeDecodeError) as exc:
            return Unverifiable(f"not an envelope: {exc}")
        if isinstance(answer, wire.PlainError):
            return Unverifiable("JHB answered unsigned", plain=answer)
        return self._verify(answer, sent)

    def _verify(self, answer: wire.Envelope, sent: wire.Head) -> CallResult:
        config = self._config
        # The head binds the answer to our request; a replayed answer to another request fails here.
        head = answer.head
        if (head.partner_id, head.service, head.req_no) != (sent.partner_id, sent.service, sent.req_no):
            return Unverifiable("the answer's head does not match the request")
        try:
            body = signing.open_envelope(answer, config.jhb_public_key, config.data_keys)
        except signing.EnvelopeError as exc:
            return Unverifiable(f"{type(exc).__name__}: {exc}")
        return Answered(head=head, body=body)


def _ret_code_of(result: CallResult) -> str | None:
    if isinstance(result, Answered):
        code = result.body.get("ret_code")
        return code if isinstance(code, str) else None
    if isinstance(result, Unverifiable) and result.plain is not None:
        return result.plain.ret_code
    return None
