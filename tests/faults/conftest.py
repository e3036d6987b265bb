"""Fixtures of the fault suite: a fresh PostgreSQL database per scenario and the long-variant switch."""

from __future__ import annotations

import os

import pytest

from tests.conftest import _DatabaseFactory

LONG = os.environ.get("TIANPAY_FAULTS_LONG") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("faults_long") is not None and not LONG:
            item.add_marker(pytest.mark.skip(reason="the long fault variant runs with TIANPAY_FAULTS_LONG=1"))


@pytest.fixture
def pg_url(database_factory: _DatabaseFactory) -> str:
    """A fresh, migrated database on the shared PostgreSQL server (skipped when it is not reachable)."""
    return database_factory.postgresql()
