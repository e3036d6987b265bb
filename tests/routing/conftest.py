"""Routing tests reuse the binding fixtures: the real bank world, a database of each backend, a merchant."""

from __future__ import annotations

from tests.bindings import conftest as bindings

bank_world, onboarded_dir, channels = bindings.bank_world, bindings.onboarded_dir, bindings.channels
clock, ids, tools, merchant, binder = bindings.clock, bindings.ids, bindings.tools, bindings.merchant, bindings.binder
