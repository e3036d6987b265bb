"""``tianpay demo``: a scripted tour of gateway and account mode on a fresh embedded instance, checked end to end.

It starts the real processes (banks, API server, worker) with compressed schedules, plays a merchant
(the SDK and a webhook receiver) and a payer (the cashier, wallet and bank pages over HTTP), then
holds what the platform recorded against what each bank did and against the ledger. Account mode
(a member, bound cards, the wallet, quick pay, a failover) is in ``demo_account.py``; the next day
(reconciliation, settlement, payout) in ``demo_clearing.py``. Exit 0 only if all agree.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.errors import NotFound
from tianpay.entrypoints.demo_account import account_table, member_of_binding, play_account_mode, settle_account
from tianpay.entrypoints.demo_acquiring import acquiring_tables, play_direct_debit, play_pos, settle_acquiring
from tianpay.entrypoints.demo_clearing import ClearingDayError, clearing_tables, play_clearing_day
from tianpay.entrypoints.demo_payer import Leaves, Payer, PayerStuck
from tianpay.entrypoints.demo_receiver import MerchantSite
from tianpay.entrypoints.launcher import Supervisor, bring_up, free_port_block, interrupt
from tianpay.entrypoints.pos_terminal import TerminalError
from tianpay.services.ledger import verify_ledger
from tianpay.services.merchants import set_webhook_url

if TYPE_CHECKING:
    from tianpay_sdk import TianpayClient

# How long magic 96/97 make the bank hold a request before it gives up without an answer.
HANG_S = 3.0
# Payments that must end by expiry live just over the API's one-minute minimum.
SHORT_EXPIRY_S = 63
DEFAULT_TIMEOUT_S = 150.0
POLL_INTERVAL_S = 0.5
# The banks whose reserve the demo holds against the ledger (BCB pays the settlement out).
BANKS = ("HBB", "JHB", "BCB")
# Inside the data directory: the offset every platform process adds to its clock (TIANPAY_CLOCK_FILE),
# so the next day's act can move the whole platform past midnight with the banks.
PLATFORM_CLOCK_FILE = "platform-clock.json"

# Every schedule the demo waits on, compressed so the tour takes about a minute. The database and
# public URL are blanked so a TIANPAY_DATABASE_URL in the caller's shell cannot make it reuse data.
DEMO_ENV = {
    "TIANPAY_DATABASE_URL": "",
    "TIANPAY_PUBLIC_BASE_URL": "",
    "TIANPAY_REQUERY_FIRST_AFTER_S": "2",
    "TIANPAY_REQUERY_MAX_INTERVAL_S": "4",
    "TIANPAY_ABSENT_ORDER_MARGIN_S": "3",
    "TIANPAY_WORKER_POLL_INTERVAL_S": "0.2",
    "TIANPAY_WEBHOOK_RETRY_SCALE": "0.01",
    "BANKSIM_NOTIFY_SCALE": "0.01",
    "BANKSIM_HANG_S": str(HANG_S),
    # Account mode signs the member up in the wallet; the demo reads the platform's text to the phone.
    "TIANPAY_DEV_SMS_OUTBOX": "1",
}


class DemoError(Exception):
    """The demo could not run (as opposed to ran and found a disagreement)."""


# ---- what the tour does and what it expects -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    status: str
    webhooks: tuple[str, ...]
    money_moves: bool
    # Bank notifications that must have been delivered before the row counts as settled (magic 99).
    notices_at_least: int = 0

    def describe(self) -> str:
        count = len(self.webhooks)
        return f"{self.status} · {count or 'no'} webhook{'s' if count != 1 else ''}"


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    bank: str | None
    amount_minor: int
    expected: Expected
    leaves: Leaves = Leaves.RETURNS
    short_expiry: bool = False


SUCCEEDED = Expected("succeeded", ("payment.succeeded",), money_moves=True)
CLOSED = Expected("closed", ("payment.closed",), money_moves=False)

# The two that end by expiry go first: they set the length of the whole tour.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("expired", "expired, nobody pays", None, 5_000, CLOSED, short_expiry=True),
    Scenario("97", "97 answer lost, not paid", "HBB", 10_097, CLOSED, short_expiry=True),
    Scenario("hbb", "online banking at HBB", "HBB", 12_345, SUCCEEDED),
    Scenario("jhb", "online banking at JHB", "JHB", 23_456, SUCCEEDED),
    Scenario("51", "51 declined", "HBB", 10_051, Expected("created", (), money_moves=False)),
    Scenario("94", "94 processing, then paid", "HBB", 10_094, SUCCEEDED),
    Scenario("96", "96 answer lost, paid", "HBB", 10_096, SUCCEEDED),
    Scenario("98", "98 never notified", "HBB", 10_098, SUCCEEDED, leaves=Leaves.CLOSES_TAB),
    Scenario("99", "99 notified twice", "HBB", 10_099, Expected("succeeded", ("payment.succeeded",), True, 2)),
)
REFUND_OF = "hbb"
REFUND = Scenario("refund", "partial refund (HBB)", "HBB", 3_000,
                  Expected("succeeded", ("refund.succeeded",), money_moves=True))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tracked:
    scenario: Scenario
    subject_id: str  # the payment id, or the refund id for the refund row
    payer_saw: str = ""

    @property
    def is_refund(self) -> bool:
        return self.scenario.key == REFUND.key


@dataclass(frozen=True, slots=True)
class Observation:
    status: str
    detail: str
    webhooks: tuple[str, ...]
    bank_moved_minor: int
    notices_delivered: int
    notices_withheld: int

    def bank_record(self, direction: str) -> str:
        """E.g. "¥123.45 in · 1 notice": what moved on our reserve there, and what the bank notified."""
        moved = f"{yuan(self.bank_moved_minor)} {direction}" if self.bank_moved_minor else "nothing moved"
        notices = f"{self.notices_delivered} notice{'s' if self.notices_delivered != 1 else ''}"
        if self.notices_withheld:
            notices = f"{notices}, {self.notices_withheld} withheld" if self.notices_delivered else "notice withheld"
        return f"{moved} · {notices}"


def yuan(amount_minor: int) -> str:
    # The sign goes in front: floor division would print -133378 fen as "¥-1,334.22".
    sign = "-" if amount_minor < 0 else ""
    return f"{sign}¥{abs(amount_minor) // 100:,}.{abs(amount_minor) % 100:02d}"


def is_as_expected(tracked: Tracked, seen: Observation) -> bool:
    expected = tracked.scenario.expected
    return (
        seen.status == expected.status
        and seen.webhooks == expected.webhooks
        and seen.notices_delivered >= expected.notices_at_least
    )


def row_passes(tracked: Tracked, seen: Observation) -> bool:
    return is_as_expected(tracked, seen) and agrees_with_bank(tracked, seen)


def agrees_with_bank(tracked: Tracked, seen: Observation) -> bool:
    """The platform says succeeded exactly when the bank moved the whole amount, and never half."""
    amount = tracked.scenario.amount_minor
    if seen.bank_moved_minor not in (0, amount):
        return False
    return (seen.status == "succeeded") == (seen.bank_moved_minor == amount)


# ---- the running instance -------------------------------------------------------------------------------


@dataclass
class Instance:
    data_dir: Path
    summary: dict[str, Any]
    container: Container
    site: MerchantSite
    client: TianpayClient
    reserves: dict[str, str] = field(default_factory=dict)
    # What the next day's act needs to stop and restart the worker and to move the platform's clock.
    supervisor: Supervisor | None = None
    child_env: dict[str, str] = field(default_factory=dict)
    clock_file: Path | None = None

    @property
    def bank_urls(self) -> dict[str, str]:
        return {code: url for code, url in self.summary["banks"].items() if code in BANKS}

    def bank_state(self, bank: str) -> dict[str, Any]:
        response = httpx.get(self.bank_urls[bank] + "/_sim/state", timeout=10.0)
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    def bank_states(self) -> dict[str, dict[str, Any]]:
        return {bank: self.bank_state(bank) for bank in self.bank_urls}

    def ledger_balance(self, code: str) -> int:
        with self.container.uow() as uow:
            try:
                return uow.ledger.balance(code).minor
            except NotFound:
                return 0


def import_sdk() -> None:
    """Makes ``tianpay_sdk`` importable: installed, or next to this package in a source checkout.

    The SDK is the merchant's package, installed separately; the demo plays a merchant, so on a
    checkout installed with only ``pip install -e .`` it uses the SDK's sources beside it.
    """
    try:
        import tianpay_sdk  # noqa: F401
    except ImportError:
        beside = Path(__file__).resolve().parents[3] / "sdk" / "python" / "src"
        if not (beside / "tianpay_sdk").is_dir():
            raise DemoError("the merchant SDK is missing: pip install -e ./sdk/python") from None
        sys.path.append(str(beside))


def sdk_client(summary: dict[str, Any]) -> TianpayClient:
    from tianpay_sdk import TianpayClient

    merchant = summary["merchant"]
    key = httpx.get(summary["api"] + "/v1/platform-keys", timeout=10.0).json()["data"][0]
    return TianpayClient(
        summary["api"],
        merchant["merchant_id"],
        merchant["key_id"],
        Path(merchant["private_key_path"]).read_bytes(),
        platform_public_key=key["public_key_pem"],
        platform_key_id=key["key_id"],
    )


@contextmanager
def running_instance(data_dir: Path, port: int, console: Console) -> Iterator[Instance]:
    """Everything up (processes, merchant site, SDK client); all of it stopped on the way out."""
    # The demo's own reads of the database must see the same settings as its children.
    clock_file = data_dir.resolve() / PLATFORM_CLOCK_FILE
    if clock_file.exists():
        # The next day's act left this world a day or two ahead of the merchant's real clock, and its
        # closed dates cannot take new traffic; a tour must start from today.
        raise DemoError(f"{data_dir} was moved to a later day by an earlier tour; use a new data directory")
    child_env = {**DEMO_ENV, "TIANPAY_CLOCK_FILE": str(clock_file)}
    os.environ.update(child_env)
    import_sdk()
    with ExitStack() as stack:
        log = stack.enter_context((data_dir / "demo-processes.log").open("a", encoding="utf-8"))
        with console.status("starting the banks, the API server and the worker…"):
            supervisor, summary = bring_up(data_dir=data_dir, host="127.0.0.1", port=port, env=child_env, output=log)
        stack.callback(_stop, supervisor, console)
        container = build_container(Settings(data_dir=data_dir.resolve(), database_url=None, port=port))
        stack.callback(container.close)
        site = stack.enter_context(MerchantSite(summary["merchant"]["webhook_secret"]))
        set_webhook_url(container.uow, summary["merchant"]["merchant_id"], site.webhook_url)
        client = stack.enter_context(sdk_client(summary))
        worker_env = {"TIANPAY_DEV_SMS_OUTBOX": "true", **child_env}
        instance = Instance(data_dir, summary, container, site, client, supervisor=supervisor, child_env=worker_env,
                            clock_file=clock_file)  # fmt: skip
        instance.reserves = {bank: reserve_account(instance.bank_state(bank)) for bank in instance.bank_urls}
        console.print(
            f"[green]✓[/green] platform {summary['api']}, banks "
            + ", ".join(f"{code} {url}" for code, url in instance.bank_urls.items())
        )
        console.print(f"[green]✓[/green] merchant {summary['merchant']['merchant_id']} notifies {site.webhook_url}")
        yield instance


def _stop(supervisor: Supervisor, console: Console) -> None:
    with console.status("stopping every process…"):
        supervisor.stop()


def reserve_account(state: dict[str, Any]) -> str:
    accounts = [a["acc_no"] for a in state["accounts"] if a["kind"] == "reserve"]
    if len(accounts) != 1:
        raise DemoError(f"{state['bank']} shows {len(accounts)} reserve accounts")
    return str(accounts[0])


# ---- playing the merchant and the payer ---------------------------------------------------------------


def create_payment(instance: Instance, scenario: Scenario, run_tag: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "out_trade_no": f"demo-{run_tag}-{scenario.key}",
        "amount": scenario.amount_minor,
        "currency": "CNY",
        "method": "cashier",
        "subject": f"津门好物 · {scenario.title}",
        "return_url": instance.site.return_url(scenario.key),
    }
    if scenario.short_expiry:
        params["expires_at"] = (datetime.now(UTC) + timedelta(seconds=SHORT_EXPIRY_S)).isoformat()
    payment: dict[str, Any] = instance.client.payments.create(**params)
    return payment


def play(instance: Instance, scenario: Scenario, run_tag: str) -> Tracked:
    payment = create_payment(instance, scenario, run_tag)
    if scenario.bank is None:
        return Tracked(scenario, payment["id"], "never opened the cashier")
    with Payer(timeout_s=HANG_S + 10) as payer:
        saw = payer.pay(payment["cashier_url"], scenario.bank, scenario.leaves)
    return Tracked(scenario, payment["id"], saw)


def refund(instance: Instance, paid: Tracked, run_tag: str) -> Tracked:
    wait_for(lambda: instance.client.payments.retrieve(paid.subject_id)["status"] == "succeeded",
             timeout_s=20.0, what="the HBB payment to succeed before its refund")  # fmt: skip
    created = instance.client.refunds.create(
        paid.subject_id, out_refund_no=f"demo-{run_tag}-refund", amount=REFUND.amount_minor, reason="demo"
    )
    return Tracked(REFUND, str(created["id"]), "")


def wait_for(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


# ---- observing what happened -----------------------------------------------------------------------------


def observe(instance: Instance, tracked: Tracked, states: dict[str, dict[str, Any]]) -> Observation:
    if tracked.is_refund:
        record = instance.client.refunds.retrieve(tracked.subject_id)
        status, detail, refs = str(record["status"]), "", [tracked.subject_id]
    else:
        record = instance.client.payments.retrieve(tracked.subject_id)
        attempts = record.get("attempts", [])
        status, detail = str(record["status"]), attempt_note(str(record["status"]), attempts)
        refs = [a["id"] for a in attempts]
    webhooks = tuple(str(event["type"]) for event in instance.site.events_about(tracked.subject_id))
    bank = tracked.scenario.bank or ""
    state = states.get(bank, {"transfers": [], "notifications": []})
    # Each bank names its movements its own way; the direction against our reserve is what counts.
    side = "debit_acc" if tracked.is_refund else "credit_acc"
    reserve = instance.reserves.get(bank)
    transfers = [t for t in state["transfers"] if t[side] == reserve and _mentions(t["memo"], refs)]
    bank_refs = [t["bank_ref"] for t in transfers]
    notices = [n for n in state["notifications"] if any(ref in n["event_ref"] for ref in bank_refs)]
    return Observation(
        status=status,
        detail=detail,
        webhooks=webhooks,
        bank_moved_minor=sum(int(t["amount_minor"]) for t in transfers),
        notices_delivered=sum(1 for n in notices if n["status"] == "delivered"),
        notices_withheld=sum(1 for n in notices if n["status"] == "suppressed"),
    )


def _mentions(memo: str, platform_ids: list[str]) -> bool:
    # Banks write our order number into the memo, HBB without the id's underscore (ACP allows no "_").
    flat = memo.replace("_", "")
    return any(platform_id.replace("_", "") in flat for platform_id in platform_ids)


def attempt_note(status: str, attempts: list[dict[str, Any]]) -> str:
    """Why a payment is where it is, when its status alone does not say (a failed or missing attempt)."""
    if status == "succeeded":
        return ""
    if not attempts:
        return "no attempt"
    last = attempts[-1]
    code = f" {last['failure_code']}" if last.get("failure_code") else ""
    return f"attempt {last['status']}{code}"


def settle(instance: Instance, tracked: list[Tracked], timeout_s: float, console: Console) -> dict[str, Observation]:
    """Polls until every row is as expected or time is up; returns the last observations."""
    deadline = time.monotonic() + timeout_s
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("waiting for notifications, queries and expiry", total=len(tracked))
        while True:
            states = instance.bank_states()
            seen = {t.subject_id: observe(instance, t, states) for t in tracked}
            pending = [t.scenario.key for t in tracked if not is_as_expected(t, seen[t.subject_id])]
            progress.update(task, completed=len(tracked) - len(pending),
                            description=f"waiting for: {', '.join(pending) or 'nothing'}")  # fmt: skip
            if not pending or time.monotonic() > deadline:
                return seen
            time.sleep(POLL_INTERVAL_S)


# ---- the report ---------------------------------------------------------------------------------------------


def outcome_table(tracked: list[Tracked], seen: dict[str, Observation]) -> Table:
    table = Table(title="Gateway mode, end to end", title_justify="left")
    for name in ("scenario", "amount", "bank", "expected", "platform", "webhooks received", "bank's record", "ok"):
        table.add_column(name, justify="right" if name == "amount" else "left", no_wrap=True)
    for row in tracked:
        observed = seen[row.subject_id]
        passed = row_passes(row, observed)
        platform = observed.status + (f" ({observed.detail})" if observed.detail else "")
        table.add_row(
            row.scenario.title,
            yuan(row.scenario.amount_minor),
            row.scenario.bank or "—",
            row.scenario.expected.describe(),
            platform,
            ", ".join(observed.webhooks) or "none",
            observed.bank_record("out" if row.is_refund else "in"),
            "[green]✓[/green]" if passed else "[red]✗[/red]",
        )
    return table


@dataclass(frozen=True, slots=True)
class BookCheck:
    bank: str
    bank_reserve_delta_minor: int
    ledger_reserve_delta_minor: int

    @property
    def agrees(self) -> bool:
        return self.bank_reserve_delta_minor == self.ledger_reserve_delta_minor


def reserve_balances(instance: Instance) -> dict[str, tuple[int, int]]:
    """Per bank: (the reserve's balance in the bank's books, ``bank:B:reserve`` in our ledger)."""
    found: dict[str, tuple[int, int]] = {}
    for bank, state in instance.bank_states().items():
        account = next(a for a in state["accounts"] if a["acc_no"] == instance.reserves[bank])
        found[bank] = (int(account["balance_minor"]), instance.ledger_balance(f"bank:{bank}:reserve"))
    return found


def books_checks(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[BookCheck]:
    return [
        BookCheck(bank, after[bank][0] - before[bank][0], after[bank][1] - before[bank][1]) for bank in sorted(after)
    ]


def books_table(checks: list[BookCheck]) -> Table:
    table = Table(title="Bank books against the ledger (this run)", title_justify="left")
    for name in ("bank", "reserve moved at the bank", "bank:B:reserve postings", "ok"):
        table.add_column(name, no_wrap=True)
    for check in checks:
        table.add_row(
            check.bank,
            yuan(check.bank_reserve_delta_minor),
            yuan(check.ledger_reserve_delta_minor),
            "[green]✓[/green]" if check.agrees else "[red]✗[/red]",
        )
    return table


# ---- the command -----------------------------------------------------------------------------------------------


def run_demo(*, data_dir: Path | None, keep: bool, port: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
    """Runs the tour; returns 0 when every outcome, the ledger and the bank books agree, else 1."""
    # Wide enough for the table when the output is a pipe or a file; no emoji codes (":B:" is one).
    console = Console(width=None if sys.stdout.isatty() else 160, highlight=False, emoji=False)
    started = time.monotonic()
    # Ctrl-C (and SIGTERM) stop the tour and its processes through KeyboardInterrupt, even when the
    # demo was started with SIGINT ignored, which Python would otherwise keep (docs/deploy.md).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    directory = data_dir or Path(tempfile.mkdtemp(prefix="tianpay-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    passed = False
    try:
        with running_instance(directory, port or free_port_block(), console) as instance:
            passed = tour(instance, console, timeout_s)
    except (DemoError, ClearingDayError, PayerStuck, TerminalError, RuntimeError, httpx.HTTPError, OSError) as error:
        # Could not run (a process did not start, a page was not what a payer expects): say what,
        # and keep the data directory with the processes' logs for a look.
        console.print(f"[red]demo stopped[/red]: {type(error).__name__}: {error}")
    finally:
        elapsed = time.monotonic() - started
        if keep or not passed:
            console.print(f"data kept in {directory} (process logs: {directory / 'demo-processes.log'})")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    verdict = "[green]every outcome is what the bank did[/green]" if passed else "[red]disagreement found[/red]"
    console.print(f"demo finished in {elapsed:.0f}s: {verdict}")
    return 0 if passed else 1


def tour(instance: Instance, console: Console, timeout_s: float) -> bool:
    run_tag = datetime.now(UTC).strftime("%H%M%S")
    before = reserve_balances(instance)
    tracked = play_all(instance, console, run_tag)
    # Account mode runs while the gateway rows wait for their expiry minute, so it adds little time.
    with console.status("account mode…"):
        steps = play_account_mode(instance, run_tag, lambda line: console.print(f"  {line}"))
    # Direct debit (the same member's JHB card) and POS acquiring, still inside that minute.
    with console.status("direct debit and POS acquiring…"):
        member_id = member_of_binding(instance, steps[0])
        acquiring = play_direct_debit(instance, member_id, run_tag, lambda line: console.print(f"  {line}"))
        acquiring += play_pos(instance, lambda line: console.print(f"  {line}"))
    seen = settle(instance, tracked, timeout_s, console)
    console.print(outcome_table(tracked, seen))
    outcomes_ok = all(row_passes(t, seen[t.subject_id]) for t in tracked)
    account_seen = settle_account(instance, steps)
    console.print(account_table(steps, account_seen))
    outcomes_ok = outcomes_ok and all(account_seen[s.subject_id].agrees(s) for s in steps)
    acquiring_seen = settle_acquiring(acquiring)
    for table in acquiring_tables(acquiring, acquiring_seen):
        console.print(table)
    outcomes_ok = outcomes_ok and all(seen.ok for seen in acquiring_seen)
    # The next day: statements reconciled, the day settled and paid out (demo_clearing.py).
    with console.status("the next day: reconciliation, settlement and payout…"):
        day = play_clearing_day(instance, lambda line: console.print(f"  {line}"))
    for table in clearing_tables(day):
        console.print(table)
    for trouble in day.problems:
        console.print(f"[red]✗[/red] {trouble}")
    outcomes_ok = outcomes_ok and day.ok
    report = verify_ledger(instance.container.uow)
    if report.is_sound:
        console.print(f"[green]✓[/green] tianpay ledger verify: sound — {report.accounts} accounts, "
                      f"{report.entries} entries, {report.postings} postings")  # fmt: skip
    else:
        problem = report.problem
        assert problem is not None
        console.print(f"[red]✗[/red] tianpay ledger verify: {problem.invariant} fails at {problem.subject}")
    checks = books_checks(before, reserve_balances(instance))
    console.print(books_table(checks))
    unverified = instance.site.unverified_count()
    if unverified:
        console.print(f"[red]✗[/red] {unverified} notification(s) failed standardwebhooks verification")
    return outcomes_ok and report.is_sound and all(c.agrees for c in checks) and unverified == 0


def play_all(instance: Instance, console: Console, run_tag: str) -> list[Tracked]:
    tracked: list[Tracked] = []
    with console.status("paying…") as status:
        for scenario in SCENARIOS:
            status.update(f"paying: {scenario.title} ({yuan(scenario.amount_minor)})")
            done = play(instance, scenario, run_tag)
            tracked.append(done)
            console.print(f"  {scenario.title}: {done.payer_saw}")
            if scenario.key == REFUND_OF:
                tracked.append(refund(instance, done, run_tag))
                console.print(f"  {REFUND.title}: requested {yuan(REFUND.amount_minor)}")
    return tracked
