"""What every bench shares: a scratch PostgreSQL database, percentiles, and the printed table.

A bench creates ``tianpay_bench_…`` on the server ``TIANPAY_DATABASE_URL`` names (else the local one,
127.0.0.1:5432 with trust authentication, or ``TIANPAY_BENCH_POSTGRES_URL``) and drops it afterwards,
so a run leaves nothing behind and two runs never meet.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import URL, make_url

from tianpay.config import normalise_database_url

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class BenchUnavailable(RuntimeError):
    """The bench cannot run here (no PostgreSQL, a missing tool); the message says what to do."""


@dataclass(frozen=True, slots=True)
class Database:
    """A scratch PostgreSQL database a bench runs on, by its SQLAlchemy URL."""

    url: str

    @property
    def libpq_url(self) -> str:
        """The same database as a libpq URL, for psycopg and the PostgreSQL tools."""
        return libpq_url(make_url(self.url))


def libpq_url(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def server_url() -> URL:
    """The server benches use: the one of ``TIANPAY_DATABASE_URL`` when set, else the local one."""
    configured = os.environ.get("TIANPAY_DATABASE_URL")
    if configured and make_url(normalise_database_url(configured)).get_backend_name() == "postgresql":
        return make_url(normalise_database_url(configured))
    return make_url(normalise_database_url(os.environ.get("TIANPAY_BENCH_POSTGRES_URL", DEFAULT_SERVER_URL)))


@contextmanager
def scratch_database(purpose: str) -> Iterator[Database]:
    """A new, empty database on the bench server, dropped when the block ends (even on failure)."""
    server = server_url()
    admin = libpq_url(server.set(database="postgres"))
    name = f"tianpay_bench_{purpose}_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise BenchUnavailable(f"cannot create a scratch database on {server.host}:{server.port}: {exc}") from exc
    try:
        yield Database(server.set(database=name).render_as_string(hide_password=False))
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


@contextmanager
def bench_database(purpose: str) -> Iterator[Database]:
    """A scratch database on the server of ``TIANPAY_DATABASE_URL`` (else the local one).

    Never the configured database itself: the ledger is append-only, so millions of seeded postings
    could never be taken out of a database someone uses.
    """
    configured = os.environ.get("TIANPAY_DATABASE_URL")
    if configured and make_url(normalise_database_url(configured)).get_backend_name() != "postgresql":
        raise BenchUnavailable("the benches run on PostgreSQL: TIANPAY_DATABASE_URL names another database")
    with scratch_database(purpose) as database:
        yield database


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.5 for p50, 0.99 for p99); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def print_table(console: Console, title: str, rows: Mapping[str, object], *, notes: Sequence[str] = ()) -> None:
    """The human form of a bench's result: one row per figure, then any notes."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows.items():
        table.add_row(name, _shown(value))
    console.print(table)
    for note in notes:
        console.print(f"[dim]{note}[/dim]")


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)


def present(console: Console, result: Mapping[str, object], title: str, *, as_json: bool,
            notes: Sequence[str] = ()) -> None:
    """Prints a bench's result: one JSON line on stdout with ``--json``, else a table on the console."""
    if as_json:
        import json
        import sys

        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    print_table(console, title, result, notes=notes)


def quiet_logging() -> None:
    """Warnings only, on stderr: the services a bench seeds through log every step, and ``--json``
    must leave stdout to its one line."""
    from tianpay.adapters.logging import configure_logging

    configure_logging("WARNING")


def triggers_off_for_bulk_load(connection: psycopg.Connection[Any]) -> bool:
    """Switches this session's row triggers (the ledger's checks, foreign keys) off for a bulk seed,
    when the role may (a superuser, as on the local trust-auth server); False when it may not."""
    try:
        connection.execute("SET session_replication_role = replica")
    except psycopg.Error:
        connection.rollback()
        return False
    return True
