"""BCB 滨海商业银行: the AIPG dialect (GBK XML, Allinpay style), BANKS.md "BCB" — direct debit
(``100002``), batch payout (``100001`` with the ``300001`` bounce) and the statement (``200005``)."""

from tianpay.channels.bcb.channel import BcbDirectDebitChannel
from tianpay.channels.bcb.onboarding import BcbConfig, load_bcb_config, onboard_bcb
from tianpay.channels.bcb.payout import BcbPayoutChannel
from tianpay.channels.bcb.statement import BcbStatementChannel

__all__ = [
    "BcbConfig",
    "BcbDirectDebitChannel",
    "BcbPayoutChannel",
    "BcbStatementChannel",
    "load_bcb_config",
    "onboard_bcb",
]
