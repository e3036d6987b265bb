"""JHB's `ret_code` vocabulary, in one table so the docs and the code cannot drift apart.

`0000` success, `1000`–`1999` a definite failure (nothing happened, or the order failed), `2000`
processing (ask again with the matching `*.query`). The numbers BANKS.md fixes are kept; the rest
follow LianLian's habit of one code per reason.
"""

from __future__ import annotations

from enum import StrEnum


class RetCode(StrEnum):
    SUCCESS = "0000"
    SIGNATURE_INVALID = "1001"
    DECRYPT_FAILED = "1002"
    PARTNER_UNKNOWN = "1003"
    MESSAGE_MALFORMED = "1004"
    AMOUNT_INVALID = "1005"
    SERVICE_UNKNOWN = "1006"
    ORDER_DUPLICATE = "1010"
    ORDER_NOT_FOUND = "1011"
    ORDER_CLOSED = "1012"
    REFUND_DUPLICATE = "1020"
    REFUND_EXCEEDS_PAYMENT = "1021"
    ORIGINAL_NOT_PAID = "1022"
    BILL_NOT_READY = "1031"
    INSUFFICIENT_FUNDS = "1051"
    OVER_LIMIT = "1061"
    CARD_FROZEN = "1062"
    SMS_WRONG = "1063"
    ELEMENTS_MISMATCH = "1064"
    CARD_INVALID = "1065"
    SMS_TRIES_EXCEEDED = "1066"
    BIND_TOKEN_INVALID = "1067"
    AGREEMENT_INVALID = "1068"
    OUT_OF_MANDATE = "1071"
    BANK_UNAVAILABLE = "1091"
    PROCESSING = "2000"


RET_MSG: dict[RetCode, str] = {
    RetCode.SUCCESS: "交易成功",
    RetCode.SIGNATURE_INVALID: "签名验证失败",
    RetCode.DECRYPT_FAILED: "报文解密失败",
    RetCode.PARTNER_UNKNOWN: "商户不存在或未开通",
    RetCode.MESSAGE_MALFORMED: "报文格式或参数错误",
    RetCode.AMOUNT_INVALID: "金额格式错误",
    RetCode.SERVICE_UNKNOWN: "不支持的服务",
    RetCode.ORDER_DUPLICATE: "商户订单号重复",
    RetCode.ORDER_NOT_FOUND: "订单不存在",
    RetCode.ORDER_CLOSED: "订单已关闭或已超时",
    RetCode.REFUND_DUPLICATE: "退款单号重复",
    RetCode.REFUND_EXCEEDS_PAYMENT: "退款金额超过可退金额",
    RetCode.ORIGINAL_NOT_PAID: "原交易未成功，不能退款",
    RetCode.BILL_NOT_READY: "对账单尚未生成：该日尚未日终",
    RetCode.INSUFFICIENT_FUNDS: "余额不足",
    RetCode.OVER_LIMIT: "超过卡片限额",
    RetCode.CARD_FROZEN: "卡片已冻结",
    RetCode.SMS_WRONG: "短信验证码错误或已过期",
    RetCode.ELEMENTS_MISMATCH: "要素验证不一致",
    RetCode.CARD_INVALID: "卡号无效或已销户",
    RetCode.SMS_TRIES_EXCEEDED: "短信验证码错误次数超限，请重新申请",
    RetCode.BIND_TOKEN_INVALID: "签约令牌无效，请重新申请",
    RetCode.AGREEMENT_INVALID: "协议号不存在或已解约",
    RetCode.OUT_OF_MANDATE: "超出代扣协议范围",
    RetCode.BANK_UNAVAILABLE: "银行系统暂不可用",
    RetCode.PROCESSING: "交易处理中",
}


class JhbError(Exception):
    """A definite failure to be answered with `code`; `detail` refines the stock message."""

    def __init__(self, code: RetCode, detail: str | None = None) -> None:
        super().__init__(f"{code.value} {detail or RET_MSG[code]}")
        self.code = code
        self.message = detail or RET_MSG[code]
