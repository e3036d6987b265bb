"""Builds the gateway service's settings from the process's configuration, for every entry point.

The serve process (notifications, cashier) and the worker (re-query) must agree on the public base
URL and on the re-query schedule, so both take them from here.
"""

from __future__ import annotations

from tianpay.bootstrap import Container
from tianpay.channels.registry import ORDER_NOT_FOUND_CODES
from tianpay.services.gateway import GatewaySettings


def gateway_settings(container: Container) -> GatewaySettings:
    settings = container.settings
    return GatewaySettings(
        base_url=settings.base_url,
        requery_first_after_s=settings.requery_first_after_s,
        requery_max_interval_s=settings.requery_max_interval_s,
        absent_order_margin_s=settings.absent_order_margin_s,
        order_not_found_codes=ORDER_NOT_FOUND_CODES,
    )
