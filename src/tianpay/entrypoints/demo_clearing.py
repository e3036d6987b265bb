"""``tianpay demo``, the next day: the banks' statements reconciled, the day settled, the merchant paid.

The tour's last act (docs/demo.md, "The next day"). The worker is stopped so that one lost notification
(magic 98 at JHB) can be made good only by the bank's statement (补单), and one payment (magic 93 at HBB)
lands on the next day's statement; then the platform and every bank move past Shanghai midnight,
``tianpay reconcile`` and ``tianpay settle`` run as an operator would run them, the worker comes back and
pays the settlement out, and the money is followed into the merchant's account at BCB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import time_machine
from rich.table import Table

from tianpay.adapters.clock import OffsetFileClock
from tianpay.domain.settlement import SHANGHAI, cutoff_of
from tianpay.entrypoints.demo_payer import Leaves, Payer
from tianpay.entrypoints.launcher import Child, platform_argv

if TYPE_CHECKING:
    from tianpay.entrypoints.demo import Instance
    from tianpay_sdk import TianpayClient

# Every bank that publishes a statement (docs/clearing.md); TCS's is the card switch's clearing file.
STATEMENT_BANKS = ("HBB", "JHB", "BCB", "TCS")
# The world is moved to this time of day on the next Shanghai date: the closed date can be reconciled
# at once, and the next midnight is a whole day away from anything the act still does.
TIME_AFTER_MIDNIGHT = time_of_day(0, 30)
# The demo merchant's corporate account, seeded by `tianpay up` (docs/settlement.md); shown masked only.
SETTLEMENT_ACCOUNT_NO = "6230990000000000033"
SETTLEMENT_ACCOUNT_MASKED = "6230…0033"
LOST_AMOUNT_MINOR = 20_098  # 98: paid, never notified
LATE_AMOUNT_MINOR = 20_093  # 93: paid today, on tomorrow's statement
CLI_TIMEOUT_S = 180.0
WORKER_STOP_TIMEOUT_S = 30.0
PAYOUT_TIMEOUT_S = 90.0
POLL_INTERVAL_S = 0.5
PAGE_LIMIT = 100


class ClearingDayError(Exception):
    """The act could not go on (a command refused to run, a process did not stop)."""


# ---- what the act records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reconciled:
    """One ``tianpay reconcile --json`` answer, and what the act expects it to show."""

    bank: str
    business_date: date
    summary: Mapping[str, Any]
    exit_code: int
    # Counters that must be at least this much on this row (the lost notification, the cross-day item).
    expected_at_least: Mapping[str, int] = field(default_factory=dict)

    def count(self, key: str) -> int:
        return int(self.summary.get(key, 0) or 0)

    @property
    def ok(self) -> bool:
        unexplained = self.count("exceptions") or self.count("suspense_minor")
        wanted = all(self.count(key) >= least for key, least in self.expected_at_least.items())
        return self.exit_code == 0 and bool(self.summary.get("ok")) and not unexplained and wanted


@dataclass(frozen=True, slots=True)
class DayTotals:
    """Gross, refunds, fees and net of a day as the merchant can add them up from the API."""

    gross_minor: int
    refunds_minor: int
    fees_minor: int
    payments: int
    refunds: int

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunds_minor - self.fees_minor


@dataclass(frozen=True, slots=True)
class Paid:
    """The settlement's payout as the merchant and BCB saw it."""

    payout_id: str
    payout_status: str
    amount_minor: int
    account_before_minor: int
    account_after_minor: int
    webhooks: tuple[str, ...]

    @property
    def received_minor(self) -> int:
        return self.account_after_minor - self.account_before_minor


@dataclass
class ClearingDay:
    """Everything the act saw; ``ok`` is the act's verdict."""

    business_date: date
    lost_payment_id: str = ""
    late_payment_id: str = ""
    lost_status_before: str = ""
    lost_status_after: str = ""
    lost_webhooks: tuple[str, ...] = ()
    reconciled: list[Reconciled] = field(default_factory=list)
    settlement: dict[str, Any] = field(default_factory=dict)
    from_api: DayTotals | None = None
    paid: Paid | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def settlement_agrees(self) -> bool:
        found, want = self.settlement, self.from_api
        if not found or want is None:
            return False
        return (int(found["gross"]), int(found["refunds"]), int(found["fees"]), int(found["net"])) == (
            want.gross_minor, want.refunds_minor, want.fees_minor, want.net_minor)  # fmt: skip

    @property
    def payout_agrees(self) -> bool:
        paid = self.paid
        if paid is None or not self.settlement:
            return False
        net = int(self.settlement["net"])
        return (
            paid.payout_status == "succeeded"
            and paid.amount_minor == net
            and paid.received_minor == net
            and {"payout.succeeded", "settlement.paid"} <= set(paid.webhooks)
        )

    @property
    def lost_made_good(self) -> bool:
        """Still in flight before the statements were read (so only JHB's statement could tell), then
        succeeded with exactly one ``payment.succeeded`` at the merchant."""
        return (
            self.lost_status_before in ("created", "processing")
            and self.lost_status_after == "succeeded"
            and self.lost_webhooks == ("payment.succeeded",)
        )

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and all(row.ok for row in self.reconciled)
            and self.lost_made_good
            and self.settlement_agrees
            and self.payout_agrees
        )


# ---- the act ---------------------------------------------------------------------------------------------------


def play_clearing_day(instance: Instance, say: Callable[[str], None]) -> ClearingDay:
    """Plays the next day; every finding is in the returned record (``ok`` says whether all agree)."""
    started = time.monotonic()
    day = ClearingDay(business_date=bank_business_date(instance))
    stop_worker(instance)
    say(f"worker stopped: nothing re-queries the banks or delivers webhooks until it is back ({day.business_date})")
    day.lost_payment_id, saw = pay_at_cashier(instance, "JHB", LOST_AMOUNT_MINOR, "lost", Leaves.CLOSES_TAB)
    say(f"98 at JHB, {yuan(LOST_AMOUNT_MINOR)}: {saw}; JHB will never notify")
    day.late_payment_id, saw = pay_at_cashier(instance, "HBB", LATE_AMOUNT_MINOR, "late", Leaves.RETURNS)
    say(f"93 at HBB, {yuan(LATE_AMOUNT_MINOR)}: {saw}; HBB books it on tomorrow's statement")
    wait_for(lambda: payment_status(instance, day.late_payment_id) == "succeeded", timeout_s=30.0,
             what="HBB's notification of the 93 payment")  # fmt: skip
    day.lost_status_before = payment_status(instance, day.lost_payment_id)

    merchant = MerchantTime()
    try:
        return _the_next_day(instance, day, merchant, say)
    finally:
        merchant.back_to_real_time()
        say(f"the next day took {time.monotonic() - started:.0f}s")


def _the_next_day(
    instance: Instance, day: ClearingDay, merchant: MerchantTime, say: Callable[[str], None]
) -> ClearingDay:
    first = move_to_next_day(instance, merchant)
    say(f"platform and banks moved to {first:%Y-%m-%d %H:%M} Asia/Shanghai")
    wanted = {"JHB": {"made_good": 1}, "HBB": {"parked": 1}}
    day.reconciled += reconcile_every_bank(instance, day.business_date, wanted)
    day.lost_status_after = payment_status(instance, day.lost_payment_id)
    say(f"98 payment after JHB's statement: {day.lost_status_before} → {day.lost_status_after}")

    day.settlement = settle(instance, day)
    day.from_api = totals_from_api(instance.client, day.business_date, made_good_later=(day.lost_payment_id,))
    say(f"settlement {day.settlement.get('id', '—')}: net {yuan(int(day.settlement.get('net', 0)))}")

    account_before = account_balance(instance, "BCB", SETTLEMENT_ACCOUNT_NO)
    start_worker(instance)
    say("worker resumed: it pays the settlement out to BCB and delivers the held webhooks")
    day.paid = follow_payout(instance, day, account_before)
    day.lost_webhooks = tuple(str(e["type"]) for e in instance.site.events_about(day.lost_payment_id))
    # The worker stays stopped from here on, so the next day's statements are read by the command
    # alone and the final book check is not racing a payout in flight.
    stop_worker(instance)

    second = move_to_next_day(instance, merchant)
    say(f"platform and banks moved to {second:%Y-%m-%d %H:%M} Asia/Shanghai: the payout's day is closed")
    next_date = day.business_date + timedelta(days=1)
    wanted = {"HBB": {"matched_cross_day": 1}, "BCB": {"matched": 1}}
    day.reconciled += reconcile_every_bank(instance, next_date, wanted)
    return day


def pay_at_cashier(instance: Instance, bank: str, amount_minor: int, key: str, leaves: Leaves) -> tuple[str, str]:
    payment = instance.client.payments.create(
        out_trade_no=f"demo-{datetime.now(UTC):%H%M%S}-next-{key}",
        amount=amount_minor,
        currency="CNY",
        method="cashier",
        subject=f"津门好物 · the next day ({key})",
        return_url=instance.site.return_url(f"next-{key}"),
    )
    with Payer(timeout_s=20.0) as payer:
        saw = payer.pay(str(payment["cashier_url"]), bank, leaves)
    return str(payment["id"]), saw


def payment_status(instance: Instance, payment_id: str) -> str:
    return str(instance.client.payments.retrieve(payment_id)["status"])


# ---- the worker and the clock ------------------------------------------------------------------------------------


def worker_child(instance: Instance) -> Child | None:
    if instance.supervisor is None:
        raise ClearingDayError("the demo does not own its processes")
    running = [c for c in instance.supervisor.children if c.name == "worker" and c.process.poll() is None]
    return running[-1] if running else None


def stop_worker(instance: Instance) -> None:
    """SIGTERM, which the worker honours between ticks: never frozen mid-transaction (a SIGSTOP could
    leave SQLite's write lock held by a stopped process)."""
    child = worker_child(instance)
    if child is None:
        return
    child.process.send_signal(signal.SIGTERM)
    try:
        child.process.wait(timeout=WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ClearingDayError("the worker did not stop") from None


def start_worker(instance: Instance) -> None:
    if instance.supervisor is None:
        raise ClearingDayError("the demo does not own its processes")
    if worker_child(instance) is None:
        instance.supervisor.start("worker", platform_argv("worker", instance.data_dir), env=instance.child_env)


def bank_clock(instance: Instance) -> dict[str, Any]:
    response = httpx.get(instance.bank_urls["HBB"] + "/_sim/clock", timeout=10.0)
    response.raise_for_status()
    clock: dict[str, Any] = response.json()
    return clock


def bank_business_date(instance: Instance) -> date:
    return date.fromisoformat(str(bank_clock(instance)["business_date"]))


class MerchantTime:
    """The demo process itself, which plays the merchant, moved in time with the platform.

    The merchant's SDK signs requests with its own clock and checks the age of the platform's
    signed answers, and its webhook receiver refuses notifications more than five minutes off its
    clock: a merchant a day behind the platform would refuse everything (rightly). ``time-machine``
    moves this process's wall clock (``time.time``, ``datetime.now``; never ``time.monotonic``, which
    every wait here uses) for as long as the act runs.
    """

    def __init__(self) -> None:
        self._travel: time_machine.travel | None = None

    def move_to(self, moment: datetime) -> None:
        if self._travel is not None:
            self._travel.stop()
        self._travel = time_machine.travel(moment, tick=True)
        self._travel.start()

    def back_to_real_time(self) -> None:
        if self._travel is not None:
            self._travel.stop()
            self._travel = None


def move_to_next_day(instance: Instance, merchant: MerchantTime) -> datetime:
    """Moves every bank, the platform and the merchant to 00:30 of the next Shanghai date; returns it.

    The target comes from the banks' own clock; the banks share one world clock (TCS included, which
    has no clock endpoint of its own) and each HTTP bank is told the same absolute offset, which is
    idempotent. The platform's processes read their offset from the clock file, set to the banks'.
    """
    if instance.clock_file is None:
        raise ClearingDayError("the platform was started without TIANPAY_CLOCK_FILE")
    clock = bank_clock(instance)
    now = datetime.fromisoformat(str(clock["now"])).astimezone(SHANGHAI)
    target = datetime.combine(now.date() + timedelta(days=1), TIME_AFTER_MIDNIGHT, tzinfo=SHANGHAI)
    offset_s = float(clock["offset_s"]) + (target - now).total_seconds()
    for url in instance.bank_urls.values():
        httpx.post(url + "/_sim/clock", json={"offset_s": offset_s}, timeout=10.0).raise_for_status()
    platform = OffsetFileClock(instance.clock_file)
    platform.advance(timedelta(seconds=offset_s - platform_offset_s(instance.clock_file)))
    merchant.move_to(datetime.fromisoformat(str(bank_clock(instance)["now"])))
    return target


def platform_offset_s(clock_file: Path) -> float:
    """The offset the platform's processes add to the system clock now (docs/demo.md)."""
    try:
        return float(json.loads(clock_file.read_text(encoding="utf-8")).get("offset_s", 0.0))
    except (OSError, ValueError):
        return 0.0


# ---- the operator's commands ---------------------------------------------------------------------------------------


def run_cli(instance: Instance, command: str, *args: str) -> subprocess.Popen[str]:
    argv = [*platform_argv(command, instance.data_dir, *args), "--json"]
    return subprocess.Popen(  # noqa: S603 - our own executable and options
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **instance.child_env},
    )


def json_answer(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any]]:
    """The exit code and the one JSON line a ``--json`` command printed."""
    try:
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise ClearingDayError(f"a command did not finish within {CLI_TIMEOUT_S:.0f}s: {process.args!r}") from None
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise ClearingDayError(f"a command printed no JSON (exit {process.returncode}): {stderr.strip()[-300:]}")
    answer: dict[str, Any] = json.loads(lines[-1])
    return process.returncode, answer


def reconcile_every_bank(
    instance: Instance, business_date: date, expected: Mapping[str, Mapping[str, int]]
) -> list[Reconciled]:
    """``tianpay reconcile --bank B --date D --json`` for every statement bank, the four at once."""
    running = {
        bank: run_cli(instance, "reconcile", "--bank", bank, "--date", business_date.isoformat())
        for bank in STATEMENT_BANKS
    }
    found = []
    for bank, process in running.items():
        exit_code, answer = json_answer(process)
        found.append(Reconciled(bank, business_date, answer, exit_code, expected.get(bank, {})))
    return found


def settle(instance: Instance, day: ClearingDay) -> dict[str, Any]:
    """``tianpay settle --date D --json``; the demo merchant's settlement, or {} (and a problem)."""
    exit_code, answer = json_answer(run_cli(instance, "settle", "--date", day.business_date.isoformat()))
    merchant_id = instance.summary["merchant"]["merchant_id"]
    mine = [s for s in answer.get("settlements", []) if s.get("merchant_id") == merchant_id]
    if exit_code != 0 or len(mine) != 1:
        day.problems.append(f"tianpay settle exited {exit_code}: {answer.get('message', answer)}")
        return {}
    settlement: dict[str, Any] = mine[0]
    return settlement


# ---- the merchant's own arithmetic ------------------------------------------------------------------------------


def events_of(client: TianpayClient, event_type: str) -> Iterator[dict[str, Any]]:
    """Every event of one type the merchant has, from ``GET /v1/events`` page by page."""
    after: str | None = None
    while True:
        filters: dict[str, Any] = {"type": event_type, "limit": PAGE_LIMIT}
        if after is not None:
            filters["starting_after"] = after
        page = client.events.list(**filters)
        yield from page["data"]
        if not page["has_more"] or not page["data"]:
            return
        after = str(page["data"][-1]["id"])


def totals_from_api(client: TianpayClient, business_date: date, *, made_good_later: tuple[str, ...] = ()) -> DayTotals:
    """What the merchant can add up itself: payments and refunds announced before the date's end.

    A payment made good by reconciliation is announced, and booked, after midnight: it belongs to
    the next settlement (docs/settlement.md), which is why it is named here and left out. The fee
    of a refund is what it returned (``fee_returned``); a POS void or reversal returns the whole fee.
    """
    cutoff = cutoff_of(business_date)
    gross = fees = refunded = payments = refunds = 0
    seen: set[str] = set()
    for event in events_of(client, "payment.succeeded"):
        data = event["data"]
        if data["id"] in seen or datetime.fromisoformat(str(event["created_at"])) >= cutoff:
            continue
        if data["id"] in made_good_later:
            continue
        seen.add(str(data["id"]))
        gross, fees, payments = gross + int(data["amount"]), fees + int(data["fee_amount"]), payments + 1
    for event in events_of(client, "refund.succeeded"):
        data = event["data"]
        if datetime.fromisoformat(str(event["created_at"])) >= cutoff:
            continue
        returned = data["fee_returned"] if "fee_returned" in data else data["payment"]["fee_amount"]
        refunded, fees, refunds = refunded + int(data["amount"]), fees - int(returned), refunds + 1
    return DayTotals(gross, refunded, fees, payments, refunds)


# ---- the payout ----------------------------------------------------------------------------------------------------


def account_balance(instance: Instance, bank: str, acc_no: str) -> int:
    response = httpx.get(instance.summary["banks"][bank] + "/_sim/state", timeout=10.0)
    response.raise_for_status()
    for account in response.json()["accounts"]:
        if account["acc_no"] == acc_no:
            return int(account["balance_minor"])
    raise ClearingDayError(f"{bank} has no account {SETTLEMENT_ACCOUNT_MASKED}")


def follow_payout(instance: Instance, day: ClearingDay, account_before: int) -> Paid | None:
    """Waits for ``settlement.paid`` and ``payout.succeeded`` at the merchant's site and for the lost
    payment's ``payment.succeeded``; then reads the merchant's BCB account."""
    settlement_id = str(day.settlement.get("id", ""))
    if not settlement_id:
        return None

    def paid_event() -> dict[str, Any] | None:
        found = [e for e in instance.site.events_about(settlement_id) if e["type"] == "settlement.paid"]
        return found[0] if found else None

    def everything_arrived() -> bool:
        event = paid_event()
        if event is None or not instance.site.events_about(day.lost_payment_id):
            return False
        payout_id = str(event["data"]["payout_id"])
        return any(e["type"] == "payout.succeeded" for e in instance.site.events_about(payout_id))

    try:
        wait_for(everything_arrived, timeout_s=PAYOUT_TIMEOUT_S, what="the payout and the held webhooks")
    except ClearingDayError as error:
        day.problems.append(str(error))
    event = paid_event()
    if event is None:
        return None
    payout_id = str(event["data"]["payout_id"])
    payout_events = instance.site.events_about(payout_id)
    succeeded = [e for e in payout_events if e["type"] == "payout.succeeded"]
    payout: dict[str, Any] = succeeded[0]["data"] if succeeded else {"status": "unknown", "amount": 0}
    return Paid(
        payout_id=payout_id,
        payout_status=str(payout["status"]),
        amount_minor=int(payout["amount"]),
        account_before_minor=account_before,
        account_after_minor=account_balance(instance, "BCB", SETTLEMENT_ACCOUNT_NO),
        webhooks=("settlement.paid", *(str(e["type"]) for e in payout_events)),
    )


def wait_for(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise ClearingDayError(f"timed out waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


# ---- the report -----------------------------------------------------------------------------------------------------


def yuan(amount_minor: int) -> str:
    sign = "-" if amount_minor < 0 else ""
    return f"{sign}¥{abs(amount_minor) // 100:,}.{abs(amount_minor) % 100:02d}"


def tick(ok: bool) -> str:
    return "[green]✓[/green]" if ok else "[red]✗[/red]"


def reconciliation_table(day: ClearingDay) -> Table:
    table = Table(title="Reconciliation, every bank (tianpay reconcile)", title_justify="left")
    columns = ("bank", "date", "lines", "matched", "across days", "made good (补单)", "parked", "exceptions",
               "bank charges booked", "suspense", "ok")  # fmt: skip
    for name in columns:
        table.add_column(name, no_wrap=True, justify="right" if name not in ("bank", "date", "ok") else "left")
    for row in day.reconciled:
        table.add_row(
            row.bank,
            row.business_date.isoformat(),
            str(row.count("lines")),
            str(row.count("matched")),
            str(row.count("matched_cross_day")),
            str(row.count("made_good")),
            str(row.count("parked")),
            str(row.count("exceptions")),
            yuan(row.count("charges_minor")),
            yuan(row.count("suspense_minor")),
            tick(row.ok),
        )
    return table


def settlement_table(day: ClearingDay) -> Table:
    table = Table(title=f"Settlement of {day.business_date} (tianpay settle) against the merchant's own sums",
                  title_justify="left")  # fmt: skip
    for name in ("", "payments", "gross", "refunds", "fees", "net", "ok"):
        table.add_column(name, no_wrap=True, justify="left" if name in ("", "ok") else "right")
    found, want = day.settlement, day.from_api
    if found:
        table.add_row(f"settlement {found['id']}", str(found["line_count"]) + " lines", yuan(int(found["gross"])),
                      yuan(int(found["refunds"])), yuan(int(found["fees"])), yuan(int(found["net"])),
                      tick(day.settlement_agrees))  # fmt: skip
    if want is not None:
        table.add_row("from GET /v1/events", f"{want.payments} paid, {want.refunds} refunds", yuan(want.gross_minor),
                      yuan(want.refunds_minor), yuan(want.fees_minor), yuan(want.net_minor), "")  # fmt: skip
    return table


def payout_table(day: ClearingDay) -> Table:
    table = Table(title="The settlement's payout, into the merchant's account at BCB", title_justify="left")
    for name in ("payout", "status", "amount", f"BCB {SETTLEMENT_ACCOUNT_MASKED} received", "webhooks received",
                 "ok"):  # fmt: skip
        table.add_column(name, no_wrap=True)
    paid = day.paid
    if paid is None:
        table.add_row("none", "—", "—", "—", "—", tick(False))
        return table
    moved = f"{yuan(paid.account_before_minor)} → {yuan(paid.account_after_minor)} (+{yuan(paid.received_minor)})"
    table.add_row(paid.payout_id, paid.payout_status, yuan(paid.amount_minor), moved, ", ".join(paid.webhooks),
                  tick(day.payout_agrees))  # fmt: skip
    table.add_row(day.lost_payment_id, day.lost_status_after, yuan(LOST_AMOUNT_MINOR), "98 made good (JHB statement)",
                  ", ".join(day.lost_webhooks) or "none", tick(day.lost_made_good))  # fmt: skip
    return table


def clearing_tables(day: ClearingDay) -> list[Table]:
    return [reconciliation_table(day), settlement_table(day), payout_table(day)]
