"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, and a settable clock.

Every test that takes ``db_url`` runs twice, once per backend. Each run of the suite creates its own
PostgreSQL databases (a migrated template, then one copy per test) and drops them at the end. When
PostgreSQL cannot be reached the PostgreSQL half is skipped locally, but under CI (``CI`` set) that
is an error: CI must prove both backends.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from tests.security.log_scan import LogScanner, log_files_under
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db import migrate
from tianpay.adapters.db.engine import make_engine
from tianpay.adapters.db.unit_of_work import SqlUnitOfWork
from tianpay.adapters.ids import UlidGenerator
from tianpay.adapters.logging import configure_logging
from tianpay.ports.unit_of_work import UnitOfWorkFactory

PG_ADMIN_URL = os.environ.get("TIANPAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN_TAG = uuid.uuid4().hex[:8]
BACKENDS = ["sqlite", "postgresql"]


def _pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}".replace("postgresql://", "postgresql+psycopg://", 1)


class _DatabaseFactory:
    """Makes fresh, migrated databases quickly by copying a template migrated once per run."""

    def __init__(self, tmp_root: Path) -> None:
        self._tmp_root = tmp_root
        self._sqlite_template: Path | None = None
        self._pg_template: str | None = None
        self._pg_databases: list[str] = []
        self._pg_available: bool | None = None

    def sqlite(self) -> str:
        if self._sqlite_template is None:
            template = self._tmp_root / "template.sqlite3"
            engine = make_engine(f"sqlite:///{template}")
            migrate.upgrade(engine)
            engine.dispose()
            self._sqlite_template = template
        target = self._tmp_root / f"db-{uuid.uuid4().hex[:12]}.sqlite3"
        shutil.copyfile(self._sqlite_template, target)
        return f"sqlite:///{target}"

    def postgresql(self) -> str:
        if self._pg_available is None:
            self._pg_available = _pg_reachable()
        if not self._pg_available:
            if os.environ.get("CI"):
                pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: CI must test both backends")
            pytest.skip("PostgreSQL is not reachable")
        if self._pg_template is None:
            self._pg_template = f"tianpay_t{RUN_TAG}_template"
            self._admin(f'CREATE DATABASE "{self._pg_template}"')
            self._pg_databases.append(self._pg_template)
            engine = make_engine(_pg_url(self._pg_template), pool_size=1)
            migrate.upgrade(engine)
            engine.dispose()
        name = f"tianpay_t{RUN_TAG}_{uuid.uuid4().hex[:10]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._pg_template}"')
        self._pg_databases.append(name)
        return _pg_url(name)

    def _admin(self, statement: str) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
            connection.execute(statement)  # type: ignore[arg-type]

    def drop_all(self) -> None:
        for name in reversed(self._pg_databases):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_DatabaseFactory]:
    factory = _DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    factory.drop_all()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, database_factory: _DatabaseFactory) -> str:
    """A fresh, migrated database of each backend: the test runs once per backend."""
    backend: str = request.param
    return database_factory.sqlite() if backend == "sqlite" else database_factory.postgresql()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime(2026, 11, 27, 2, 0, tzinfo=UTC))


@pytest.fixture
def uow_factory(engine: Engine, clock: SettableClock) -> UnitOfWorkFactory:
    ids = UlidGenerator()
    return lambda: SqlUnitOfWork(engine, clock, ids)


# ---- the log scan (tests/security/log_scan.py, docs/security.md) ----------------------------------------
_LOG_SCANNER = LogScanner()


@pytest.fixture(scope="session", autouse=True)
def log_scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogScanner]:
    """Sends every log record of the session through the production pipeline (structlog, redaction, JSON)
    into the scanner, reads the log files the fixtures' processes wrote, and fails the session if any
    line shows a card, ID or phone number, a password, an SMS code or key material in clear."""
    configure_logging("INFO", json=True, stream=_LOG_SCANNER)  # type: ignore[arg-type]
    yield _LOG_SCANNER
    _LOG_SCANNER.write("\n")
    for path in log_files_under(tmp_path_factory.getbasetemp()):
        _LOG_SCANNER.scan_file(path)
    if _LOG_SCANNER.findings:
        pytest.fail(f"secrets or personal data in clear in the logs:\n{_LOG_SCANNER.report()}", pytrace=False)


@pytest.fixture(autouse=True)
def _keep_log_scan_attached(log_scan: LogScanner) -> None:
    """Tests (and CLI commands run in-process) may reconfigure logging; the scanner's handler stays.

    An in-process uvicorn server started without ``log_config=None`` gives uvicorn's loggers handlers of
    their own that write to stderr, past the scanner; they are routed back through the pipeline too."""
    root = logging.getLogger()
    uvicorn_detached = any(
        logging.getLogger(name).handlers or not logging.getLogger(name).propagate
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    )
    if uvicorn_detached or not any(getattr(handler, "stream", None) is log_scan for handler in root.handlers):
        configure_logging("INFO", json=True, stream=log_scan)  # type: ignore[arg-type]
