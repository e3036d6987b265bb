"""The ``tianpay`` command line: one CLI for every process and operator task.

The contract in DESIGN.md §2 is public (scripts and tests rely on it): ``--data-dir``, ``--port``,
``--json`` and ``TIANPAY_DATABASE_URL`` mean the same thing in every command.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.entrypoints.iso_dates import DATE_FORMAT, parse_iso_date
from tianpay.services.ledger import verify_ledger

if TYPE_CHECKING:
    from tianpay.entrypoints.pos_terminal import Terminal

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Tianpay payment platform")
db_app = typer.Typer(no_args_is_help=True, help="Database schema")
ledger_app = typer.Typer(no_args_is_help=True, help="The double-entry ledger")
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")

console = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="TIANPAY_DATA_DIR", help="Where the embedded database and keys live."),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print one JSON line for scripts.")]


def _iso_date(text: str) -> date:
    """A date option: YYYY-MM-DD only, as in the API (``20261127`` or a week date is refused, not guessed)."""
    parsed = parse_iso_date(text)
    if parsed is None:
        raise typer.BadParameter(DATE_FORMAT)
    return parsed


BusinessDate = Annotated[
    date, typer.Option("--date", parser=_iso_date, help="The business date (YYYY-MM-DD, Shanghai).")
]
DEFAULT_DATA_DIR = Path("tianpay-data")


def settings_for(data_dir: Path, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]


def open_container(data_dir: Path, *, upgrade: bool = True, **overrides: object) -> Container:
    container = build_container(settings_for(data_dir, **overrides))
    if upgrade:
        container.upgrade_database()
    return container


def emit_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Create or migrate the schema to the newest version (safe to run again)."""
    container = open_container(data_dir)
    console.print(f"database up to date: {container.engine.url.render_as_string(hide_password=True)}")
    container.close()


@ledger_app.command("verify")
def ledger_verify(data_dir: DataDir = DEFAULT_DATA_DIR, as_json: JsonOutput = False) -> None:
    """Check every ledger invariant; exit 1 naming the first one broken."""
    container = open_container(data_dir, upgrade=False)
    report = verify_ledger(container.uow)
    container.close()
    problem = report.problem
    if as_json:
        emit_json(
            {
                "ok": problem is None,
                "accounts": report.accounts,
                "entries": report.entries,
                "postings": report.postings,
                "problem": None
                if problem is None
                else {"invariant": problem.invariant, "subject": problem.subject, "detail": problem.detail},
            }
        )
    elif problem is None:
        console.print(
            f"[green]ledger sound[/green]: {report.accounts} accounts, {report.entries} entries, "
            f"{report.postings} postings; every entry balances, stored balances match, no wallet negative"
        )
    else:
        console.print(f"[red]ledger broken[/red]: {problem.invariant} fails at {problem.subject}: {problem.detail}")
    raise typer.Exit(0 if problem is None else 1)


@app.command("worker")
def worker_command(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    once: Annotated[bool, typer.Option("--once", help="Run every job once, then exit.")] = False,
    worker_id: Annotated[
        str | None, typer.Option("--worker-id", help="Name in job leases and logs (default host:pid).")
    ] = None,
) -> None:
    """Run the background jobs: merchant webhook delivery with retries, and more to come."""
    # Imported here so commands that never start a worker do not load its HTTP client.
    from tianpay.adapters.logging import configure_logging
    from tianpay.entrypoints.worker import build_worker, run_until_signalled

    container = open_container(data_dir)
    configure_logging(container.settings.log_level, json=container.settings.log_json)
    worker = build_worker(container, worker_id=worker_id)
    try:
        if once:
            done = worker.run_once()
            console.print("worker tick: " + ", ".join(f"{name}={count}" for name, count in done.items()))
        else:
            run_until_signalled(worker)
    finally:
        worker.close()
        container.close()


merchant_app = typer.Typer(no_args_is_help=True, help="Merchants and their API keys")
app.add_typer(merchant_app, name="merchant")


@merchant_app.command("create")
def merchant_create(
    name: Annotated[str, typer.Option("--name", help="The merchant's display name.")],
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="PEM public key the merchant signs with (RSA, ed25519 or P-256)."),
    ] = None,
    use_hmac: Annotated[bool, typer.Option("--hmac", help="Issue an hmac-sha256 shared secret instead.")] = False,
    webhook_url: Annotated[str | None, typer.Option("--webhook-url", help="Where notifications go.")] = None,
    fee_bps: Annotated[int, typer.Option("--fee-bps", help="Fee rate for every payment method.")] = 60,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: JsonOutput = False,
) -> None:
    """Create a merchant with its ledger accounts, a fee plan and a signing key.

    Without --public-key or --hmac the platform generates an RSA-2048 pair and writes the private
    key (mode 0600) under <data-dir>/merchants/<merchant_id>/; only the public key is kept.
    """
    from tianpay.domain.errors import DomainError
    from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant

    if public_key is not None and use_hmac:
        raise typer.BadParameter("choose --public-key or --hmac, not both")
    public_key_pem = public_key.read_bytes() if public_key is not None else None
    container = open_container(data_dir)
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    try:
        created = create_merchant(
            container.uow,
            tools,
            NewMerchant(name, KeyRequest(public_key_pem, use_hmac), webhook_url, fee_bps),
        )
    except DomainError as exc:
        console.print(f"[red]refused[/red]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        container.close()
    key = created.key
    path = str(key.private_key_path) if key.private_key_path is not None else None
    if as_json:
        payload: dict[str, object] = {
            "merchant_id": created.merchant_id,
            "key_id": key.key_id,
            "private_key_path": path,
            "webhook_secret": created.webhook_secret,
        }
        if key.hmac_secret is not None:
            payload["hmac_secret"] = key.hmac_secret.hex()
        emit_json(payload)
        return
    console.print(f"merchant [bold]{created.merchant_id}[/bold] created; key {key.key_id} ({key.algorithm.value})")
    if path is not None:
        console.print(f"private key written to {path} (mode 0600): hand it to the merchant, then delete it")
    if key.hmac_secret is not None:
        console.print(f"hmac secret (hex, shown once): {key.hmac_secret.hex()}")
    console.print(f"webhook secret (shown once): {created.webhook_secret}")


@merchant_app.command("update")
def merchant_update(
    merchant_id: Annotated[str, typer.Option("--merchant", help="The merchant id (mch_…).")],
    webhook_url: Annotated[str, typer.Option("--webhook-url", help="Where notifications go from now on.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: JsonOutput = False,
) -> None:
    """Change a merchant's webhook URL; events still waiting in the outbox go to the new one."""
    from tianpay.domain.errors import DomainError
    from tianpay.services.merchants import set_webhook_url

    container = open_container(data_dir)
    try:
        set_webhook_url(container.uow, merchant_id, webhook_url)
    except DomainError as exc:
        console.print(f"[red]refused[/red]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        container.close()
    if as_json:
        emit_json({"merchant_id": merchant_id, "webhook_url": webhook_url})
    else:
        console.print(f"merchant [bold]{merchant_id}[/bold] now notifies {webhook_url}")


@merchant_app.command("rotate-key")
def merchant_rotate_key(
    merchant_id: Annotated[str, typer.Option("--merchant", help="The merchant id (mch_…).")],
    public_key: Annotated[Path | None, typer.Option("--public-key", help="The new PEM public key.")] = None,
    use_hmac: Annotated[bool, typer.Option("--hmac", help="Issue an hmac-sha256 secret instead.")] = False,
    overlap_s: Annotated[int, typer.Option("--overlap-s", help="How long the old keys stay valid.")] = 86_400,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: JsonOutput = False,
) -> None:
    """Issue a new key; the merchant's current keys stay valid for --overlap-s more seconds."""
    from datetime import timedelta

    from tianpay.domain.errors import DomainError
    from tianpay.services.merchants import KeyRequest, KeyTools, rotate_key

    public_key_pem = public_key.read_bytes() if public_key is not None else None
    container = open_container(data_dir)
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    try:
        rotation = rotate_key(
            container.uow,
            tools,
            merchant_id,
            KeyRequest(public_key_pem, use_hmac),
            overlap=timedelta(seconds=overlap_s),
        )
    except DomainError as exc:
        console.print(f"[red]refused[/red]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        container.close()
    key = rotation.new_key
    payload: dict[str, object] = {
        "merchant_id": merchant_id,
        "key_id": key.key_id,
        "private_key_path": str(key.private_key_path) if key.private_key_path is not None else None,
        "retiring": [{"key_id": k, "expires_at": at} for k, at in rotation.retiring],
    }
    if key.hmac_secret is not None:
        payload["hmac_secret"] = key.hmac_secret.hex()
    if as_json:
        emit_json(payload)
    else:
        console.print_json(data=payload)


merchant_user_app = typer.Typer(no_args_is_help=True, help="Merchant portal logins (/merchant)")
merchant_app.add_typer(merchant_user_app, name="user")


@merchant_user_app.command("create")
def merchant_user_create(
    merchant_id: Annotated[str, typer.Option("--merchant", help="The merchant id (mch_…) the user belongs to.")],
    username: Annotated[str, typer.Option("--username", help="3–60 of a–z 0–9 . _ -")],
    password: Annotated[
        str | None, typer.Option("--password", help="At least 12 characters; generated (and shown once) if omitted.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: JsonOutput = False,
) -> None:
    """Create a merchant portal login; the password is stored only as an argon2id hash."""
    import secrets

    from tianpay.domain.errors import DomainError
    from tianpay.entrypoints.merchant_portal.routes import portal_tools
    from tianpay.services.merchant_users import create_user

    chosen = password if password is not None else secrets.token_urlsafe(12)
    container = open_container(data_dir)
    try:
        user = create_user(container.uow, portal_tools(container), merchant_id, username, chosen)
    except DomainError as exc:
        console.print(f"[red]refused[/red]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        container.close()
    if as_json:
        emit_json({"merchant_id": merchant_id, "user_id": user.id, "username": username, "password": chosen})
    else:
        console.print(f"portal user [bold]{username}[/bold] of {merchant_id} created; password (shown once): {chosen}")


@app.command("serve")
def serve(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
) -> None:
    """Run the HTTP server (merchant API and web front ends), after `db upgrade`."""
    import uvicorn

    from tianpay.adapters.logging import configure_logging
    from tianpay.entrypoints.api.app import create_app

    container = open_container(data_dir, host=host, port=port)
    configure_logging(container.settings.log_level, json=container.settings.log_json)
    # Created now rather than on the first request, so `tianpay up` can print the key at once.
    platform_key = container.platform_key
    console.print(f"platform response-signing key {platform_key.key_id} (GET /v1/platform-keys)")
    try:
        uvicorn.run(create_app(container), host=host, port=port, log_config=None, proxy_headers=False)
    finally:
        container.close()


operator_app = typer.Typer(no_args_is_help=True, help="The platform's staff accounts for the console")
app.add_typer(operator_app, name="operator")


@operator_app.command("create")
def operator_create(
    username: Annotated[str, typer.Option("--username", help="3–60 of a–z 0–9 . _ -")],
    role: Annotated[str, typer.Option("--role", help="admin, finance or support")] = "support",
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: JsonOutput = False,
) -> None:
    """Create an operator with a generated password, shown once."""
    import secrets

    from tianpay.domain.errors import DomainError
    from tianpay.domain.operator import Role
    from tianpay.services.operators import create_operator

    if role not in {r.value for r in Role}:
        raise typer.BadParameter("choose admin, finance or support", param_hint="--role")
    password = secrets.token_urlsafe(12)
    container = open_container(data_dir)
    try:
        create_operator(container.uow, container.clock, container.member_tools.hasher, username, password, Role(role))
    except DomainError as exc:
        console.print(f"[red]refused[/red]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        container.close()
    if as_json:
        emit_json({"username": username, "role": role, "password": password})
    else:
        console.print(f"operator [bold]{username}[/bold] ({role}) created; password (shown once): {password}")


@app.command("banks")
def banks_command(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    base_port: Annotated[int, typer.Option("--base-port", help="HBB's port; JHB +1, BCB +2, TCS +3.")] = 8001,
    as_json: JsonOutput = False,
) -> None:
    """Run the simulated banks (HBB, JHB, BCB, TCS), each on its own port, until Ctrl-C."""
    from tianpay.entrypoints.launcher import Supervisor, start_banks

    supervisor = Supervisor()
    # A Ctrl-C during start-up is remembered and honoured once the banks have announced themselves.
    supervisor.handle_signals()
    try:
        urls = start_banks(supervisor, data_dir, host, base_port)
    except BaseException:
        supervisor.stop()
        raise
    if as_json:
        emit_json(urls)
    else:
        for code, url in urls.items():
            console.print(f"{code:4} {url}   SMS outbox {url}/sms")
    raise typer.Exit(supervisor.wait_until_signalled())


@app.command("up")
def up_command(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The platform's port; banks take the next ones.")] = 8000,
    as_json: JsonOutput = False,
) -> None:
    """Start the platform, the worker and the simulated banks together, seeded with a demo merchant."""
    from tianpay.entrypoints.launcher import up

    raise typer.Exit(up(data_dir=data_dir, host=host, port=port, as_json=as_json))


@app.command("demo")
def demo_command(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Run in this directory instead of a new temporary one."),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the data directory afterwards.")] = False,
    port: Annotated[int, typer.Option("--port", help="The platform's port (0: any free block).")] = 0,
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="How long to wait for every outcome to settle.")
    ] = 150.0,
) -> None:
    """A scripted tour of gateway mode on a fresh instance, checked against the banks and the ledger."""
    from tianpay.entrypoints.demo import run_demo

    raise typer.Exit(run_demo(data_dir=data_dir, keep=keep, port=port, timeout_s=timeout_s))

terminal_app = typer.Typer(no_args_is_help=True, help="POS terminals")
app.add_typer(terminal_app, name="terminal")


@terminal_app.command("create")
def terminal_create(
    merchant: Annotated[str, typer.Option("--merchant", help="The merchant id the terminal belongs to.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: JsonOutput = False,
    save: Annotated[
        Path | None, typer.Option("--save", help="Write tid/mid/tmk to this file (mode 0600) for `tianpay pos`.")
    ] = None,
) -> None:
    """Create a POS terminal; its master key (TMK) is printed once, for key injection."""
    import secrets

    from tianpay.entrypoints.pos_terminal import TerminalState, save_terminal
    from tianpay.services.pos import create_terminal

    container = open_container(data_dir)
    try:
        tid = f"{secrets.randbelow(10**8):08d}"
        mid = f"898120{secrets.randbelow(10**9):09d}"
        tmk = secrets.token_bytes(16)
        sealed = container.vault.seal(tmk, context=f"terminal:{tid}:tmk")
        create_terminal(container.uow, container.clock, merchant_id=merchant, tid=tid, mid=mid, tmk_ciphertext=sealed)
        with container.uow() as uow:
            owner = uow.merchants.get(merchant)
        port = container.settings.port + 5  # pos-front's place under `tianpay up` (DESIGN.md §2)
    finally:
        container.close()
    if save is not None:
        state = TerminalState(tid, mid, tmk.hex().upper(), owner.name if owner else merchant, port=port)
        save_terminal(save, state)
    if as_json:
        emit_json({"tid": tid, "mid": mid, "tmk": tmk.hex().upper()})
    else:
        console.print(f"terminal {tid} (MID {mid}); inject this TMK now, it is not shown again: {tmk.hex().upper()}")


@app.command("pos-front")
def pos_front_command(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8005,
    timeout_s: Annotated[float, typer.Option("--switch-timeout-s", help="How long TCS may take to answer.")] = 5.0,
) -> None:
    """Serve POS terminals (ISO 8583 over TCP) and forward to the TCS card switch."""
    import asyncio

    from tianpay.channels.tcs.client import TcsClient
    from tianpay.channels.tcs.onboarding import load_tcs_config
    from tianpay.entrypoints.pos_front.server import PosFront, serve

    container = open_container(data_dir)
    config = load_tcs_config(data_dir, timeout_s=timeout_s)
    if config is None:
        console.print("TCS is not onboarded: POS requests will be answered 96")
    front = PosFront(
        container.uow, container.clock, container.ids, container.vault, None if config is None else TcsClient(config)
    )
    try:
        asyncio.run(serve(front, host, port, ready=lambda h, p: console.print(f"pos-front on {h}:{p}")))
    except KeyboardInterrupt:
        pass
    finally:
        container.close()



pos_app = typer.Typer(no_args_is_help=True, help="A POS terminal emulator (talks to `tianpay pos-front`)")
app.add_typer(pos_app, name="pos")
TerminalFile = Annotated[
    Path, typer.Option("--terminal", help="The terminal file from `tianpay terminal create --save`.")
]
PosHost = Annotated[str | None, typer.Option("--host", help="pos-front's host (default: the terminal file's).")]
PosPort = Annotated[int | None, typer.Option("--port", help="pos-front's port (default: the terminal file's).")]
Card = Annotated[str, typer.Option("--card", help="The card number (printed masked).")]
Pin = Annotated[str, typer.Option("--pin", prompt=True, hide_input=True, help="The cardholder's PIN.")]
DEFAULT_TERMINAL = Path("terminal.json")


def _terminal(path: Path, host: str | None, port: int | None) -> Terminal:
    from tianpay.entrypoints.pos_terminal import Terminal, TerminalError, load_terminal

    try:
        state = load_terminal(path)
    except TerminalError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if host:
        state.host = host
    if port:
        state.port = port
    return Terminal(state, path)


def _finish(answer: dict[str, str], text: str, as_json: bool, extra: dict[str, object] | None = None) -> None:
    ok = answer.get("39") == "00"
    if as_json:
        emit_json({"response_code": answer.get("39"), "stan": answer.get("11"), "rrn": answer.get("37"),
                   "auth_code": answer.get("38"), **(extra or {})})  # fmt: skip
    elif ok:
        typer.echo(text)
    else:
        console.print(f"[red]交易失败 declined: {answer.get('39')}[/red]")
    if not ok:
        raise typer.Exit(1)


def _run_pos(action: Callable[[], dict[str, str]]) -> dict[str, str]:
    from tianpay.entrypoints.pos_terminal import TerminalError

    try:
        return action()
    except (TerminalError, OSError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@pos_app.command("signon")
def pos_signon(
    terminal_file: TerminalFile = DEFAULT_TERMINAL, host: PosHost = None, port: PosPort = None,
    as_json: JsonOutput = False,
) -> None:
    """Sign on (0800): fetch fresh working keys PIK/MAK under the terminal's TMK."""
    terminal = _terminal(terminal_file, host, port)
    answer = _run_pos(terminal.sign_on)
    _finish(answer, f"签到成功 signed on: TID {terminal.state.tid}, batch {terminal.state.batch_no:06d}", as_json)


@pos_app.command("purchase")
def pos_purchase(
    amount: Annotated[str, typer.Option("--amount", help="Yuan, e.g. 12.34.")],
    card: Card,
    pin: Pin,
    terminal_file: TerminalFile = DEFAULT_TERMINAL, host: PosHost = None, port: PosPort = None,
    as_json: JsonOutput = False,
) -> None:
    """Purchase (消费, 0200 000000) and print the merchant copy of the receipt."""
    from tianpay.entrypoints.pos_terminal import TerminalError, parse_amount, receipt

    terminal = _terminal(terminal_file, host, port)
    try:
        minor = parse_amount(amount)
    except TerminalError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    answer = _run_pos(lambda: terminal.financial("purchase", card=card, pin=pin, amount_minor=minor))
    _finish(answer, receipt(terminal.state, "purchase", answer, card=card, amount_minor=minor), as_json,
            {"amount": minor})  # fmt: skip


@pos_app.command("void")
def pos_void(
    stan: Annotated[str, typer.Option("--stan", help="The purchase's STAN (凭证号) in this batch.")],
    card: Card,
    terminal_file: TerminalFile = DEFAULT_TERMINAL, host: PosHost = None, port: PosPort = None,
    as_json: JsonOutput = False,
) -> None:
    """Void (消费撤销) a purchase of the current batch, found by its STAN."""
    from tianpay.entrypoints.pos_terminal import TerminalError, receipt

    terminal = _terminal(terminal_file, host, port)
    try:
        original = terminal.find(stan.zfill(6))
    except TerminalError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    answer = _run_pos(lambda: terminal.financial(
        "void", card=card, pin=None, amount_minor=original.amount_minor, original=original))
    _finish(answer, receipt(terminal.state, "void", answer, card=card, amount_minor=original.amount_minor), as_json,
            {"amount": original.amount_minor})  # fmt: skip


@pos_app.command("balance")
def pos_balance(
    card: Card,
    pin: Pin,
    terminal_file: TerminalFile = DEFAULT_TERMINAL, host: PosHost = None, port: PosPort = None,
    as_json: JsonOutput = False,
) -> None:
    """Balance inquiry (余额查询): the card's available balance at its issuer."""
    from tianpay.domain.pos import mask_pan

    terminal = _terminal(terminal_file, host, port)
    answer = _run_pos(lambda: terminal.financial("balance", card=card, pin=pin))
    minor = int(answer.get("4", "0") or "0")
    _finish(answer, f"{mask_pan(card)} 余额 BALANCE: RMB {minor // 100}.{minor % 100:02d}", as_json,
            {"balance": minor})  # fmt: skip


@pos_app.command("settle")
def pos_settle(
    terminal_file: TerminalFile = DEFAULT_TERMINAL, host: PosHost = None, port: PosPort = None,
    as_json: JsonOutput = False,
) -> None:
    """Batch settlement (结算, 0500): the batch's totals against the host's; a new batch on success."""
    terminal = _terminal(terminal_file, host, port)
    batch = terminal.state.batch_no
    settled: list[tuple[int, int, int, int]] = []

    def run() -> dict[str, str]:
        answer, totals = terminal.settle()
        settled.append(totals)
        return answer

    answer = _run_pos(run)
    balanced = answer.get("48", "")[-1:] == "1"
    count, debit, voids, credit = settled[0]
    verdict = "对账平 balanced" if balanced else "对账不平 NOT balanced"
    text = (f"结算 SETTLEMENT batch {batch:06d}: 消费 {count} 笔 RMB {debit // 100}.{debit % 100:02d}, "
            f"撤销 {voids} 笔 RMB {credit // 100}.{credit % 100:02d} — {verdict}")  # fmt: skip
    _finish(answer, text, as_json, {"batch": batch, "balanced": balanced})
    if not balanced:
        raise typer.Exit(1)


# ---- settlement (docs/settlement.md) ------------------------------------------------------------------


@app.command("settle")
def settle_command(
    day: BusinessDate,
    merchant_id: Annotated[str | None, typer.Option("--merchant", help="Only this merchant (default: all).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: JsonOutput = False,
) -> None:
    """Settle a business date now: every bank's reconciliation of it must have finished (T+N aside)."""

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tianpay.domain.errors import DomainError
    from tianpay.services.settlement import ReconciliationUnfinished, SettleReport, settle_date

    container = open_container(data_dir)
    try:
        required = container.channels.statement_banks()
        with Progress(TextColumn("settling {task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console, disable=as_json, transient=True) as bar:  # fmt: skip
            task = bar.add_task(day.isoformat(), total=None)

            def advance(done: int, total: int, merchant: str) -> None:
                bar.update(task, completed=done, total=total, description=f"{day.isoformat()} {merchant}")

            report: SettleReport = settle_date(
                container.uow, container.clock, business_date=day, required_banks=required,
                merchant_id=merchant_id, progress=advance,
            )  # fmt: skip
    except ReconciliationUnfinished as exc:
        if as_json:
            emit_json({"ok": False, "error": exc.code, "message": exc.message, "banks": list(exc.banks)})
        else:
            console.print(f"[red]refused[/red]: {exc.message}; run `tianpay reconcile` for "
                          f"{', '.join(exc.banks)} first")  # fmt: skip
        raise typer.Exit(2) from None
    except DomainError as exc:
        if as_json:
            emit_json({"ok": False, "error": exc.code, "message": exc.message})
        else:
            console.print(f"[red]refused[/red]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        container.close()
    _print_settlements(report, as_json)


def _print_settlements(report: object, as_json: bool) -> None:
    from rich.table import Table

    from tianpay.services.settlement import SettleReport, settlement_view

    assert isinstance(report, SettleReport)
    if as_json:
        emit_json(
            {
                "ok": True,
                "business_date": report.business_date.isoformat(),
                "settlements": [
                    {**settlement_view(outcome.settlement), "created": outcome.created}
                    for outcome in report.outcomes
                    if outcome.settlement is not None
                ],
            }
        )
        return
    table = Table(title=f"settlements of {report.business_date.isoformat()}")
    for column in ("merchant", "settlement", "status", "lines", "gross", "refunds", "fees", "net", ""):
        table.add_column(column, justify="right" if column in ("lines", "gross", "refunds", "fees", "net") else "left")
    for outcome in report.outcomes:
        found = outcome.settlement
        if found is None:
            table.add_row(outcome.merchant_id, "—", "nothing to settle", "0", "", "", "", "", "")
            continue
        t = found.totals
        table.add_row(found.merchant_id, found.id, found.status.value, str(t.count), _yuan(t.gross_minor),
                      _yuan(t.refunds_minor), _yuan(t.fees_minor), _yuan(t.net_minor),
                      "new" if outcome.created else "already settled")  # fmt: skip
    console.print(table)


def _yuan(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}¥{abs(minor) // 100:,}.{abs(minor) % 100:02d}"


@merchant_app.command("settlement")
def merchant_settlement(
    merchant_id: Annotated[str, typer.Option("--merchant", help="The merchant id (mch_…).")],
    cycle_days: Annotated[int | None, typer.Option("--cycle-days", help="T+N: settle a date N days later.")] = None,
    minimum_payout_minor: Annotated[
        int | None, typer.Option("--minimum-payout-minor", help="Pay out automatically from this many fen.")
    ] = None,
    auto_payout: Annotated[
        bool | None, typer.Option("--auto-payout/--no-auto-payout", help="Pay each settlement out by itself.")
    ] = None,
    account_bank: Annotated[str | None, typer.Option("--account-bank", help="HBB, JHB or BCB.")] = None,
    account_no: Annotated[str | None, typer.Option("--account-no", help="The settlement account number.")] = None,
    account_name: Annotated[str | None, typer.Option("--account-name", help="The account holder's name.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: JsonOutput = False,
) -> None:
    """Show or change how a merchant is settled: T+N, minimum payout, automatic payout, account."""
    from tianpay.domain.errors import DomainError
    from tianpay.services.settlement import (
        AccountInput,
        SettingsChange,
        change_settlement_settings,
        settings_view,
        settlement_settings,
    )

    account_parts = (account_bank, account_no, account_name)
    if any(part is not None for part in account_parts) and not all(part is not None for part in account_parts):
        raise typer.BadParameter("give --account-bank, --account-no and --account-name together")
    account = None
    if account_bank is not None and account_no is not None and account_name is not None:
        account = AccountInput(account_bank, account_no, account_name)
    change = SettingsChange(cycle_days, minimum_payout_minor, auto_payout, account)
    container = open_container(data_dir)
    try:
        if change == SettingsChange():
            settings = settlement_settings(container.uow, container.clock, merchant_id)
        else:
            settings = change_settlement_settings(
                container.uow, container.clock, container.member_tools.cipher, merchant_id, change
            )
    except DomainError as exc:
        if as_json:
            emit_json({"ok": False, "error": exc.code, "message": exc.message, "param": exc.param})
        else:
            console.print(f"[red]refused[/red]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        container.close()
    view = settings_view(settings)
    if as_json:
        emit_json(view)
        return
    account_view = view["account"]
    shown = "none" if not isinstance(account_view, dict) else (
        f"{account_view['bank']} {account_view['account_no']} {account_view['name']}")  # fmt: skip
    console.print(
        f"merchant [bold]{merchant_id}[/bold]: T+{settings.cycle_days}, minimum payout "
        f"{_yuan(settings.minimum_payout_minor)}, auto payout {'on' if settings.auto_payout else 'off'}, "
        f"account {shown}"
    )


# ---- statistics (docs/statistics.md) ------------------------------------------------------------------

stats_app = typer.Typer(no_args_is_help=True, help="Daily payment statistics (the aggregates)")
app.add_typer(stats_app, name="stats")
DateFrom = Annotated[
    date | None, typer.Option("--from", parser=_iso_date, help="First business date, YYYY-MM-DD (Shanghai).")
]
DateTo = Annotated[
    date | None, typer.Option("--to", parser=_iso_date, help="Last business date, included (default: today).")
]


@stats_app.command("rebuild")
def stats_rebuild(
    first: DateFrom = None, last: DateTo = None, data_dir: DataDir = DEFAULT_DATA_DIR, as_json: JsonOutput = False
) -> None:
    """Recompute the stored daily figures of a date range (default: everything) from the payments."""

    from tianpay.domain.errors import DomainError
    from tianpay.domain.statistics import business_date_of
    from tianpay.services.statistics import rebuild_statistics

    container = open_container(data_dir)
    try:
        today = business_date_of(container.clock.now())
        with console.status("rebuilding the daily statistics", spinner="dots"):
            rows = rebuild_statistics(container.uow, first, last, today)
    except DomainError as exc:
        if as_json:
            emit_json({"ok": False, "error": exc.code, "message": exc.message})
        else:
            console.print(f"[red]refused[/red]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        container.close()
    if as_json:
        emit_json({"ok": True, "rows": rows})
    else:
        console.print(f"rebuilt: {rows} rows of daily figures")


@stats_app.command("verify")
def stats_verify(
    first: DateFrom = None, last: DateTo = None, data_dir: DataDir = DEFAULT_DATA_DIR, as_json: JsonOutput = False
) -> None:
    """Compare the stored daily figures with a full scan (default: the last 31 days); exit 1 on a difference."""
    from datetime import timedelta

    from tianpay.domain.statistics import business_date_of
    from tianpay.services.statistics import verify_statistics

    container = open_container(data_dir)
    try:
        end = business_date_of(container.clock.now()) if last is None else last
        start = end - timedelta(days=30) if first is None else first
        differences = verify_statistics(container.uow, start, end)
    finally:
        container.close()
    if as_json:
        emit_json({"ok": not differences, "differences": [str(d.key) for d in differences]})
    else:
        for difference in differences:
            console.print(f"[red]differs[/red]: {difference.key}: stored {difference.stored}, "
                          f"scanned {difference.scanned}")
        console.print("statistics match a full scan" if not differences else f"{len(differences)} rows differ")
    raise typer.Exit(0 if not differences else 1)

# ---- reconciliation (docs/reconciliation.md) ---------------------------------------------------------


@app.command("reconcile")
def reconcile_command(
    bank: Annotated[str, typer.Option("--bank", help="The bank whose statement to reconcile (HBB, JHB, BCB, TCS).")],
    day: BusinessDate,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: JsonOutput = False,
) -> None:
    """Download, import and reconcile one bank's statement of one date; rerunning it changes nothing."""

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tianpay.domain.errors import DomainError
    from tianpay.entrypoints.reconciliation_wiring import reconciliation_policy
    from tianpay.entrypoints.worker import default_worker_id
    from tianpay.services.reconciliation import RunReport, reconcile

    container = open_container(data_dir)
    try:
        with Progress(TextColumn("reconciling {task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console, disable=as_json or not console.is_terminal, transient=True) as bar:  # fmt: skip
            task = bar.add_task(f"{bank} {day.isoformat()}", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report: RunReport = reconcile(
                container.uow, container.clock, container.ids, container.channels, bank.upper(), day,
                policy=reconciliation_policy(container), worker_id=f"cli:{default_worker_id()}", progress=advance,
            )  # fmt: skip
    except DomainError as exc:
        if as_json:
            emit_json({"ok": False, "error": exc.code, "message": exc.message})
        else:
            console.print(f"[red]refused[/red]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        container.close()
    _print_reconciliation(report, as_json)
    raise typer.Exit(0 if report.is_finished else 1)


def _print_reconciliation(report: object, as_json: bool) -> None:
    from tianpay.services.reconciliation import RunReport

    assert isinstance(report, RunReport)
    summary = dict(report.summary)
    if as_json:
        emit_json({"ok": report.is_finished, "bank": report.bank, "business_date": report.business_date.isoformat(),
                   "status": report.status, "run_id": report.run_id, "detail": report.detail, **summary})  # fmt: skip
        return
    head = f"{report.bank} {report.business_date.isoformat()}: {report.status.replace('_', ' ')}"
    if not report.is_finished:
        console.print(f"[yellow]{head}[/yellow]" + (f" ({report.detail})" if report.detail else ""))
        return
    console.print(f"[green]{head}[/green]")
    console.print(
        f"  {summary.get('lines', 0)} lines: {summary.get('matched', 0)} matched, "
        f"{summary.get('matched_cross_day', 0)} matched across days, {summary.get('made_good', 0)} made good, "
        f"{summary.get('parked', 0)} parked, {summary.get('exceptions', 0)} exceptions; "
        f"charges booked {_yuan(summary.get('charges_minor', 0))}, "
        f"suspense {_yuan(summary.get('suspense_minor', 0))}"
    )


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (DESIGN.md §13)")
app.add_typer(bench_app, name="bench")


@bench_app.command("recon")
def bench_recon_command(
    lines: Annotated[
        int, typer.Option("--lines", min=1, help="Statement lines (and platform records) to seed.")
    ] = 1_000_000,
    as_json: JsonOutput = False,
) -> None:
    """Reconcile an N-line HBB statement in a fresh database: seconds and peak memory of import + reconcile."""
    from tianpay.entrypoints.bench_recon import run_bench

    result = run_bench(lines, log=None if as_json else console.print)
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"reconciled {result['lines']} lines ({result['matched']} matched) on {result['database']} in "
            f"{result['seconds']:.2f} s (import {result['import_seconds']:.2f} s), "
            f"peak RSS {result['peak_rss_mb']:.0f} MB, {result['cpu_seconds']:.2f} s of CPU; "
            f"seeding took {result['seed_seconds']:.2f} s"
        )
    raise typer.Exit(0 if result["matched"] == result["lines"] else 1)



@bench_app.command("payments")
def bench_payments_command(
    seconds: Annotated[float, typer.Option("--seconds", min=1, help="Measured time of each half.")] = 20,
    clients: Annotated[int, typer.Option("--clients", min=1, help="Concurrent signed clients.")] = 64,
    serve_workers: Annotated[
        int | None, typer.Option("--serve-workers", min=1, help="`serve` processes (default: one per core).")
    ] = None,
    cheap_passwords: Annotated[
        bool, typer.Option("--cheap-passwords", help="Seed payment passwords with the tests' cheap argon2id.")
    ] = False,
    pgbench_scale: Annotated[
        int | None, typer.Option("--pgbench-scale", min=1, help="pgbench -s (default: the client count).")
    ] = None,
    merchants: Annotated[int, typer.Option("--merchants", min=1, help="Merchants the clients pay in turn.")] = 1,
    profile: Annotated[
        Path | None, typer.Option("--profile", help="Write py-spy's raw stacks of the first `serve` here.")
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Wallet payments per second and POST /v1/payments p50/p99 through `serve`, and pgbench TPC-B."""
    from tianpay.entrypoints.bench import common, payments

    try:
        result = payments.run_bench(
            seconds=seconds, clients=clients, serve_workers=serve_workers or payments.default_serve_workers(),
            cheap_passwords=cheap_passwords, merchants=merchants, pgbench_scale=pgbench_scale, profile=profile,
            log=None if as_json else console.print,
        )
    except common.BenchUnavailable as exc:
        console.print(f"[red]cannot run[/red]: {exc}")
        raise typer.Exit(2) from None
    common.present(console, result, "bench payments", as_json=as_json,
                   notes=["targets (reported, not asserted): ratio ≥ 0.5, create p99 ≤ 25 ms"])


@bench_app.command("ledger")
def bench_ledger_command(
    entries: Annotated[int, typer.Option("--entries", min=1, help="Journal entries to post (2 postings each).")]
    = 20_000,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Posting threads.")] = 4,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Entries per unit of work.")] = 50,
    merchants: Annotated[int, typer.Option("--merchants", min=1, help="Merchants the credits spread over.")] = 1,
    as_json: JsonOutput = False,
) -> None:
    """Ledger postings per second, Tianpay's repository beside django-hordak on the same PostgreSQL."""
    from tianpay.entrypoints.bench import common, ledger

    try:
        result = ledger.run_bench(entries=entries, threads=threads, batch=batch, merchants=merchants,
                                  log=None if as_json else console.print)
    except common.BenchUnavailable as exc:
        console.print(f"[red]cannot run[/red]: {exc}")
        raise typer.Exit(2) from None
    common.present(console, result, "bench ledger", as_json=as_json)


@bench_app.command("verify")
def bench_verify_command(
    postings: Annotated[int, typer.Option("--postings", min=2, help="Postings to seed (two per entry).")]
    = 10_000_000,
    as_json: JsonOutput = False,
) -> None:
    """Seconds `ledger verify` takes over N bulk-seeded postings."""
    from tianpay.entrypoints.bench import common, verify

    try:
        result = verify.run_bench(postings=postings, log=None if as_json else console.print)
    except common.BenchUnavailable as exc:
        console.print(f"[red]cannot run[/red]: {exc}")
        raise typer.Exit(2) from None
    common.present(console, result, "bench verify", as_json=as_json)
    raise typer.Exit(0 if result["ok"] else 1)


@bench_app.command("portal")
def bench_portal_command(
    payments_count: Annotated[int, typer.Option("--payments", min=1, help="Payments of the measured merchant.")]
    = 1_000_000,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Times each query is timed.")] = 50,
    as_json: JsonOutput = False,
) -> None:
    """Merchant dashboard and filtered search p50/p99 (ms) over N payments."""
    from tianpay.entrypoints.bench import common, portal

    try:
        result = portal.run_bench(payments=payments_count, repeats=repeats, log=None if as_json else console.print)
    except common.BenchUnavailable as exc:
        console.print(f"[red]cannot run[/red]: {exc}")
        raise typer.Exit(2) from None
    common.present(console, result, "bench portal", as_json=as_json, notes=["target (reported): < 200 ms each"])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
