"""``/healthz`` and ``/readyz`` over real HTTP on both databases: liveness never needs the database,
readiness answers 503 in the error envelope while the database is missing or behind the migration
head, and 200 once it is current; both carry the security headers and stay out of the schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from tests.api.conftest import _ThreadedServer
from tianpay.bootstrap import build_container
from tianpay.config import Settings
from tianpay.entrypoints.api.app import create_app


@contextmanager
def serving(database_url: str, data_dir: Path) -> Iterator[tuple[str, Settings]]:
    settings = Settings(data_dir=data_dir, database_url=database_url)
    container = build_container(settings)
    server = _ThreadedServer(create_app(container))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", settings
    finally:
        server.stop()
        container.close()


def test_both_probes_answer_ok_on_a_migrated_database(db_url: str, tmp_path: Path) -> None:
    with serving(db_url, tmp_path) as (base_url, _settings):
        live = httpx.get(f"{base_url}/healthz")
        ready = httpx.get(f"{base_url}/readyz")
        again = httpx.get(f"{base_url}/readyz")
        schema = httpx.get(f"{base_url}/openapi.json").json()
    for response in (live, ready, again):
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["request-id"].startswith("req_")
    assert "/healthz" not in schema["paths"]
    assert "/readyz" not in schema["paths"]


def test_readiness_refuses_a_database_that_is_not_migrated_until_it_is(tmp_path: Path) -> None:
    empty_sqlite = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    with serving(empty_sqlite, tmp_path / "data") as (base_url, _settings):
        assert httpx.get(f"{base_url}/healthz").status_code == 200
        behind = httpx.get(f"{base_url}/readyz")
        assert behind.status_code == 503
        error = behind.json()["error"]
        assert (error["type"], error["code"], error["param"]) == ("api_error", "schema_outdated", None)
        assert "Traceback" not in behind.text
        build_container(Settings(data_dir=tmp_path / "data", database_url=empty_sqlite)).upgrade_database()
        assert httpx.get(f"{base_url}/readyz").status_code == 200


def test_readiness_is_503_without_a_stack_trace_when_the_database_is_unreachable(
    db_url: str, tmp_path: Path
) -> None:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        # A directory cannot be opened as a database file.
        (tmp_path / "a-directory").mkdir()
        unreachable = f"sqlite:///{tmp_path / 'a-directory'}"
    else:
        unreachable = url.set(database=f"{url.database}_absent").render_as_string(hide_password=False)
    with serving(unreachable, tmp_path / "data") as (base_url, _settings):
        live = httpx.get(f"{base_url}/healthz")
        ready = httpx.get(f"{base_url}/readyz")
    assert live.status_code == 200
    assert ready.status_code == 503
    error = ready.json()["error"]
    assert set(error) >= {"type", "code", "message", "param"}
    assert (error["type"], error["code"]) == ("api_error", "database_unavailable")
    assert ready.headers["x-content-type-options"] == "nosniff"
    for leak in ("Traceback", "sqlite3", "psycopg", "OperationalError", str(tmp_path)):
        assert leak not in ready.text
