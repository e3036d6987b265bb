"""The ``tianpay`` command line: one CLI for every process and operator task.

The contract in DESIGN.md §2 is public (scripts and tests rely on it): ``--data-dir``, ``--port``,
``--json`` and ``TIANPAY_DATABASE_URL`` mean the same thing in every command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.services.ledger import verify_ledger

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
