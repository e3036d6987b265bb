"""JHB 津海银行: the adapter for its JSON envelope sealed with SM4 and signed with SM2 (BANKS.md).

`wire` holds JHB's messages as JHB names them, `signing` the 国密 envelope, `mapping` the pure
translation to the platform's outcomes, `client` the single HTTP exchange, `channel` the port
implementation and `onboarding` the out-of-band key exchange; `statement` reads `bill.download`.
"""

from tianpay.channels.jhb.channel import JhbChannel, PaymentFormUnavailable, build_jhb_channel
from tianpay.channels.jhb.config import JhbConfig

__all__ = ["JhbChannel", "JhbConfig", "PaymentFormUnavailable", "build_jhb_channel"]
