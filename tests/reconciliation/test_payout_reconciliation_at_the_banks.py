"""Payouts reconciled against BCB's real statement, on SQLite and PostgreSQL.

The payouts world (tests/payouts/conftest.py) runs HBB, JHB and BCB in a subprocess. A payout is
paid from BCB's reserve and learned at once; another (magic 96) is paid but BCB's answer never
comes and nobody queries it. BCB's day then ends, the platform downloads BCB's statement through the real
adapter and reconciles it: the lost payout is made good through the payouts service, BCB's charges
are booked, and BCB's reserve moved exactly as ``bank:BCB:reserve`` did. A payout line, and a bounce
(退票) line, booked to suspense and closed before the bank's late word are recorded once (the after-close rule).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.payouts import conftest as payouts_world
from tests.payouts.conftest import LI_NA_JHB, RESERVES, WANG_FANG_BCB, PayoutWorld, fund_merchant
from tests.payouts.test_payouts_at_the_banks import POLICY
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.channels.registry import ChannelRegistry
from tianpay.domain.errors import NotFound
from tianpay.domain.ledger import bank_reserve
from tianpay.domain.money import Money
from tianpay.domain.payout import PayeeAccount, PayoutRequest, PayoutStatus
from tianpay.domain.reconciliation import SHANGHAI, ExceptionStatus, RunStatus
from tianpay.ports.channels import ChannelResult, Outcome
from tianpay.ports.reconciliation import ReconciliationException, ReconciliationRun
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import payouts
from tianpay.services.ledger import verify_ledger
from tianpay.services.member_tools import MemberTools
from tianpay.services.reconciliation import ReconciliationPolicy, exceptions_of, reconcile, resolve_exception

# The notices BCB sends are held up this long at most before a test gives up waiting for one.
NOTICE_WAIT_S = 15.0

pytestmark = pytest.mark.e2e

payout_world, payout_data_dir, channels, tools = (
    payouts_world.payout_world, payouts_world.payout_data_dir, payouts_world.channels, payouts_world.tools,
)


def _bank_now(world: PayoutWorld) -> datetime:
    return datetime.fromisoformat(httpx.get(world.urls["BCB"] + "/_sim/clock", timeout=10).json()["now"])


def _move_banks_to(world: PayoutWorld, moment: datetime) -> None:
    for url in world.urls.values():
        httpx.post(url + "/_sim/clock", json={"now": moment.isoformat()}, timeout=10).raise_for_status()


@pytest.fixture
def day(payout_world: PayoutWorld) -> date:
    fresh = _bank_now(payout_world).astimezone(SHANGHAI).date() + timedelta(days=2)
    _move_banks_to(payout_world, datetime(fresh.year, fresh.month, fresh.day, 10, tzinfo=SHANGHAI))
    return fresh


@pytest.fixture
def clock(payout_world: PayoutWorld, day: date) -> SettableClock:
    return SettableClock(_bank_now(payout_world).astimezone(UTC))


def _payout(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, number: str, minor: int,
) -> str:
    request = PayoutRequest(number, Money.cny(minor), "货款结算", PayeeAccount(*WANG_FANG_BCB))
    created = payouts.create_payout(
        uow_factory, clock, ids, channels, tools.cipher, payouts_world.MERCHANT_ID, request
    ).payout
    return created.id


def test_a_payout_whose_notice_was_lost_is_made_good_from_bcbs_statement(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, payout_world: PayoutWorld, day: date, tmp_path: Path,
) -> None:
    fund_merchant(uow_factory, clock, 100_000, source=f"funding-{day.isoformat()}")
    reserve_at_start = payout_world.balance("BCB", RESERVES["BCB"])
    plain = _payout(uow_factory, clock, ids, channels, tools, f"R-{day}-1", 12_300)
    payouts.dispatch_payouts(uow_factory, clock, ids, channels, tools.cipher, clock.now(), policy=POLICY)
    # Magic 96: BCB pays it but its answer never comes; nobody queries it afterwards.
    lost = _payout(uow_factory, clock, ids, channels, tools, f"R-{day}-2", 10_096)
    payouts.dispatch_payouts(uow_factory, clock, ids, channels, tools.cipher, clock.now(), policy=POLICY)
    with uow_factory() as uow:
        before = {p: found.status for p in (plain, lost) if (found := uow.payouts.get(p)) is not None}
    assert before == {plain: PayoutStatus.SUCCEEDED, lost: PayoutStatus.UNKNOWN}

    for offset in (1, 2):
        later = day + timedelta(days=offset)
        _move_banks_to(payout_world, datetime(later.year, later.month, later.day, 10, tzinfo=SHANGHAI))
        clock.advance(timedelta(days=1))
    policy = ReconciliationPolicy(statements_dir=tmp_path / "statements")
    report = reconcile(uow_factory, clock, ids, channels, "BCB", day, policy=policy, worker_id="w1")

    assert report.status == "finished", report.detail
    assert report.summary["exceptions"] == 0, exceptions_of(uow_factory)
    assert report.summary["made_good"] == 1
    assert report.summary["matched"] == 1
    with uow_factory() as uow:
        after = {p: found.status for p in (plain, lost) if (found := uow.payouts.get(p)) is not None}
    assert after == {plain: PayoutStatus.SUCCEEDED, lost: PayoutStatus.SUCCEEDED}
    assert verify_ledger(uow_factory).problem is None
    with uow_factory() as uow:
        uow.ledger.ensure_accounts([bank_reserve("BCB")])
        ledger_reserve = uow.ledger.balance("bank:BCB:reserve").minor
    assert payout_world.balance("BCB", RESERVES["BCB"]) - reserve_at_start == ledger_reserve


def _line_booked_to_suspense_and_closed(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, day: date, payout_id: str, *, tag: str,
    statement_amount_minor: int, closed_as: str,
) -> str:
    """A BCB statement line about ``payout_id`` whose 补单 its service refused (no payout refuses today, so the
    exception is written here as reconciliation opens it), booked to suspense and closed ``closed_as`` by an
    operator. ``statement_amount_minor`` < 0 is the payout's own line, > 0 its bounce. Returns the
    follow-up's id."""
    run_id, refused_id = f"rcn_payout_{tag}", f"rcx_payout_{tag}"
    with uow_factory() as uow:
        uow.reconciliation.add_run(ReconciliationRun(
            id=run_id, bank="BCB", business_date=day, status=RunStatus.FINISHED, file_id=None, summary={},
            lease_owner=None, lease_expires_at=None, next_try_at=None, last_error=None, started_at=None,
            finished_at=None, created_at=clock.now(),
        ))
        uow.reconciliation.add_exception(ReconciliationException(
            id=refused_id, run_id=run_id, bank="BCB", business_date=day, kind="make_good_refused",
            dedupe_key=f"test:{refused_id}", suspense_minor=0, status=ExceptionStatus.OPEN, created_at=clock.now(),
            record_id=payout_id, bank_ref=f"LATE-{tag}", line_no=1, statement_amount_minor=statement_amount_minor,
            platform_amount_minor=-abs(statement_amount_minor),
        ))
        uow.commit()
    resolve_exception(uow_factory, clock, refused_id, action="book_to_suspense", operator="finance1", reason="r")
    resolve_exception(uow_factory, clock, f"{refused_id}_s", action=closed_as, operator="finance1", reason="c")
    return f"{refused_id}_s"


def _balance(uow_factory: UnitOfWorkFactory, code: str) -> int:
    """An account's balance; zero for one nothing was ever posted to."""
    with uow_factory() as uow:
        try:
            return uow.ledger.balance(code).minor
        except NotFound:
            return 0


def _alerts_about(uow_factory: UnitOfWorkFactory, subject_id: str) -> list[str]:
    with uow_factory() as uow:
        return [a.kind.value for a in uow.alerts.open_alerts() if a.subject_id == subject_id]


def _after_close_exceptions(uow_factory: UnitOfWorkFactory, payout_id: str) -> list[ReconciliationException]:
    return [e for e in exceptions_of(uow_factory) if e.record_id == payout_id and e.kind == "recorded_after_close"]


def _events(uow_factory: UnitOfWorkFactory) -> list[str]:
    with uow_factory() as uow:
        return [e.type.value for e in uow.outbox.list_events(payouts_world.MERCHANT_ID, limit=100).events]


@pytest.mark.parametrize("closed_as", ["write_off", "recovered"])
def test_a_payout_success_after_its_suspense_follow_up_was_closed_moves_the_reserve_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, payout_world: PayoutWorld, day: date, closed_as: str,
) -> None:
    fund_merchant(uow_factory, clock, 100_000, source=f"funding-{day.isoformat()}-{closed_as}")
    available = f"merchant:{payouts_world.MERCHANT_ID}:available"
    # Magic 96: BCB pays it, its answer never comes.
    lost = _payout(uow_factory, clock, ids, channels, tools, f"S-{day}-{closed_as}", 10_096)
    payouts.dispatch_payouts(uow_factory, clock, ids, channels, tools.cipher, clock.now(), policy=POLICY)
    with uow_factory() as uow:
        in_flight = uow.payouts.get(lost)
    assert in_flight is not None
    assert in_flight.status is PayoutStatus.UNKNOWN
    follow_up = _line_booked_to_suspense_and_closed(
        uow_factory, clock, day, lost, tag=closed_as, statement_amount_minor=-10_096, closed_as=closed_as
    )
    with uow_factory() as uow:
        uow.ledger.ensure_accounts([bank_reserve("BCB")])
        reserve_before = uow.ledger.balance("bank:BCB:reserve").minor
        available_before = uow.ledger.balance(available).minor

    # The bank's late word, then the same word again (a duplicated answer): the same news both times.
    success = ChannelResult(Outcome.SUCCEEDED, bank_reference="P-LATE", amount=Money.cny(10_096))
    payouts.apply_payout_result(uow_factory, clock, lost, success)
    payouts.apply_payout_result(uow_factory, clock, lost, success)

    with uow_factory() as uow:
        after = uow.payouts.get(lost)
        reserve_after = uow.ledger.balance("bank:BCB:reserve").minor
        available_after = uow.ledger.balance(available).minor
    assert after is not None
    assert reserve_after == reserve_before
    assert verify_ledger(uow_factory).problem is None
    [after_close] = _after_close_exceptions(uow_factory, lost)
    assert after_close.id == f"{follow_up}_r"
    assert _alerts_about(uow_factory, lost) == []
    if closed_as == "write_off":
        assert after.status is PayoutStatus.SUCCEEDED
        assert (available_after, after_close.suspense_minor) == (available_before, -10_096)
    else:
        # The money came back to the reserve: the payout failed and the merchant has it again.
        assert (after.status, after.failure_code) == (PayoutStatus.FAILED, "undone_by_recovery")
        assert (available_after, after_close.suspense_minor) == (available_before + 10_096, 0)


class HeldNotices:
    """A loopback endpoint standing in for the platform's payout notify URL: it keeps every notice BCB posts
    and acknowledges none, so a test can hand one to the platform later (a notice held up on the way)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notices: list[tuple[bytes, str]] = []
        held = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with held._lock:
                    held._notices.append((body, self.headers.get("Content-Type", "")))
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="held-notices", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def first(self) -> tuple[bytes, str]:
        """The first notice BCB posted, once it has come."""
        deadline = time.monotonic() + NOTICE_WAIT_S
        while time.monotonic() < deadline:
            with self._lock:
                if self._notices:
                    return self._notices[0]
            time.sleep(0.05)
        pytest.fail(f"BCB posted no notice within {NOTICE_WAIT_S} s")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def held_notices() -> Iterator[HeldNotices]:
    notices = HeldNotices()
    yield notices
    notices.close()


@pytest.mark.parametrize("closed_as", ["write_off", "recovered"])
@pytest.mark.parametrize("amount_minor", [6_600, 10_096], ids=["answered", "answer_lost"])
def test_a_bounce_after_its_suspense_follow_up_was_closed_moves_the_reserve_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, ids: UlidGenerator, channels: ChannelRegistry,
    tools: MemberTools, payout_world: PayoutWorld, day: date, held_notices: HeldNotices, closed_as: str,
    amount_minor: int,
) -> None:
    fund_merchant(uow_factory, clock, 100_000, source=f"funding-{day.isoformat()}-{closed_as}-{amount_minor}")
    available = f"merchant:{payouts_world.MERCHANT_ID}:available"
    bank_reserve_at_start = payout_world.balance("BCB", RESERVES["BCB"])
    reserve_at_start, available_at_start = _balance(uow_factory, "bank:BCB:reserve"), _balance(uow_factory, available)
    # To 李娜's JHB account under another name: BCB answers 0000 (or, magic 96, its answer never comes), JHB
    # sends the money back through the clearing and BCB posts its 300001 bounce, which is held up on the way.
    request = PayoutRequest(f"B-{day}-{closed_as}-{amount_minor}", Money.cny(amount_minor), "货款结算",
                            PayeeAccount(LI_NA_JHB[0], LI_NA_JHB[1], "王五"))
    bounced = payouts.create_payout(
        uow_factory, clock, ids, channels, tools.cipher, payouts_world.MERCHANT_ID, request
    ).payout.id
    payouts.dispatch_payouts(uow_factory, clock, ids, channels, tools.cipher, clock.now(), policy=POLICY,
                             notify_base_url=held_notices.base_url)
    notice, content_type = held_notices.first()
    with uow_factory() as uow:
        sent = uow.payouts.get(bounced)
    assert sent is not None
    assert sent.status is (PayoutStatus.SUCCEEDED if amount_minor == 6_600 else PayoutStatus.UNKNOWN)
    # The bounce line of BCB's statement, refused, booked to suspense and closed before the notice arrives.
    follow_up = _line_booked_to_suspense_and_closed(
        uow_factory, clock, day, bounced, tag=f"bounce_{closed_as}_{amount_minor}",
        statement_amount_minor=amount_minor, closed_as=closed_as,
    )
    suspense_before = _balance(uow_factory, "platform:suspense")

    # The held notice arrives, then again (BCB retries until acknowledged).
    for _ in range(2):
        ack = payouts.handle_payout_notification(
            uow_factory, clock, channels, "BCB", notice, content_type, others_may_claim=False
        )
        assert ack is not None
        assert ack.status_code == 200

    with uow_factory() as uow:
        after = uow.payouts.get(bounced)
    assert after is not None
    assert verify_ledger(uow_factory).problem is None
    [after_close] = _after_close_exceptions(uow_factory, bounced)
    assert after_close.id == f"{follow_up}_r"
    assert _alerts_about(uow_factory, bounced) == []
    # The payout's own success (when its answer was lost) went through the reserve as usual, once.
    assert _events(uow_factory).count("payout.succeeded") == 1
    reserve_moved = _balance(uow_factory, "bank:BCB:reserve") - reserve_at_start
    if closed_as == "write_off":
        # The platform had kept the bounced money; it was the merchant's after all: back in available,
        # taken out of suspense, and the reserve moved as BCB's did (out, and back in once).
        assert after.status is PayoutStatus.RETURNED
        assert _balance(uow_factory, available) == available_at_start
        assert _events(uow_factory).count("payout.returned") == 1
        assert after_close.suspense_minor == amount_minor
        assert _balance(uow_factory, "platform:suspense") - suspense_before == amount_minor
        assert payout_world.balance("BCB", RESERVES["BCB"]) - bank_reserve_at_start == reserve_moved == 0
        resolve_exception(uow_factory, clock, after_close.id, action="write_off", operator="finance1",
                          reason="the bounced money was the merchant's: the earlier gain is taken back")
        assert _balance(uow_factory, "platform:suspense") == suspense_before
    else:
        # The bounced money was paid out of the reserve again by the operator: the bounce is undone, the
        # payout stays paid and the merchant is not given the money a second time.
        assert after.status is PayoutStatus.SUCCEEDED
        assert _balance(uow_factory, available) == available_at_start - amount_minor
        assert "payout.returned" not in _events(uow_factory)
        assert after_close.suspense_minor == 0
        assert _balance(uow_factory, "platform:suspense") == suspense_before
        # Out once with the payout, in with the booking, out again with the recovery.
        assert reserve_moved == -amount_minor
        resolve_exception(uow_factory, clock, after_close.id, action="dismiss", operator="finance1",
                          reason="the bounced money was paid out again; the bounce was recorded as undone")
    assert verify_ledger(uow_factory).problem is None
