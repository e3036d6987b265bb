"""Fixtures for the operator console: a real platform server per module and backend, operators of each
role, a browser-like HTTP client that carries cookies and CSRF tokens, and reconciliation exceptions
opened by the real reconciliation service from a statement line the platform cannot attribute.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.api.conftest import _ThreadedServer
from tests.conftest import BACKENDS, _DatabaseFactory
from tests.reconciliation.conftest import Banks, LedgerBank, Row
from tianpay.adapters.clock import SettableClock
from tianpay.bootstrap import Container, build_container
from tianpay.config import Settings
from tianpay.domain.operator import Role
from tianpay.domain.statistics import business_date_of
from tianpay.entrypoints.api.app import create_app
from tianpay.ports.reconciliation import ReconciliationException
from tianpay.ports.statements import StatementItemKind
from tianpay.services import reconciliation
from tianpay.services.operators import create_operator

PASSWORD = "correct horse battery staple"
_numbers = itertools.count(1)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class ConsoleServer:
    base_url: str
    container: Container
    clock: SettableClock


@dataclass(frozen=True)
class Staff:
    username: str
    role: Role
    password: str = PASSWORD


class ConsoleBrowser:
    """Cookies, the last page's CSRF token, and no automatic redirects (tests look at each one)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.csrf: str | None = None

    def get(self, path: str, **params: str) -> requests.Response:
        response = self.session.get(self.base_url + path, params=params, allow_redirects=False, timeout=10)
        self._remember(response)
        return response

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> requests.Response:
        fields = dict(data or {})
        if csrf and self.csrf is not None:
            fields.setdefault("csrf_token", self.csrf)
        response = self.session.post(self.base_url + path, data=fields, allow_redirects=False, timeout=10)
        self._remember(response)
        return response

    def log_in(self, staff: Staff, password: str | None = None) -> requests.Response:
        self.get("/console/login")
        return self.post("/console/login", {"username": staff.username, "password": password or staff.password})

    def _remember(self, response: requests.Response) -> None:
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)

    def close(self) -> None:
        self.session.close()


def start_console_server(database_url: str, data_dir: Path) -> tuple[ConsoleServer, _ThreadedServer]:
    clock = SettableClock(datetime.now(UTC))
    settings = Settings(data_dir=data_dir, database_url=database_url, public_base_url=None,
                        argon2_time_cost=1, argon2_memory_cost_kib=64)
    container = build_container(settings, clock=clock)
    server = _ThreadedServer(create_app(container))
    server.start()
    return ConsoleServer(f"http://127.0.0.1:{server.port}", container, clock), server


@pytest.fixture(scope="module", params=BACKENDS)
def console_server(
    request: pytest.FixtureRequest, database_factory: _DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleServer]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    console, server = start_console_server(database_url, tmp_path_factory.mktemp("console"))
    try:
        yield console
    finally:
        server.stop()
        console.container.close()


def make_staff(container: Container, role: Role) -> Staff:
    username = f"{role.value}{next(_numbers)}"
    create_operator(container.uow, container.clock, container.member_tools.hasher, username, PASSWORD, role)
    return Staff(username, role)


@pytest.fixture
def browser(console_server: ConsoleServer) -> Iterator[ConsoleBrowser]:
    client = ConsoleBrowser(console_server.base_url)
    yield client
    client.close()


def signed_in(console_server: ConsoleServer, role: Role) -> tuple[ConsoleBrowser, Staff]:
    staff = make_staff(console_server.container, role)
    client = ConsoleBrowser(console_server.base_url)
    assert client.log_in(staff).status_code == 303
    return client, staff


_days_back = itertools.count(2)


def unattributable_exception(container: Container, tmp_path: Path, *, amount_minor: int = 4_200
                             ) -> ReconciliationException:
    """Reconciles a past HBB business date whose statement holds one collection the platform has no
    record of: the real service books it to suspense and opens a bank-only exception."""
    day: date = business_date_of(container.clock.now()) - timedelta(days=next(_days_back))
    bank = LedgerBank("HBB")
    bank.add(day, Row(StatementItemKind.COLLECTION, f"Q-{day:%Y%m%d}", amount_minor, 0, None))
    policy = reconciliation.ReconciliationPolicy(statements_dir=tmp_path / "statements")
    report = reconciliation.reconcile(
        container.uow, container.clock, container.ids, Banks({"HBB": bank}), "HBB", day,
        policy=policy, worker_id="console-test",
    )
    assert report.status == "finished", report
    [opened] = reconciliation.exceptions_of(container.uow, run_id=report.run_id)
    return opened
