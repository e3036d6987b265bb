"""BCB 滨海商业银行: the AIPG dialect (GBK XML, Allinpay style), BANKS.md "BCB" — direct debit now;
payout (``100001``) and the statement (``200005``) next."""

from tianpay.channels.bcb.channel import BcbDirectDebitChannel
from tianpay.channels.bcb.onboarding import BcbConfig, load_bcb_config, onboard_bcb

__all__ = ["BcbConfig", "BcbDirectDebitChannel", "load_bcb_config", "onboard_bcb"]
