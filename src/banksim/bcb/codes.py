"""BCB's result codes (BANKS.md "BCB"; research/protocols.md §6, Allinpay's three classes).

Success ``0000``/``4000``; intermediate ``2000``/``2001``/``2003``/``2005``/``2007``/``2008``
(query, never resend); every other code is a failure. The codes from ``3008`` on are this
simulator's choices, documented in docs/banks/bcb.md.
"""

from __future__ import annotations

from enum import StrEnum


class RetCode(StrEnum):
    SUCCESS = "0000"
    ACCEPTED = "4000"
    PROCESSING = "2000"
    RESERVE_INSUFFICIENT = "1000"
    MALFORMED = "1001"
    NO_SUCH_REQUEST = "1002"
    STATEMENT_NOT_READY = "1003"
    DUPLICATE_REQ_SN = "1102"
    TOTAL_ITEM_MISMATCH = "1103"
    TOTAL_SUM_MISMATCH = "1104"
    SIGNATURE = "1106"
    INSUFFICIENT_FUNDS = "3008"
    CARD_INVALID = "3014"
    NAME_MISMATCH = "3028"
    ACCOUNT_CLOSED = "3045"
    OVER_LIMIT = "3061"
    ACCOUNT_FROZEN = "3062"
    SMS_WRONG = "3063"
    ELEMENTS_MISMATCH = "3064"
    OUT_OF_MANDATE = "3071"
    MANDATE_INVALID = "3072"
    BANK_UNAVAILABLE = "3999"


MESSAGES: dict[str, str] = {
    "0000": "处理成功", "4000": "已受理", "2000": "处理中", "1000": "备付金余额不足", "1001": "报文解析错误",
    "1002": "无此交易", "1003": "对账文件尚未生成", "1102": "请求流水号重复", "1103": "总笔数与明细不符",
    "1104": "总金额与明细不符", "1106": "签名验证失败", "3008": "余额不足",
    "3014": "无效卡号", "3028": "户名不符", "3045": "账户已销户", "3061": "超过单笔限额", "3062": "账户已冻结",
    "3063": "短信验证码错误或已失效", "3064": "四要素不符", "3071": "超出代扣协议范围",
    "3072": "代扣协议不存在或未生效", "3999": "银行系统繁忙，交易未受理",
}


class BcbError(Exception):
    def __init__(self, code: RetCode, message: str | None = None) -> None:
        super().__init__(message or MESSAGES[code.value])
        self.code = code
        self.message = message or MESSAGES[code.value]
