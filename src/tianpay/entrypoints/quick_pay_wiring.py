"""Builds the quick-pay service's settings (notification URLs, routing, breaker policy) from configuration.

The API and the cashier must route and break circuits alike, so both take them from here.
"""

from __future__ import annotations

from datetime import timedelta

from tianpay.bootstrap import Container
from tianpay.channels.registry import PAYER_DECLINE_CODES
from tianpay.domain.channel_health import BreakerPolicy
from tianpay.entrypoints.gateway_wiring import gateway_settings
from tianpay.services.quick_pay import QuickPaySettings
from tianpay.services.routing import RoutingSettings


def quick_pay_settings(container: Container) -> QuickPaySettings:
    settings = container.settings
    policy = BreakerPolicy(
        failure_threshold=settings.breaker_failure_threshold,
        window=timedelta(seconds=settings.breaker_window_s),
        cool_down=timedelta(seconds=settings.breaker_cool_down_s),
    )
    return QuickPaySettings(
        gateway=gateway_settings(container),
        routing=RoutingSettings(policy=policy, payer_decline_codes=PAYER_DECLINE_CODES),
    )
