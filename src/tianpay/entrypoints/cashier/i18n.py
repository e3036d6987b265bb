"""The cashier's words in Chinese (the default) and English, chosen by ``?lang=`` or a cookie."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

DEFAULT_LANG: Final = "zh"
LANGS: Final = ("zh", "en")

TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "zh": {
        "html_lang": "zh-CN",
        "brand": "天付 收银台",
        "other_lang": "English",
        "other_lang_code": "en",
        "title": "订单支付",
        "merchant": "商户",
        "subject": "商品",
        "order_no": "订单号",
        "amount": "应付金额",
        "time_left": "剩余支付时间",
        "expired_now": "订单已超时",
        "choose_bank": "选择网上银行",
        "pay": "去银行付款",
        "no_banks": "暂无可用的支付银行，请稍后再试。",
        "pay_with_wallet": "使用天付钱包余额支付",
        "processing_note": "您已前往银行付款。如未完成，可重新选择银行；同一订单最多扣款一次。",
        "bank_unavailable": "该银行暂时无法受理，请选择其他银行。",
        "redirect_title": "正在前往银行",
        "redirect_hint": "正在跳转到银行支付页面，如未自动跳转，请点击下方按钮。",
        "redirect_button": "前往银行付款",
        "result_title": "支付结果",
        "result_succeeded": "支付成功",
        "result_failed": "支付失败",
        "result_processing": "正在确认支付结果",
        "result_processing_hint": "银行正在处理，本页将自动刷新。已扣款的订单不会重复扣款。",
        "result_closed": "订单已关闭",
        "result_closed_hint": "订单已超时或已被商户关闭，如需购买请返回商户重新下单。",
        "result_payable": "订单尚未支付",
        "check_again": "重新查询",
        "choose_again": "重新选择银行",
        "back_to_merchant": "返回商户",
        "forbidden": "页面已过期，请刷新后重试。",
        "not_found": "订单不存在。",
        "bad_request": "请求无效。",
        "footer": "天付支付 · 第三方支付平台（演示环境，不涉及真实资金）",
    },
    "en": {
        "html_lang": "en",
        "brand": "Tianpay Checkout",
        "other_lang": "中文",
        "other_lang_code": "zh",
        "title": "Pay for your order",
        "merchant": "Merchant",
        "subject": "Item",
        "order_no": "Order no.",
        "amount": "Amount due",
        "time_left": "Time left to pay",
        "expired_now": "This order has expired",
        "choose_bank": "Choose your online bank",
        "pay": "Pay at the bank",
        "no_banks": "No bank can take this payment right now; please try again later.",
        "pay_with_wallet": "Pay from my Tianpay wallet",
        "processing_note": "You went to a bank to pay. If you did not finish, you may choose a bank again; "
        "you will never be charged twice for one order.",
        "bank_unavailable": "That bank cannot take payments right now; please choose another.",
        "redirect_title": "Taking you to your bank",
        "redirect_hint": "You are being sent to your bank's payment page. If nothing happens, press the button.",
        "redirect_button": "Continue to the bank",
        "result_title": "Payment result",
        "result_succeeded": "Payment succeeded",
        "result_failed": "Payment failed",
        "result_processing": "Confirming your payment",
        "result_processing_hint": "The bank is still working on it; this page refreshes by itself. "
        "You will never be charged twice.",
        "result_closed": "This order is closed",
        "result_closed_hint": "It expired or the merchant closed it; go back to the merchant to order again.",
        "result_payable": "This order is not paid yet",
        "check_again": "Check again",
        "choose_again": "Choose a bank again",
        "back_to_merchant": "Back to the merchant",
        "forbidden": "This page has expired; please reload it and try again.",
        "not_found": "No such order.",
        "bad_request": "Invalid request.",
        "footer": "Tianpay · third-party payments (demo: no real money moves)",
    },
}


def texts(lang: str) -> Mapping[str, str]:
    return TEXTS.get(lang, TEXTS[DEFAULT_LANG])
