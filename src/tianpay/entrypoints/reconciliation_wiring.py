"""Builds the reconciliation service's policy and schedule from Settings, for the CLI and the worker.

Statements are kept under ``<data-dir>/statements/<bank>/<date>/`` (docs/clearing.md, "Statements").
"""

from __future__ import annotations

from tianpay.bootstrap import Container
from tianpay.services.reconciliation import DailySchedule, ReconciliationPolicy


def reconciliation_policy(container: Container) -> ReconciliationPolicy:
    settings = container.settings
    return ReconciliationPolicy(
        statements_dir=settings.data_dir / "statements",
        lease_s=settings.reconciliation_lease_s,
        retry_s=settings.reconciliation_retry_s,
    )


def daily_schedule(container: Container) -> DailySchedule:
    settings = container.settings
    return DailySchedule(delay_s=settings.reconciliation_delay_s, window_days=settings.reconciliation_window_days)
