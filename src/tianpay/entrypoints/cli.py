"""The ``tianpay`` command line: one CLI for every process and operator task.

The contract in DESIGN.md §2 is public (scripts and tests rely on it): ``--data-dir``, ``--port``,
``--json`` and ``TIANPAY_DATABASE_URL`` mean the same thing in every command.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
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
    urls = start_banks(supervisor, data_dir, host, base_port)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
