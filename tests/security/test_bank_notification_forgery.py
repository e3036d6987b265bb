"""Forged, tampered and replayed bank notifications at the platform's real notify endpoint.

A real JHB notification is caught on its way (the payment's notify URL points at a recorder), then
sent to ``POST /channels/JHB/notify`` of the running platform: first forged (its SM2 signature broken,
or one byte of its SM4 ciphertext changed), which must be refused and change no row of any table,
then genuine, which pays the payment once, then genuine again, which changes nothing. HBB's forms
(bad signature, a certificate outside HBB's root or with the wrong name, altered fields) are proved the
same way in ``tests/gateway/test_gateway_services.py`` and ``tests/channels/hbb``; BCB's payout bounces
in ``test_payout_bounce_forgery.py``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import _ThreadedServer
from tests.conftest import BACKENDS, _DatabaseFactory
from tests.gateway.conftest import (
    BANK_TIMEOUT_S,
    add_merchant,
    bank_world,
    gateway_settings_for,
    new_payment,
    now_clock,
    onboarded_dir,
    pay_on_jhb_pages,
    wait_until,
)
from tests.payments.conftest import assert_ledger_sound, events_of
from tianpay.adapters.clock import SettableClock
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.payment import PaymentStatus
from tianpay.entrypoints.api.app import create_app
from tianpay.services.gateway import pay_at_bank

from .conftest import changed_tables, database_snapshot

pytestmark = pytest.mark.e2e
# The bank world and the onboarded data directory are the gateway tests' module fixtures.
__all__ = ["bank_world", "onboarded_dir"]

JSON = "application/json"


@dataclass
class Recorder:
    """Plays the platform's address for the bank: keeps every notification body, acknowledges none,
    so the genuine notice stays unapplied until the test delivers it."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Notices of earlier tests: acknowledged by nobody, the bank keeps retrying them, so one may
    # arrive after the next test started over; they are told apart by the envelope's req_no.
    earlier: set[str] = field(default_factory=set)

    def start_over(self) -> None:
        with self.lock:
            self.earlier |= {_req_no(body) for body in self.bodies}
            self.bodies.clear()

    def fresh(self) -> bytes | None:
        """The first notice of the current test, if it came."""
        with self.lock:
            return next((body for body in self.bodies if _req_no(body) not in self.earlier), None)

    def first(self) -> bytes:
        body = self.fresh()
        assert body is not None
        return body


def _req_no(body: bytes) -> str:
    return str(json.loads(body)["head"]["req_no"])


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with recorder.lock:
                recorder.bodies.append(body)
            self.send_response(503)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Platform:
    base_url: str
    container: Container
    clock: SettableClock


@pytest.fixture(scope="module", params=BACKENDS)
def platform(request: pytest.FixtureRequest, database_factory: _DatabaseFactory, onboarded_dir: Path
             ) -> Iterator[Platform]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    clock = now_clock()
    settings = Settings(data_dir=onboarded_dir, database_url=database_url, public_base_url=None,
                        bank_timeout_s=BANK_TIMEOUT_S)
    container = build_container(settings, clock=clock)
    server = _ThreadedServer(create_app(container))
    server.start()
    try:
        yield Platform(f"http://127.0.0.1:{server.port}", container, clock)
    finally:
        server.stop()
        container.close()


def _flip_a_byte(encoded: str, index: int) -> str:
    raw = bytearray(base64.b64decode(encoded))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _deliver(platform: Platform, body: bytes) -> httpx.Response:
    return httpx.post(f"{platform.base_url}/channels/JHB/notify", content=body, headers={"Content-Type": JSON},
                      timeout=10)


def _is_accepted(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.json().get("ret_code") == "0000"


def test_forged_jhb_notifications_change_nothing_and_a_genuine_one_replayed_pays_once(
    platform: Platform, recorder: Recorder,
) -> None:
    container = platform.container
    platform.clock.set(datetime.now(UTC))
    merchant_id = add_merchant(container.uow, platform.clock, "mch_FORGERY")
    payment = new_payment(container.uow, platform.clock, container.ids, merchant_id, 23_456)
    form = pay_at_bank(container.uow, platform.clock, container.ids, container.channels,
                       gateway_settings_for(recorder.url), payment.id, "JHB")
    recorder.start_over()
    with httpx.Client(timeout=10.0, follow_redirects=False) as browser:
        pay_on_jhb_pages(browser, form.url, dict(form.fields))
    wait_until(lambda: recorder.fresh() is not None, what="JHB notified")
    genuine = json.loads(recorder.first())

    forgeries = {
        "a broken SM2 signature": {**genuine, "sign": _flip_a_byte(genuine["sign"], 8)},
        "a tampered SM4 ciphertext": {**genuine, "body": _flip_a_byte(genuine["body"], 0)},
        "a tampered head": {**genuine, "head": {**genuine["head"], "req_no": genuine["head"]["req_no"] + "1"}},
        "no signature": {**genuine, "sign": ""},
    }
    before = database_snapshot(container.engine)
    for what, forged in forgeries.items():
        response = _deliver(platform, json.dumps(forged).encode())
        assert not _is_accepted(response), what
        assert changed_tables(before, database_snapshot(container.engine)) == [], what

    first = _deliver(platform, recorder.first())
    assert _is_accepted(first), first.text
    with container.uow() as uow:
        paid = uow.payments.get(payment.id)
    assert paid is not None
    assert paid.status is PaymentStatus.SUCCEEDED
    after_first = database_snapshot(container.engine)
    for _ in range(2):
        assert _is_accepted(_deliver(platform, recorder.first()))
    assert changed_tables(after_first, database_snapshot(container.engine)) == []
    assert [e.type for e in events_of(container.uow, merchant_id)] == ["payment.succeeded"]
    assert_ledger_sound(container.uow)
