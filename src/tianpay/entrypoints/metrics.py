"""``/metrics`` for Prometheus: request latency, bank calls, payments, webhook backlog, job lag.

Request latency (by route template and status) and bank calls (``channels/observed.py``) are
measured in the process; payments by status, the outbox backlog and each worker job's lag are read
from the database at scrape time, so every process answers the same for those. With
``PROMETHEUS_MULTIPROC_DIR`` set, the in-process series of every process writing there are merged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from tianpay.adapters.logging import get_logger
from tianpay.bootstrap import Container
from tianpay.channels.observed import BANK_CALL_SECONDS, BANK_CALLS
from tianpay.services.statistics import operational_snapshot

log = get_logger(__name__)

METRICS_PATH = "/metrics"
HTTP_REQUEST_SECONDS = Histogram(
    "tianpay_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status code.",
    ("method", "route", "status"),
    registry=None,
)

Scope = dict[str, Any]


class HttpMetricsMiddleware:
    """Times every HTTP request and labels it with the route template (``/v1/payments/{payment_id}``),
    never the raw path, so ids do not explode the number of series. Unrouted paths share one label."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            HTTP_REQUEST_SECONDS.labels(scope.get("method", ""), route, str(status["code"])).observe(
                time.perf_counter() - started
            )


class DatabaseCollector(Collector):
    """Series read from the database at each scrape (through the read engine)."""

    def __init__(self, container: Container) -> None:
        self._container = container

    def collect(self) -> Iterator[Metric]:
        now = self._container.clock.now()
        try:
            snapshot = operational_snapshot(self._container.read_uow, now)
        except Exception:
            # A scrape must answer even when the database does not; the gap shows on the dashboards.
            log.exception("metrics_database_unavailable")
            return
        payments = GaugeMetricFamily(
            "tianpay_payments_today",
            "Payments created on today's Asia/Shanghai business date, by status (open = created or "
            "processing), method and bank; from the daily aggregates.",
            labels=("status", "method", "bank"),
        )
        for count in snapshot.payments_today:
            payments.add_metric((count.status, count.method, count.bank), count.count)
        yield payments
        yield GaugeMetricFamily(
            "tianpay_webhook_backlog", "Webhook events waiting to be delivered.", value=snapshot.pending_events
        )
        lag = GaugeMetricFamily(
            "tianpay_worker_job_lag_seconds", "Seconds since each worker job last ran (any worker).", labels=("job",)
        )
        for job, ran_at in sorted(snapshot.job_runs.items()):
            lag.add_metric((job,), max(0.0, (now - ran_at).total_seconds()))
        yield lag


def metrics_registry(container: Container) -> CollectorRegistry:
    """The registry /metrics renders: this process's series (or every process's, in multiprocess
    mode) and the database's."""
    registry = CollectorRegistry(auto_describe=True)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for metric in (HTTP_REQUEST_SECONDS, BANK_CALL_SECONDS, BANK_CALLS):
            registry.register(metric)
    registry.register(DatabaseCollector(container))
    return registry


def install_metrics(app: FastAPI, container: Container) -> None:
    """Mounts ``/metrics`` and the request-latency middleware; call after every other middleware,
    so the latency includes authentication and response signing."""
    registry = metrics_registry(container)
    router = APIRouter()

    @router.get(METRICS_PATH, include_in_schema=False)
    def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
    app.add_middleware(HttpMetricsMiddleware)  # type: ignore[arg-type]
