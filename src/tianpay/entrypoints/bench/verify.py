"""``tianpay bench verify``: how long ``ledger verify`` takes over N postings (DESIGN.md §13).

The ledger is seeded in bulk with PostgreSQL COPY: N/2 balanced two-leg entries (Dr a reserve-like
derived account, Cr a wallet-like stored one) over a thousand accounts, the stored balances set to
what the postings sum to, so verify finds a sound ledger and must read every row to say so. Seeding
runs with ``session_replication_role = replica`` (the ledger's per-row triggers off; the bench made
every entry balanced itself) when the role may set it. Then the existing service is timed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from tianpay.adapters.clock import SystemClock
from tianpay.adapters.db import migrate
from tianpay.adapters.db.engine import make_engine
from tianpay.adapters.db.unit_of_work import SqlUnitOfWork
from tianpay.adapters.ids import UlidGenerator
from tianpay.domain.ledger import AccountType, BalanceMode, normal_sign
from tianpay.services.ledger import verify_ledger

from .common import Database, bench_database, triggers_off_for_bulk_load

ACCOUNTS_PER_SIDE = 500
COPY_BLOCK = 100_000

Say = Callable[[str], None]


def run_bench(*, postings: int, log: Say | None = None) -> dict[str, Any]:
    say = log or (lambda _text: None)
    entries = max(1, postings // 2)
    with bench_database("verify") as database:
        engine = make_engine(database.url, pool_size=1)
        try:
            migrate.upgrade(engine)
            say(f"seeding {2 * entries:,} postings ({entries:,} entries) with COPY …")
            started = time.perf_counter()
            triggers_off = _seed(database, entries)
            seed_seconds = time.perf_counter() - started
            say("ledger verify …")
            clock, ids = SystemClock(), UlidGenerator()
            started = time.perf_counter()
            report = verify_ledger(lambda: SqlUnitOfWork(engine, clock, ids))
            seconds = time.perf_counter() - started
        finally:
            engine.dispose()
    return {
        "bench": "verify",
        "database": make_url(database.url).render_as_string(hide_password=True),
        "postings": report.postings,
        "entries": report.entries,
        "accounts": report.accounts,
        "ok": report.problem is None,
        "problem": None if report.problem is None else report.problem.invariant,
        "seconds": round(seconds, 3),
        "seed_seconds": round(seed_seconds, 3),
        "seeded_with_triggers_off": triggers_off,
    }


def _seed(database: Database, entries: int) -> bool:
    """Seeds the accounts, entries and postings; True when the triggers could be switched off."""
    now = datetime.now(UTC)
    # Short, so "je_" + tag + a 12-digit number fits the 40-character entry id.
    tag = secrets.token_hex(4)
    with psycopg.connect(database.libpq_url) as connection:
        triggers_off = triggers_off_for_bulk_load(connection)
        reserves = _accounts(connection, [f"bank:V{tag}{k}:reserve" for k in range(ACCOUNTS_PER_SIDE)],
                             AccountType.ASSET, BalanceMode.DERIVED, now)
        wallets = _accounts(connection, [f"member:{tag}{k}:wallet" for k in range(ACCOUNTS_PER_SIDE)],
                            AccountType.LIABILITY, BalanceMode.STORED, now)
        credited = dict.fromkeys(wallets, 0)
        stamp = now.isoformat()
        with connection.cursor() as cursor:
            with cursor.copy("COPY journal_entries (id, event, source_id, description, created_at) FROM STDIN") as copy:
                for first in range(0, entries, COPY_BLOCK):
                    copy.write("".join(
                        f"je_{tag}{n:012d}\tbench.seeded\t{tag}{n}\t\t{stamp}\n"
                        for n in range(first, min(first + COPY_BLOCK, entries))
                    ))
            with cursor.copy("COPY postings (entry_id, account_id, amount_minor, currency) FROM STDIN") as copy:
                for first in range(0, entries, COPY_BLOCK):
                    lines = []
                    for n in range(first, min(first + COPY_BLOCK, entries)):
                        amount = 100 + n % 9_900
                        wallet = wallets[n % len(wallets)]
                        credited[wallet] += amount
                        entry = f"je_{tag}{n:012d}"
                        lines.append(f"{entry}\t{reserves[n % len(reserves)]}\t{amount}\tCNY\n"
                                     f"{entry}\t{wallet}\t{-amount}\tCNY\n")
                    copy.write("".join(lines))
        # Credits are negative postings; a liability reads positive (normal sign), as verify expects.
        sign = normal_sign(AccountType.LIABILITY)
        connection.cursor().executemany(
            "UPDATE ledger_accounts SET balance_minor = %s WHERE id = %s",
            [(sign * -total, account) for account, total in credited.items()],
        )
        connection.commit()
        connection.execute("ANALYZE postings")
        connection.execute("ANALYZE journal_entries")
        connection.commit()
    return triggers_off


def _accounts(connection: psycopg.Connection[Any], codes: list[str], type_: AccountType, mode: BalanceMode,
              now: datetime) -> list[int]:
    may_go_negative = mode is BalanceMode.DERIVED
    ids: list[int] = []
    with connection.cursor() as cursor:
        for code in codes:
            cursor.execute(
                "INSERT INTO ledger_accounts (code, type, currency, balance_mode, may_go_negative, balance_minor, "
                "created_at) VALUES (%s, %s, 'CNY', %s, %s, 0, %s) RETURNING id",
                (code, type_.value, mode.value, may_go_negative, now),
            )
            row = cursor.fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return ids
