"""The merchant API fixtures of ``tests/api`` (a real server per module and backend, signed
merchants), shared here so the settlement routes are tested by the same signed client."""

from __future__ import annotations

from tests.api.conftest import (  # noqa: F401  (fixtures are found by name)
    api_client,
    api_db_url,
    api_extra_routers,
    api_server,
    merchant_credentials,
    merchant_factory,
)
