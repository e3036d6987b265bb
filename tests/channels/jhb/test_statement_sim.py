"""The JHB statement adapter against the real JHB simulator over loopback HTTP.

A past day D is played on JHB's clock (`POST /_sim/clock`): two online-banking payments, a partial
refund and a magic-93 payment, all through the platform's own JHB adapter and JHB's pages. The
statement of D is then downloaded and read, and compared with what JHB's books say (`/_sim/state`).
A proxy that flips a bit of JHB's signature and an edited summary show the two ways a file is refused.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.channels.jhb.conftest import Platform, Receiver, World
from tests.channels.jhb.test_contract_jhb_sim import _refund_order, paid
from tianpay.channels.jhb.onboarding import config_from_onboarding
from tianpay.channels.jhb.signing import SigningKey
from tianpay.channels.jhb.statement import JhbStatementChannel, build_jhb_statement_channel
from tianpay.channels.registry import load_channels
from tianpay.ports.channels import Outcome
from tianpay.ports.statements import (
    StatementItemKind,
    StatementLine,
    StatementMalformed,
    StatementNotReady,
    StatementUnavailable,
)

pytestmark = pytest.mark.e2e

RESERVE = "6227990000000000997"
FEE_KIND = "day_end_fee"
# Far enough in the past that no other test books anything on it (they all run on today).
DAY = date.today() - timedelta(days=50)
BEIJING = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class PlayedDay:
    path: Path
    lines: list[StatementLine]
    attempts: dict[str, int]  # attempt id → amount in fen
    refund_id: str
    late_attempt_id: str


def set_jhb_clock(world: World, http: httpx.Client, **change: Any) -> None:
    answer = http.post(f"{world.jhb_url}/_sim/clock", json=change)
    assert answer.status_code == 200, answer.text


def statements(platform: Platform, http: httpx.Client) -> JhbStatementChannel:
    return build_jhb_statement_channel(config_from_onboarding(platform.data_dir, timeout_s=5.0), http_client=http)


@pytest.fixture(scope="module")
def played_day(
    jhb_world: World,
    platform: Platform,
    receiver: Receiver,
    http: httpx.Client,
    tmp_path_factory: pytest.TempPathFactory,
) -> PlayedDay:
    channel = statements(platform, http)
    target = tmp_path_factory.mktemp("statements") / "JHB" / DAY.isoformat() / "bill.csv"
    set_jhb_clock(jhb_world, http, now=f"{DAY.isoformat()}T10:00:00+08:00")
    try:
        first, first_ref = paid(platform, receiver, 10_000)
        second, _ = paid(platform, receiver, 2_500)
        refund = _refund_order(platform, first, first_ref, 3_000)
        assert platform.channel.refund(refund).outcome is Outcome.SUCCEEDED
        late, _ = paid(platform, receiver, 1_293)
        with pytest.raises(StatementNotReady):
            channel.download_statement(DAY, target)
        assert not target.exists()
    finally:
        set_jhb_clock(jhb_world, http, reset=True)
    downloaded = channel.download_statement(DAY, target)
    assert downloaded.path == target
    assert (downloaded.bank, downloaded.statement_date) == ("JHB", DAY)
    return PlayedDay(
        path=target,
        lines=list(channel.read_statement(target, DAY)),
        attempts={first.attempt_id: 10_000, second.attempt_id: 2_500},
        refund_id=refund.refund_id,
        late_attempt_id=late.attempt_id,
    )


def booked_by_jhb(world: World, http: httpx.Client, day: date) -> set[tuple[str, int, int]]:
    """(JHB number, signed amount on the reserve, day-end charge) for every item JHB booked on `day`."""
    transfers = http.get(f"{world.jhb_url}/_sim/state").json()["transfers"]
    on_day = [t for t in transfers if t["statement_date"] == day.isoformat()]
    fees = {t["memo"]: t["amount_minor"] for t in on_day if t["kind"] == FEE_KIND and t["debit_acc"] == RESERVE}
    items = set()
    for t in on_day:
        if t["kind"] == FEE_KIND or RESERVE not in (t["debit_acc"], t["credit_acc"]):
            continue
        signed = t["amount_minor"] if t["credit_acc"] == RESERVE else -t["amount_minor"]
        items.add((t["bank_ref"], signed, fees.get(t["bank_ref"], 0)))
    return items


def test_the_downloaded_statement_reads_as_exactly_what_jhb_booked_for_the_day(
    played_day: PlayedDay, jhb_world: World, http: httpx.Client
) -> None:
    lines = played_day.lines
    assert {(line.bank_ref, line.amount_minor, line.fee_minor) for line in lines} == booked_by_jhb(
        jhb_world, http, DAY
    )
    assert [(line.kind, line.platform_ref, line.amount_minor, line.fee_minor) for line in lines] == [
        *[(StatementItemKind.COLLECTION, att, amount, (amount * 12 + 5_000) // 10_000)
          for att, amount in played_day.attempts.items()],
        (StatementItemKind.REFUND, played_day.refund_id, -3_000, 0),
    ]
    assert all(line.bank == "JHB" and line.statement_date == DAY for line in lines)
    assert all(line.occurred_at is not None and line.occurred_at.astimezone(BEIJING).date() == DAY for line in lines)
    # Magic 93: paid on D, booked on D+1's statement, so not here.
    assert played_day.late_attempt_id not in {line.platform_ref for line in lines}


def test_a_second_download_of_the_same_day_is_the_same_file(
    played_day: PlayedDay, platform: Platform, http: httpx.Client, tmp_path: Path
) -> None:
    again = statements(platform, http).download_statement(DAY, tmp_path / "again.csv")

    assert again.path.read_bytes() == played_day.path.read_bytes()


def test_a_summary_that_does_not_add_up_is_malformed(played_day: PlayedDay, platform: Platform, http: httpx.Client,
                                                     tmp_path: Path) -> None:
    rows = played_day.path.read_text(encoding="utf-8").splitlines()
    count, total, fees = rows[-1].split(",")
    whole, cents = total.lstrip("`").split(".")
    # One yuan more than the lines add up to.
    rows[-1] = f"{count},`{int(whole) + 1}.{cents},{fees}"
    edited = tmp_path / "edited.csv"
    edited.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    channel = statements(platform, http)

    read: list[StatementLine] = []
    with pytest.raises(StatementMalformed, match="summary"):
        read.extend(channel.read_statement(edited, DAY))
    # Every line was yielded before the totals were found wrong; a consumer must wait for the end.
    assert len(read) == len(played_day.lines)


def test_a_day_not_over_in_jhbs_clock_is_not_ready(platform: Platform, http: httpx.Client, tmp_path: Path) -> None:
    with pytest.raises(StatementNotReady):
        statements(platform, http).download_statement(date.today() + timedelta(days=2), tmp_path / "future.csv")


class _TamperingProxy:
    """Forwards to JHB and flips one bit of the signature of every answer that has one."""

    def __init__(self, upstream: str) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                answer = httpx.post(upstream + self.path, content=body, headers={"Content-Type": "application/json"})
                payload = proxy.tamper(answer.content)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def tamper(content: bytes) -> bytes:
        message = json.loads(content)
        if "sign" in message:
            signature = bytearray(base64.b64decode(message["sign"]))
            signature[-1] ^= 0x01
            message["sign"] = base64.b64encode(bytes(signature)).decode()
        return json.dumps(message, ensure_ascii=False).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tampering_proxy(jhb_world: World) -> Iterator[_TamperingProxy]:
    proxy = _TamperingProxy(jhb_world.jhb_url)
    yield proxy
    proxy.close()


def test_an_answer_whose_signature_was_tampered_with_is_unavailable_and_writes_nothing(
    played_day: PlayedDay, platform: Platform, http: httpx.Client, tampering_proxy: _TamperingProxy, tmp_path: Path
) -> None:
    config = replace(config_from_onboarding(platform.data_dir, timeout_s=5.0), base_url=tampering_proxy.url)
    target = tmp_path / "tampered.csv"

    with pytest.raises(StatementUnavailable, match="SignatureInvalid"):
        build_jhb_statement_channel(config, http_client=http).download_statement(DAY, target)
    assert list(tmp_path.iterdir()) == []


def test_a_bank_outage_is_unavailable(jhb_world: World, platform: Platform, http: httpx.Client,
                                      tmp_path: Path) -> None:
    http.post(f"{jhb_world.jhb_url}/_sim/faults", json={"outage": True})
    try:
        with pytest.raises(StatementUnavailable, match="HTTP 503"):
            statements(platform, http).download_statement(DAY, tmp_path / "outage.csv")
    finally:
        http.post(f"{jhb_world.jhb_url}/_sim/faults", json={"outage": False})


def test_the_channel_directory_reads_jhbs_statement_through_this_adapter(
    played_day: PlayedDay, platform: Platform, tmp_path: Path
) -> None:
    registry = load_channels(platform.data_dir, timeout_s=5.0)
    try:
        channel = registry.statements("JHB")
        assert "JHB" in registry.statement_banks()
        downloaded = channel.download_statement(DAY, tmp_path / "via-registry.csv")
        assert list(channel.read_statement(downloaded.path, DAY)) == played_day.lines
    finally:
        registry.close()


def test_a_request_jhb_cannot_authenticate_is_answered_unsigned_and_unavailable(
    platform: Platform, http: httpx.Client, tmp_path: Path
) -> None:
    onboarded = config_from_onboarding(platform.data_dir, timeout_s=5.0)
    stranger = replace(onboarded, platform_private_key=SigningKey.generate())

    with pytest.raises(StatementUnavailable, match="1001"):
        build_jhb_statement_channel(stranger, http_client=http).download_statement(DAY, tmp_path / "unsigned.csv")


def test_an_answer_slower_than_the_timeout_is_unavailable(
    jhb_world: World, platform: Platform, http: httpx.Client, tmp_path: Path
) -> None:
    impatient = replace(config_from_onboarding(platform.data_dir), timeout_s=0.2)
    http.post(f"{jhb_world.jhb_url}/_sim/faults", json={"latency_ms": 1000})
    try:
        with pytest.raises(StatementUnavailable, match="timed out"):
            build_jhb_statement_channel(impatient, http_client=http).download_statement(DAY, tmp_path / "slow.csv")
    finally:
        http.post(f"{jhb_world.jhb_url}/_sim/faults", json={"latency_ms": 0})
