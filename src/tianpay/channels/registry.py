"""The channel directory: which bank adapters this platform is connected to, built from onboarding.

Each adapter's onboarding leaves its material under ``<data-dir>/channels/<bank>/``; a bank that was
never onboarded is simply absent. ``onboard_banks`` performs the onboarding against the simulated
banks (``tianpay up`` and the end-to-end tests call it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from tianpay.channels.bcb import BcbDirectDebitChannel, load_bcb_config, onboard_bcb
from tianpay.channels.bcb.payout import BcbPayoutChannel
from tianpay.channels.bcb.statement import BcbStatementChannel
from tianpay.channels.hbb import load_hbb_config, onboard_hbb
from tianpay.channels.hbb.payout import build_hbb_payout_channel
from tianpay.channels.hbb.quickpay import build_hbb_quick_pay_channel
from tianpay.channels.hbb.statement import build_hbb_statement_channel
from tianpay.channels.jhb.mandates import build_jhb_direct_debit_channel
from tianpay.channels.jhb.onboarding import OnboardingError, config_from_onboarding
from tianpay.channels.jhb.onboarding import onboard as onboard_jhb
from tianpay.channels.jhb.statement import build_jhb_statement_channel
from tianpay.channels.observed import observed
from tianpay.channels.tcs.onboarding import load_tcs_config, onboard_tcs
from tianpay.channels.tcs.statement import build_tcs_statement_channel
from tianpay.domain.errors import NotFound
from tianpay.ports.channels import (
    DirectDebitChannel,
    OnlineBankingChannel,
    PaymentQuery,
    QuickPayChannel,
    QuickPayRoute,
    RefundChannel,
)
from tianpay.ports.payouts import PayoutChannel
from tianpay.ports.statements import StatementChannel

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


class _Closes(Protocol):
    """A channel that holds an HTTP client of its own, closed with the registry."""

    def close(self) -> None: ...


@dataclass
class ChannelRegistry:
    online: dict[str, OnlineBankingChannel] = field(default_factory=dict)
    refund: dict[str, RefundChannel] = field(default_factory=dict)
    quick: dict[str, QuickPayChannel] = field(default_factory=dict)
    debit: dict[str, DirectDebitChannel] = field(default_factory=dict)
    # Statements are read from HBB, JHB, BCB and TCS (the card switch's clearing file); payouts are
    # sent from the reserve at HBB or BCB (docs/clearing.md).
    statement: dict[str, StatementChannel] = field(default_factory=dict)
    payout: dict[str, PayoutChannel] = field(default_factory=dict)
    routes: tuple[QuickPayRoute, ...] = QUICK_PAY_ROUTES
    _closers: list[_Closes] = field(default_factory=list)

    def online_banking(self, bank: str) -> OnlineBankingChannel:
        try:
            return observed(self.online[bank], bank, "online_banking")
        except KeyError:
            raise NotFound(f"bank {bank!r} does not offer online banking here", param="bank") from None

    def refunds(self, bank: str) -> RefundChannel:
        try:
            return observed(self.refund[bank], bank, "refund")
        except KeyError:
            raise NotFound(f"bank {bank!r} takes no refunds here", param="bank") from None

    def payment_query(self, bank: str) -> PaymentQuery:
        for channels in (self.online, self.quick, self.debit):
            channel = channels.get(bank)
            if channel is not None:
                return observed(channel, bank, "payment_query")
        raise NotFound(f"bank {bank!r} takes no payments here", param="bank")

    def online_banking_banks(self) -> list[str]:
        return [code for code in BANK_ORDER if code in self.online]

    def quick_pay(self, bank: str) -> QuickPayChannel:
        try:
            return observed(self.quick[bank], bank, "quick_pay")
        except KeyError:
            raise NotFound(f"bank {bank!r} does not offer quick pay here", param="bank") from None

    def direct_debit(self, bank: str) -> DirectDebitChannel:
        try:
            return observed(self.debit[bank], bank, "direct_debit")
        except KeyError:
            raise NotFound(f"bank {bank!r} offers no direct debit here", param="bank") from None

    def statements(self, bank: str) -> StatementChannel:
        try:
            return observed(self.statement[bank], bank, "statement")
        except KeyError:
            raise NotFound(f"bank {bank!r} sends no statement here", param="bank") from None

    def statement_banks(self) -> list[str]:
        return sorted(self.statement)

    def payouts(self, bank: str) -> PayoutChannel:
        try:
            return observed(self.payout[bank], bank, "payout")
        except KeyError:
            raise NotFound(f"bank {bank!r} makes no payouts here", param="bank") from None

    def payout_banks(self) -> list[str]:
        return sorted(self.payout)

    def quick_pay_routes(self) -> list[QuickPayRoute]:
        """Routes of the banks connected for quick pay, in the configured preference order."""
        return [route for route in self.routes if route.bank in self.quick]

    def close(self) -> None:
        for channel in self._closers:
            channel.close()


def load_channels(
    data_dir: Path, *, timeout_s: float = 10.0, clock: Callable[[], datetime] | None = None
) -> ChannelRegistry:
    """The adapters of every onboarded bank. ``clock`` is the platform's (it may be moved in demos): the
    adapters date their requests and judge the banks' windows (an absent order, an absent refund) by it."""
    now = clock or _utc_now
    registry = ChannelRegistry()
    hbb_config = load_hbb_config(data_dir, timeout_s=timeout_s)
    if hbb_config is not None:
        hbb = build_hbb_quick_pay_channel(hbb_config, clock=now)
        registry.online["HBB"] = hbb
        registry.refund["HBB"] = hbb
        registry.quick["HBB"] = hbb
        registry._closers.append(hbb)
        # HBB's statement (txnType 76) and payout (txnType 12) channels (docs/banks/hbb-adapter.md).
        hbb_statement = build_hbb_statement_channel(hbb_config, clock=now)
        hbb_payout = build_hbb_payout_channel(hbb_config, clock=now)
        registry.statement["HBB"] = hbb_statement
        registry.payout["HBB"] = hbb_payout
        registry._closers.extend((hbb_statement, hbb_payout))
    try:
        jhb_config = config_from_onboarding(data_dir, timeout_s=timeout_s)
        jhb = build_jhb_direct_debit_channel(jhb_config, clock=now)
    except OnboardingError:
        jhb = None
    if jhb is not None:
        registry.online["JHB"] = jhb
        registry.refund["JHB"] = jhb
        registry.quick["JHB"] = jhb
        registry.debit["JHB"] = jhb
        registry._closers.append(jhb)
        # Without a shared HTTP client the JHB statement channel opens one per download: nothing to close.
        registry.statement["JHB"] = build_jhb_statement_channel(jhb_config, clock=now)
    bcb_config = load_bcb_config(data_dir, timeout_s=timeout_s)
    if bcb_config is not None:
        bcb = BcbDirectDebitChannel(bcb_config)
        registry.debit["BCB"] = bcb
        registry._closers.append(bcb)
        # BCB's statement (200005) and batch payout (100001, 300001 bounces) (docs/banks/bcb.md).
        bcb_statement = BcbStatementChannel(bcb_config)
        bcb_payout = BcbPayoutChannel(bcb_config, clock=now)
        registry.statement["BCB"] = bcb_statement
        registry.payout["BCB"] = bcb_payout
        registry._closers.extend((bcb_statement, bcb_payout))
    _load_tcs_statement(registry, data_dir)
    return registry


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _load_tcs_statement(registry: ChannelRegistry, data_dir: Path) -> None:
    # TCS's POS clearing file, once onboarding has recorded the switch's admin address.
    tcs_config = load_tcs_config(data_dir)
    if tcs_config is not None and tcs_config.admin_url:
        tcs_statement = build_tcs_statement_channel(tcs_config.admin_url, tcs_config.institution_id)
        registry.statement["TCS"] = tcs_statement
        registry._closers.append(tcs_statement)


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
