"""Fixtures for direct debit at the service level: the real bank world (tests/gateway/conftest.py),
a fresh database of each backend, a merchant priced for direct debit and its registered members."""

from __future__ import annotations

from tests.bindings.conftest import clock, ids, register, tools  # noqa: F401
from tests.gateway import conftest as world

bank_world, onboarded_dir, channels = world.bank_world, world.onboarded_dir, world.channels
