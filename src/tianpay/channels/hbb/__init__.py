"""HBB 华北银行: the adapter for its ACP 5.1.0 dialect (signed key=value forms, BANKS.md "HBB").

``wire`` holds the bank's messages, ``signing`` the signMethod 01 rules, ``mapping`` the pure
translation and status tables, ``client`` the HTTP exchanges, and ``onboarding`` how the platform
gets its merchant number and HBB's certificates. Build the channel with ``build_hbb_channel``.
"""

from __future__ import annotations

from tianpay.channels.hbb.client import HbbChannel, build_hbb_channel
from tianpay.channels.hbb.config import HbbConfig
from tianpay.channels.hbb.onboarding import OnboardingFailed, load_hbb_config, onboard_hbb

__all__ = ["HbbChannel", "HbbConfig", "OnboardingFailed", "build_hbb_channel", "load_hbb_config", "onboard_hbb"]
