"""The channel directory: which bank adapters this platform is connected to, built from onboarding.

Each adapter's onboarding leaves its material under ``<data-dir>/channels/<bank>/``; a bank that was
never onboarded is simply absent. ``onboard_banks`` performs the onboarding against the simulated
banks (``tianpay up`` and the end-to-end tests call it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tianpay.channels.bcb import BcbDirectDebitChannel, load_bcb_config, onboard_bcb
from tianpay.channels.hbb import HbbChannel, load_hbb_config, onboard_hbb
from tianpay.channels.hbb.quickpay import build_hbb_quick_pay_channel
from tianpay.channels.jhb import JhbChannel
from tianpay.channels.jhb.mandates import build_jhb_direct_debit_channel
from tianpay.channels.jhb.onboarding import OnboardingError, config_from_onboarding
from tianpay.channels.jhb.onboarding import onboard as onboard_jhb
from tianpay.channels.tcs.onboarding import onboard_tcs
from tianpay.domain.errors import NotFound
from tianpay.ports.channels import (
    DirectDebitChannel,
    OnlineBankingChannel,
    PaymentQuery,
    QuickPayChannel,
    QuickPayRoute,
    RefundChannel,
)

# The cashier shows banks in this order.
BANK_ORDER = ("HBB", "JHB", "BCB")
BANK_NAMES = {
    "HBB": {"zh": "华北银行", "en": "Huabei Bank"},
    "JHB": {"zh": "津海银行", "en": "Jinhai Bank"},
    "BCB": {"zh": "滨海商业银行", "en": "Binhai Commercial Bank"},
}
# What each bank's payment query answers for an order it never recorded (mapped to UNKNOWN by the
# adapters: an absence is not a failure). The gateway service may fail such an attempt once the
# bank can no longer accept the order (docs/gateway.md "Absent orders"): HBB 34 (hbb-adapter.md),
# JHB 1011 (jhb-adapter.md).
ORDER_NOT_FOUND_CODES: dict[str, frozenset[str]] = {
    "HBB": frozenset({"34"}), "JHB": frozenset({"1011"}), "BCB": frozenset({"1002"}),
}

# Quick-pay routing configuration per bank (docs/routing.md): per-payment limits in fen (both banks
# cap a card at ¥50,000.00 per transaction, docs/banks/simulators.md) and what the bank charges us,
# in the default preference order. Deployments with real contracts would read these from settings.
QUICK_PAY_ROUTES: tuple[QuickPayRoute, ...] = (
    QuickPayRoute("HBB", min_amount_minor=1, max_amount_minor=5_000_000, cost_bps=25),
    QuickPayRoute("JHB", min_amount_minor=1, max_amount_minor=5_000_000, cost_bps=30),
)
# Bank codes that speak about the payer or the card, not about the bank's health: the circuit
# breaker does not count them (an empty account must not take a bank out of rotation for everyone).
PAYER_DECLINE_CODES: dict[str, frozenset[str]] = {
    "HBB": frozenset({"14", "51", "61", "62", "63", "64", "65", "66"}),
    "JHB": frozenset({"1051", "1061", "1062", "1063", "1064", "1065", "1066", "1067", "1068"}),
}


@dataclass
class ChannelRegistry:
    online: dict[str, OnlineBankingChannel] = field(default_factory=dict)
    refund: dict[str, RefundChannel] = field(default_factory=dict)
    quick: dict[str, QuickPayChannel] = field(default_factory=dict)
    debit: dict[str, DirectDebitChannel] = field(default_factory=dict)
    routes: tuple[QuickPayRoute, ...] = QUICK_PAY_ROUTES
    _closers: list[HbbChannel | JhbChannel | BcbDirectDebitChannel] = field(default_factory=list)

    def online_banking(self, bank: str) -> OnlineBankingChannel:
        try:
            return self.online[bank]
        except KeyError:
            raise NotFound(f"bank {bank!r} does not offer online banking here", param="bank") from None

    def refunds(self, bank: str) -> RefundChannel:
        try:
            return self.refund[bank]
        except KeyError:
            raise NotFound(f"bank {bank!r} takes no refunds here", param="bank") from None

    def payment_query(self, bank: str) -> PaymentQuery:
        for channels in (self.online, self.quick, self.debit):
            channel = channels.get(bank)
            if channel is not None:
                return channel
        raise NotFound(f"bank {bank!r} takes no payments here", param="bank")

    def online_banking_banks(self) -> list[str]:
        return [code for code in BANK_ORDER if code in self.online]

    def quick_pay(self, bank: str) -> QuickPayChannel:
        try:
            return self.quick[bank]
        except KeyError:
            raise NotFound(f"bank {bank!r} does not offer quick pay here", param="bank") from None

    def direct_debit(self, bank: str) -> DirectDebitChannel:
        try:
            return self.debit[bank]
        except KeyError:
            raise NotFound(f"bank {bank!r} offers no direct debit here", param="bank") from None

    def quick_pay_routes(self) -> list[QuickPayRoute]:
        """Routes of the banks connected for quick pay, in the configured preference order."""
        return [route for route in self.routes if route.bank in self.quick]

    def close(self) -> None:
        for channel in self._closers:
            channel.close()


def load_channels(data_dir: Path, *, timeout_s: float = 10.0) -> ChannelRegistry:
    registry = ChannelRegistry()
    hbb_config = load_hbb_config(data_dir, timeout_s=timeout_s)
    if hbb_config is not None:
        hbb = build_hbb_quick_pay_channel(hbb_config)
        registry.online["HBB"] = hbb
        registry.refund["HBB"] = hbb
        registry.quick["HBB"] = hbb
        registry._closers.append(hbb)
    try:
        jhb = build_jhb_direct_debit_channel(config_from_onboarding(data_dir, timeout_s=timeout_s))
    except OnboardingError:
        jhb = None
    if jhb is not None:
        registry.online["JHB"] = jhb
        registry.refund["JHB"] = jhb
        registry.quick["JHB"] = jhb
        registry.debit["JHB"] = jhb
        registry._closers.append(jhb)
    bcb_config = load_bcb_config(data_dir, timeout_s=timeout_s)
    if bcb_config is not None:
        bcb = BcbDirectDebitChannel(bcb_config)
        registry.debit["BCB"] = bcb
        registry._closers.append(bcb)
    return registry


def onboard_banks(data_dir: Path, bank_urls: Mapping[str, str]) -> list[str]:
    """Connects the platform to every simulated bank it has an adapter for; safe to run again."""
    onboarded = []
    if "HBB" in bank_urls:
        onboard_hbb(data_dir, bank_urls["HBB"])
        onboarded.append("HBB")
    if "JHB" in bank_urls:
        onboard_jhb(data_dir, bank_urls["JHB"])
        onboarded.append("JHB")
    if "BCB" in bank_urls:
        onboard_bcb(data_dir, bank_urls["BCB"])
        onboarded.append("BCB")
    # TCS is onboarded over its HTTP admin URL (docs/banks/tcs.md §7); the ISO address comes back.
    if "TCS" in bank_urls and bank_urls["TCS"].startswith("http"):
        onboard_tcs(data_dir, bank_urls["TCS"])
        onboarded.append("TCS")
    return onboarded
