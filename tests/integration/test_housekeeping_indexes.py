"""The housekeeping purges find their dead rows through an index (revisions 0016 and 0018), on both
databases.

The test runs a real purge, records the SQL it sent, and asks each database for the plan of every
query that selects dead rows: SQLite's ``EXPLAIN QUERY PLAN``, and PostgreSQL's ``EXPLAIN`` with
sequential scans priced out (``enable_seqscan = off``), since on a table this small a scan would be
the cheaper plan and the question is only whether the index is there to be used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from tianpay.adapters.clock import SettableClock
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.housekeeping import HousekeepingPolicy, purge_once

# The table each purge reads, and the index its search for dead rows must use.
EXPECTED_INDEX = {
    "member_sessions": "ix_member_sessions_expires",
    "merchant_user_sessions": "ix_merchant_user_sessions_expires",
    "operator_sessions": "ix_operator_sessions_expires",
    "sms_codes": "ix_sms_codes_expires",
    "rate_limit_counters": "ix_rate_limit_counters_expires",
    "request_replays": "ix_request_replays_expires_at",
    "events": "ix_events_status_delivered",
    "idempotency_records": "ix_idempotency_records_created",
    "sms_outbox": "ix_sms_outbox_created",
}


@dataclass(frozen=True, slots=True)
class Sent:
    statement: str
    parameters: Any


@pytest.fixture
def sent(engine: Engine) -> Iterator[list[Sent]]:
    """Every statement the engine sends while the test runs, with its parameters."""
    recorded: list[Sent] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: Any, _context: object, _many: bool) -> None:
        recorded.append(Sent(statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield recorded
    event.remove(engine, "before_cursor_execute", record)


def searches_for_dead_rows(sent: list[Sent]) -> dict[str, Sent]:
    """The purge's SELECT of each table (by the table it reads from)."""
    found: dict[str, Sent] = {}
    for one in sent:
        text = " ".join(one.statement.split())
        if not text.upper().startswith("SELECT"):
            continue
        table = text.split(" FROM ", 1)[1].split(" ", 1)[0]
        if table in EXPECTED_INDEX:
            found[table] = one
    return found


def plan_of(engine: Engine, query: Sent) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query.statement}", query.parameters)
            return "\n".join(str(row[-1]) for row in rows)
        connection.exec_driver_sql("SET enable_seqscan = off")
        rows = connection.exec_driver_sql(f"EXPLAIN {query.statement}", query.parameters)
        plan = "\n".join(str(row[0]) for row in rows)
        connection.rollback()
        return plan


def test_every_purge_finds_its_dead_rows_through_an_index(
    engine: Engine, uow_factory: UnitOfWorkFactory, clock: SettableClock, sent: list[Sent]
) -> None:
    purge_once(uow_factory, clock.now(), HousekeepingPolicy(event_retention=timedelta(days=30)))
    searches = searches_for_dead_rows(sent)
    assert set(searches) == set(EXPECTED_INDEX), "a purge was added or renamed: name the index it needs"
    for table, query in searches.items():
        plan = plan_of(engine, query)
        assert EXPECTED_INDEX[table] in plan, f"{table}: {plan}"
