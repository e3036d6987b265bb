"""The load generator of ``bench payments``: signed wallet payments from many concurrent clients.

It runs in its own process (``python -m tianpay.entrypoints.bench.loadgen``, a JSON plan on stdin, one
JSON result line on stdout) so its CPU is never the server's. Each client loops create → confirm
until the deadline; requests are signed with the merchant's HMAC-SHA256 key by a few lines of RFC
9421 here (one HMAC per request, so signing never limits the rate). Responses are not verified: the
bench measures the platform, and the API tests prove the signatures.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

MERCHANT_ID_HEADER = "Tianpay-Merchant-Id"
COMPONENTS = '("@method" "@target-uri" "content-type" "content-digest")'


@dataclass(frozen=True, slots=True)
class Plan:
    """What to run: the servers, the merchant's key, the payers, and for how long."""

    base_urls: list[str]
    # Each merchant as {"merchant_id", "key_id", "hmac_secret_hex"}; client n pays merchant n % M
    # from member n, whom that merchant registered.
    merchants: list[dict[str, str]]
    member_ids: list[str]
    payment_password: str
    clients: int
    seconds: float
    warmup_seconds: float
    amount_minor: int
    run_tag: str


@dataclass
class Tally:
    """What the clients saw after the warm-up: completed payments, create latencies, failures."""

    payments: int = 0
    payments_total: int = 0
    create_latencies_ms: list[float] = field(default_factory=list)
    confirm_latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def failed(self, response: httpx.Response | None, exc: Exception | None = None) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{response.status_code} {response.text[:300]}" if response is not None else repr(exc)


class Signer:
    """RFC 9421 with ``hmac-sha256`` over method, target URI, content type and RFC 9530 digest."""

    def __init__(self, merchant_id: str, key_id: str, secret: bytes) -> None:
        self._merchant_id = merchant_id
        self._key_id = key_id
        self._secret = secret

    def headers(self, url: str, body: bytes) -> dict[str, str]:
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
        params = f'{COMPONENTS};created={int(time.time())};keyid="{self._key_id}";nonce="{secrets.token_hex(12)}"'
        base = (
            f'"@method": POST\n"@target-uri": {url}\n"content-type": application/json\n'
            f'"content-digest": {digest}\n"@signature-params": {params}'
        )
        signature = base64.b64encode(hmac.new(self._secret, base.encode(), hashlib.sha256).digest()).decode()
        return {
            "Content-Type": "application/json",
            "Content-Digest": digest,
            "Signature-Input": f"sig1={params}",
            "Signature": f"sig1=:{signature}:",
            MERCHANT_ID_HEADER: self._merchant_id,
        }


async def _client(number: int, plan: Plan, http: httpx.AsyncClient, tally: Tally,
                  measure_from: float, deadline: float) -> None:
    base_url = plan.base_urls[number % len(plan.base_urls)]
    member_id = plan.member_ids[number % len(plan.member_ids)]
    merchant = plan.merchants[number % len(plan.merchants)]
    signer = Signer(merchant["merchant_id"], merchant["key_id"], bytes.fromhex(merchant["hmac_secret_hex"]))
    confirm_body = json.dumps({"member_id": member_id, "payment_password": plan.payment_password}).encode()
    sequence = 0
    while time.perf_counter() < deadline:
        sequence += 1
        create_url = f"{base_url}/v1/payments"
        body = json.dumps({
            "out_trade_no": f"{plan.run_tag}-{number}-{sequence}", "amount": plan.amount_minor, "currency": "CNY",
            "method": "wallet", "subject": "bench",
        }).encode()
        started = time.perf_counter()
        try:
            created = await http.post(create_url, content=body, headers=signer.headers(create_url, body))
        except httpx.HTTPError as exc:
            tally.failed(None, exc)
            continue
        created_at = time.perf_counter()
        if created.status_code != 201:
            tally.failed(created)
            continue
        confirm_url = f"{base_url}/v1/payments/{created.json()['id']}/confirm"
        try:
            signed = signer.headers(confirm_url, confirm_body)
            confirmed = await http.post(confirm_url, content=confirm_body, headers=signed)
        except httpx.HTTPError as exc:
            tally.failed(None, exc)
            continue
        finished = time.perf_counter()
        if confirmed.status_code != 200 or confirmed.json().get("status") != "succeeded":
            tally.failed(confirmed)
            continue
        tally.payments_total += 1
        # A payment counts when it completes inside the window; each latency when its request was
        # made inside it. Slow payments begun during the warm-up therefore still count as throughput.
        if started >= measure_from and created_at <= deadline:
            tally.create_latencies_ms.append((created_at - started) * 1000)
        if measure_from <= created_at and finished <= deadline:
            tally.confirm_latencies_ms.append((finished - created_at) * 1000)
        if measure_from <= finished <= deadline:
            tally.payments += 1


async def run(plan: Plan) -> dict[str, Any]:
    """Runs the plan; the result counts the payments completed between the warm-up and the deadline."""
    tally = Tally()
    limits = httpx.Limits(max_connections=plan.clients, max_keepalive_connections=plan.clients)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as http:
        begun = time.perf_counter()
        measure_from = begun + plan.warmup_seconds
        deadline = measure_from + plan.seconds
        await asyncio.gather(*(
            _client(n, plan, http, tally, measure_from, deadline) for n in range(plan.clients)
        ))
    return {
        "payments": tally.payments,
        "payments_total": tally.payments_total,
        "measured_seconds": plan.seconds,
        "create_latencies_ms": tally.create_latencies_ms,
        "confirm_latencies_ms": tally.confirm_latencies_ms,
        "errors": tally.errors,
        "first_error": tally.first_error,
    }


if __name__ == "__main__":
    result = asyncio.run(run(Plan(**json.load(sys.stdin))))
    sys.stdout.write(json.dumps(result) + "\n")
