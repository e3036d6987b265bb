"""The HTML of JHB's online-banking pages: login, confirmation and error.

Deliberately plain server-rendered forms (no script) so httpx in tests and Playwright in browser
tests drive them the same way. Every value is escaped; card numbers are shown masked, except the
digits the payer types in the login form.
"""

from __future__ import annotations

import html

from banksim.core.cards import mask
from banksim.core.money import format_yuan
from banksim.jhb.store import Payment

_STYLE = """body{font-family:"PingFang SC","Microsoft YaHei",sans-serif;background:#f3f6f9;color:#222;margin:0}
header{background:#0b5394;color:#fff;padding:.8em 2em;font-size:1.2em}
main{max-width:34em;margin:2em auto;background:#fff;padding:1.5em 2em;border-radius:6px;
box-shadow:0 1px 4px rgba(0,0,0,.1)}dl{display:grid;grid-template-columns:7em 1fr;gap:.4em}
dt{color:#666}dd{margin:0}label{display:block;margin:.8em 0}input{width:100%;padding:.5em;box-sizing:border-box}
button{background:#0b5394;color:#fff;border:0;padding:.6em 2em;border-radius:4px;font-size:1em;margin-top:1em}
.error{color:#b00020;background:#fdecea;padding:.6em;border-radius:4px}.amount{font-size:1.4em;color:#c00}
small{color:#888}"""


def _layout(title: str, content: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>津海银行 · {html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><header>津海银行 Jinhai Bank · 网上银行支付</header><main>{content}</main>"
        "<p style='text-align:center'><small>模拟银行 · 仅供测试</small></p></body></html>"
    )


def _order_summary(payment: Payment, merchant_name: str) -> str:
    return (
        "<dl>"
        f"<dt>收款方</dt><dd>{html.escape(merchant_name)}</dd>"
        f"<dt>商品</dt><dd>{html.escape(payment.subject)}</dd>"
        f"<dt>订单号</dt><dd id='out_trade_no'>{html.escape(payment.out_trade_no)}</dd>"
        f"<dt>金额</dt><dd class='amount' id='amount'>¥{format_yuan(payment.amount_minor)}</dd>"
        "</dl>"
    )


def login_page(payment: Payment, merchant_name: str, error: str = "") -> str:
    error_html = f"<p class='error' id='error'>{html.escape(error)}</p>" if error else ""
    token = html.escape(payment.page_token)
    return _layout(
        "登录",
        f"<h2>登录网上银行</h2>{_order_summary(payment, merchant_name)}{error_html}"
        "<form method='post' action='/ebank/login'>"
        f"<input type='hidden' name='token' value='{token}'>"
        "<label>银行卡号 <input name='card_no' inputmode='numeric' autocomplete='off' required></label>"
        "<label>登录密码 <input name='password' type='password' autocomplete='off' required></label>"
        "<button type='submit' id='login'>登录</button></form>",
    )


def confirm_page(payment: Payment, merchant_name: str, error: str = "") -> str:
    error_html = f"<p class='error' id='error'>{html.escape(error)}</p>" if error else ""
    token = html.escape(payment.page_token)
    return _layout(
        "确认支付",
        f"<h2>确认支付</h2>{_order_summary(payment, merchant_name)}"
        f"<dl><dt>付款卡</dt><dd id='card'>{html.escape(mask(payment.card_no))}</dd></dl>{error_html}"
        "<form method='post' action='/ebank/confirm'>"
        f"<input type='hidden' name='token' value='{token}'>"
        "<button type='submit' id='confirm'>确认支付</button></form>",
    )


def message_page(title: str, message: str, back_url: str = "") -> str:
    link = f"<p><a href='{html.escape(back_url)}' id='back'>返回商户</a></p>" if back_url else ""
    return _layout(title, f"<h2>{html.escape(title)}</h2><p class='error' id='error'>{html.escape(message)}</p>{link}")
