"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness) for load balancers and orchestrators.

Liveness says only that the process answers; it never touches the database, so a database outage
does not make an orchestrator restart every healthy server at once. Readiness runs one cheap
statement on the primary and checks, once per process, that the schema is at the migration head; a
failure is a 503 in the API's error envelope, its cause logged and never shown. Neither route needs
a signature, and both stay out of the OpenAPI document (docs/api.md, "Health probes").
"""

from __future__ import annotations

import threading

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from tianpay.adapters.db import migrate
from tianpay.adapters.logging import get_logger
from tianpay.entrypoints.api.errors import API_ERROR, error_response, request_id_of

log = get_logger(__name__)

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"


Problem = tuple[str, str] | None


class ReadinessCheck:
    """Pings the database on every call; the schema check is remembered after its first success,
    since a running process's code does not change and a migration only moves the head forward.

    One check runs at a time: a probe arriving while one is still waiting on the database (a
    black-holed host can take minutes to refuse) is answered with the last result instead of
    tying up another server thread behind the same wait.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._running = threading.Lock()
        self._is_schema_current = False
        self._last: Problem = ("database_unavailable", "the database has not answered yet")

    def problem(self) -> Problem:
        """None when ready, else (code, message) for the error envelope."""
        if not self._running.acquire(blocking=False):
            return self._last
        try:
            self._last = self._check()
            return self._last
        finally:
            self._running.release()

    def _check(self) -> Problem:
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            log.exception("readiness_database_unreachable")
            return "database_unavailable", "the database does not answer"
        if not self._schema_is_current():
            return "schema_outdated", "the database schema is not at the migration head; run tianpay db upgrade"
        return None

    def _schema_is_current(self) -> bool:
        if self._is_schema_current:
            return True
        try:
            self._is_schema_current = migrate.is_at_head(self._engine)
        except Exception:
            log.exception("readiness_schema_check_failed")
            return False
        if not self._is_schema_current:
            log.warning("readiness_schema_outdated")
        return self._is_schema_current


def health_router(engine: Engine) -> APIRouter:
    """The two probes; ``engine`` is the primary's (readiness is about where the money is written)."""
    router = APIRouter(include_in_schema=False)
    readiness = ReadinessCheck(engine)

    @router.get(HEALTHZ_PATH)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get(READYZ_PATH)
    def readyz(request: Request) -> JSONResponse:
        problem = readiness.problem()
        if problem is None:
            return JSONResponse({"status": "ok"})
        code, message = problem
        return error_response(503, API_ERROR, code, message, request_id=request_id_of(request))

    return router
