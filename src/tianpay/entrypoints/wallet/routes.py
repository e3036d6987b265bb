"""The wallet pages (``/wallet``): plain HTML forms over HTTP, no script needed.

Besides the balance they bind bank cards (``services.card_bindings``), top up by quick pay, and
list the payer's direct-debit mandates with a revoke button (``services.mandates``, docs/direct-debit.md).

Sessions live in the database (``member_sessions``); the cookie holds a random token (HttpOnly,
SameSite=Lax) replaced at every sign-in. One guard (``entrypoints/web/pages.PageGuard``, as for the
console and the portal) signs each page's member in and checks the CSRF token of every POST, bound
to a per-browser nonce cookie. Forms that move money carry a one-time ``form_key`` so that a second
POST of the same form changes nothing (docs/wallet.md "Double submits"). Pages show masked numbers
only; the error a page shows is the domain error's message, which never repeats what was typed.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Final

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from tianpay.bootstrap import Container
from tianpay.domain.errors import DomainError, IdempotencyConflict, IllegalTransition, NotFound
from tianpay.domain.member import Member, SmsCodeRequired
from tianpay.domain.money import Money
from tianpay.domain.payment import Payment, PaymentMethod, PaymentStatus
from tianpay.domain.payout import REJECTED_IN_REVIEW, Payout
from tianpay.entrypoints.api.deps import ContainerDep
from tianpay.entrypoints.cashier import security
from tianpay.entrypoints.gateway_wiring import gateway_settings
from tianpay.entrypoints.quick_pay_wiring import quick_pay_settings
from tianpay.entrypoints.web.pages import Page, PageGuard, set_cookie
from tianpay.ports.channels import RedirectForm
from tianpay.services import card_bindings, mandates, members, payouts, wallet
from tianpay.services.card_bindings import BindingApplication
from tianpay.services.gateway import pay_at_bank
from tianpay.services.pii import PiiKind, phone_fingerprint, reveal, seal_phone
from tianpay.services.quick_pay import confirm_quick_pay

log = structlog.stdlib.get_logger(__name__)

SESSION_COOKIE: Final = security.WALLET_SESSION_COOKIE
NONCE_COOKIE: Final = "tp_wallet_nonce"
COOKIE_PATH: Final = "/"
_CSRF_SUBJECT: Final = "wallet"
# 16 random bytes: 22 characters, within domain/wallet.py's FORM_KEY_LENGTH_MAX.
FORM_KEY_BYTES: Final = 16
# The cashier's key label (``cashier.security.csrf_secret``), which wallet tokens have always used.
_CSRF_SECRET_LABEL: Final = b"tianpay cashier csrf v1"
_EVENT_NAMES: Final[Mapping[str, str]] = {
    "wallet_top_up.succeeded": "充值",
    "payment.succeeded": "支付",
    "refund.succeeded": "退款",
    "payout.submitted": "提现",
    "payout.failed": "提现失败退回",
    "payout.returned": "提现退票退回",
}
# What a payer reads for the errors these pages meet most; any other shows the domain's message.
_MESSAGES_ZH: Final[Mapping[str, str]] = {
    "card_elements_mismatch": "姓名、身份证号或预留手机号与银行记录不符",
    "card_frozen": "该银行卡已冻结，请联系发卡银行",
    "card_invalid": "银行不受理该卡",
    "card_number_invalid": "卡号无效，请检查后重新输入",
    "card_bank_unsupported": "暂不支持该银行的卡",
    "card_already_bound": "该银行卡已绑定",
    "phone_invalid": "手机号无效",
    "sms_code_invalid": "短信验证码错误，请重新输入",
    "sms_code_expired": "短信验证码已过期，请重新绑卡",
    "sms_code_attempts_exceeded": "验证码错误次数过多，请重新绑卡",
    "card_binding_not_pending": "该绑卡申请已结束，请重新绑卡",
    "bank_unavailable": "银行暂时无法处理，请稍后再试",
    "bank_declined": "银行拒绝了本次绑卡",
    "payment_password_incorrect": "支付密码错误",
    "payment_password_locked": "支付密码已锁定，请3小时后再试或修改支付密码",
    "payment_password_not_set": "请先设置支付密码",
    "payment_password_invalid": "支付密码须为6位数字，且不能是相同或连续的数字",
    "quick_pay_unavailable": "银行暂时无法受理快捷支付，请稍后再试",
    "insufficient_balance": "余额不足",
    "sms_code_incorrect": "短信验证码错误",
    "sms_code_too_many_tries": "验证码错误次数过多，请重新获取",
    "login_failed": "手机号或登录密码错误",
    "bank_switched_off": "该银行暂停充值，请选择其他银行",
    "form_key_invalid": "页面已过期，请刷新后重试。",
    "idempotency_conflict": "该表单已经提交过，请刷新页面后重新填写。",
}
# Why a bound card is greyed out in the quick top-up's list (services.routing.CardOffer.unavailable).
_CARD_UNAVAILABLE_ZH: Final[Mapping[str, str]] = {
    "bank_switched_off": "该银行暂停充值",
}
# The withdrawal page's own words for the codes whose _MESSAGES_ZH text is about top-ups, and why a card
# is greyed out in its list (services.payouts.withdrawal_cards).
_WITHDRAWAL_MESSAGES_ZH: Final[Mapping[str, str]] = {
    "bank_switched_off": "该银行暂停提现，请选择其他银行卡",
    "payout_not_supported": "暂不支持提现到该银行的卡，请选择其他银行卡",
}
_WITHDRAWAL_CARD_UNAVAILABLE_ZH: Final[Mapping[str, str]] = {
    "bank_switched_off": "该银行暂停提现",
    "payout_not_supported": "暂不支持提现到该银行",
}
_WITHDRAWAL_STATUS_ZH: Final[Mapping[str, str]] = {
    "pending_review": "审核中", "created": "处理中", "processing": "处理中", "succeeded": "已到账",
    "failed": "失败（已退回钱包）", "returned": "银行退票（已退回钱包）",
}
# A withdrawal the platform's review refused reads as refused, not as a bank's failure.
_WITHDRAWAL_REJECTED_ZH: Final = "审核未通过（已退回钱包）"
_MANDATE_STATUS_ZH: Final[Mapping[str, str]] = {
    "applied": "待确认", "active": "生效中", "failed": "签约失败", "revoked": "已解约", "expired": "已过期",
}
_PURPOSE_ZH: Final[Mapping[str, str]] = {
    "utility": "生活缴费", "utility:electricity": "电费", "utility:water": "水费", "utility:gas": "燃气费",
}
_HERE = Path(__file__).parent
_ENV = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(prefix="/wallet", include_in_schema=False)


def _resolve(container: Container, token: str | None) -> Member | None:
    return members.member_of_session(container.uow, container.member_tools, token)


def _forbidden(request: Request, container: Container) -> Response:
    log.warning("wallet.csrf_or_session_refused", path=request.url.path)
    return _page(request, container, "message.html", None, status_code=403, error=_Notice("页面已过期，请刷新后重试。"))


# The wallet's tokens keep the key and subject they had before the shared guard (the cashier's key,
# subject "wallet"), so forms open in browsers across a deploy stay valid. Cookies are SameSite=Lax
# and on Path=/ because the cashier reads the wallet session and links into the wallet.
GUARD: Final[PageGuard[Member]] = PageGuard(
    site=_CSRF_SUBJECT,
    login_path="/wallet/login",
    session_cookie=SESSION_COOKIE,
    nonce_cookie=NONCE_COOKIE,
    cookie_path=COOKIE_PATH,
    resolve=_resolve,
    forbidden=_forbidden,
    secret_label=_CSRF_SECRET_LABEL,
    same_site="lax",
    refuses_signed_out_posts=True,
)
# A signed-in member's page: a GET without a session goes to the sign-in page; a POST without a
# session or a valid CSRF token is refused with 403 before the route runs.
SignedIn = Annotated[Page[Member], Depends(GUARD.page)]
# A CSRF-checked form that needs no session (sign-in, sign-up, sign-out).
PostedForm = Annotated[Mapping[str, str], Depends(GUARD.posted_form)]


# ---- sign-up, sign-in, sign-out ------------------------------------------------------------------------


@router.get("")
def home(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    return _page(request, container, "home.html", member, balance=wallet.wallet_balance(container.uow, member.id))


@router.get("/login")
def login_page(request: Request, container: ContainerDep) -> Response:
    return _page(request, container, "login.html", None, next=_safe_next(request.query_params.get("next")))


@router.post("/login")
async def login(request: Request, container: ContainerDep, fields: PostedForm) -> Response:
    tools = container.member_tools
    try:
        member = await run_in_threadpool(
            members.log_in, container.uow, tools, fields.get("phone", ""), fields.get("login_password", "")
        )
    except DomainError as refused:
        return _page(request, container, "login.html", None, status_code=400, error=refused,
                     next=_safe_next(fields.get("next")))
    # A new token at every sign-in (and the old one revoked) defeats session fixation.
    members.end_session(container.uow, tools, request.cookies.get(SESSION_COOKIE))
    token = members.start_session(container.uow, tools, member.id)
    response = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
    _set_session_cookie(container, response, token)
    return security.add_security_headers(response)


@router.post("/logout")
async def logout(request: Request, container: ContainerDep, fields: PostedForm) -> Response:
    members.end_session(container.uow, container.member_tools, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/wallet/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return security.add_security_headers(response)


@router.get("/register")
def register_page(request: Request, container: ContainerDep) -> Response:
    return _page(request, container, "register.html", None, code_sent=False)


@router.post("/register/code")
async def send_registration_code(request: Request, container: ContainerDep, fields: PostedForm) -> Response:
    phone = fields.get("phone", "")
    try:
        await run_in_threadpool(members.send_registration_code, container.uow, container.member_tools, phone)
    except DomainError as refused:
        return _page(request, container, "register.html", None, status_code=400, error=refused, code_sent=False)
    return _page(
        request, container, "register.html", None, code_sent=True,
        phone_token=_seal_phone_for_form(container, request, phone), phone_masked=_masked_phone(container, phone),
    )


@router.post("/register")
async def register(request: Request, container: ContainerDep, fields: PostedForm) -> Response:
    tools = container.member_tools
    phone = _open_phone_from_form(container, request, fields.get("phone_token", ""))
    if phone is None:
        return _forbidden(request, container)
    try:
        member = await run_in_threadpool(
            members.register_in_wallet, container.uow, tools,
            phone, fields.get("sms_code", ""), fields.get("login_password", ""),
        )
    except DomainError as refused:
        return _page(request, container, "register.html", None, status_code=400, error=refused, code_sent=True,
                     phone_token=fields.get("phone_token", ""), phone_masked=_masked_phone(container, phone))
    token = members.start_session(container.uow, tools, member.id)
    response = RedirectResponse("/wallet/real-name" if not member.is_real_name_verified else "/wallet", status_code=303)
    _set_session_cookie(container, response, token)
    return security.add_security_headers(response)


# ---- the member's own settings ------------------------------------------------------------------------------


@router.get("/real-name")
def real_name_page(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    return _page(request, container, "real_name.html", member)


@router.post("/real-name")
async def real_name(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member, fields = page.principal, page.form
    try:
        await run_in_threadpool(
            members.verify_real_name, container.uow, container.member_tools, member.id,
            fields.get("name", ""), fields.get("id_number", ""),
        )
    except DomainError as refused:
        return _page(request, container, "real_name.html", member, status_code=400, error=refused)
    return _see("/wallet")


@router.get("/payment-password")
def payment_password_page(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    # After the first card binding the wallet asks for the payment password before anything else.
    first_card = request.query_params.get("first_card") == "1" and not member.has_payment_password
    return _page(request, container, "payment_password.html", member,
                 notice="银行卡已绑定，请设置支付密码" if first_card else None)


@router.post("/payment-password/code")
async def payment_password_code(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    try:
        await run_in_threadpool(members.send_payment_password_code, container.uow, container.member_tools, member.id)
    except DomainError as refused:
        return _page(request, container, "payment_password.html", member, status_code=400, error=refused)
    return _page(request, container, "payment_password.html", member, notice="验证码已发送")


@router.post("/payment-password")
async def payment_password(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member, fields = page.principal, page.form
    tools = container.member_tools
    password = fields.get("payment_password", "")
    if password != fields.get("payment_password_again", ""):
        return _page(request, container, "payment_password.html", member, status_code=400,
                     error=_Notice("两次输入的支付密码不一致", code="payment_password_mismatch"))
    try:
        if member.has_payment_password:
            await run_in_threadpool(
                members.change_payment_password, container.uow, tools, member.id, fields.get("sms_code", ""), password
            )
        else:
            await run_in_threadpool(members.set_payment_password, container.uow, tools, member.id, password)
    except DomainError as refused:
        return _page(request, container, "payment_password.html", member, status_code=400, error=refused)
    return _see("/wallet")


@router.get("/history")
def history(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    return _page(
        request, container, "history.html", member,
        balance=wallet.wallet_balance(container.uow, member.id),
        lines=wallet.wallet_history(container.uow, member.id),
    )


# ---- top-up ------------------------------------------------------------------------------------------------


@router.get("/top-up")
def top_up_page(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    return _top_up_page(request, container, member)


@router.post("/top-up")
async def top_up(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member, fields = page.principal, page.form
    amount = _yuan_to_money(fields.get("amount", ""))
    # A bank we have no channel for is a malformed form; one an operator switched off is refused by
    # start_top_up with its own message (the page may be older than the switch, or forged).
    if amount is None or fields.get("bank") not in container.channels.online_banking_banks():
        return _top_up_page(request, container, member, status_code=400, error=_Notice("请输入有效的金额并选择银行"))
    return await _top_up_at_bank(request, container, member, amount, fields["bank"], then_pay=None,
                                 form_key=fields.get("form_key", ""))


@router.post("/top-up/quick-pay")
async def top_up_by_quick_pay(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    """Tops up from a bound card: a top-up payment paid by quick pay, credited when the bank says paid."""
    member, fields = page.principal, page.form
    amount = _yuan_to_money(fields.get("amount", ""))
    if amount is None:
        return _top_up_page(request, container, member, status_code=400, error=_Notice("请输入有效的金额"))
    password, card_id = fields.get("payment_password", ""), fields.get("card_id", "")
    try:
        # Both checked before the top-up exists, so a card at a switched-off bank (a page older than the
        # switch, or a forged one) or a mistyped password leaves no unpaid top-up behind.
        await run_in_threadpool(wallet.top_up_card, container.uow, member.id, card_id)
        await run_in_threadpool(members.verify_payment_password, container.uow, container.member_tools, member.id,
                                password)
        paid = await run_in_threadpool(
            _quick_pay_top_up, container, member, amount, card_id, password, fields.get("form_key", ""),
        )
    except DomainError as refused:
        return _top_up_page(request, container, member, status_code=400, error=refused)
    if paid.status is PaymentStatus.FAILED:
        return _top_up_page(request, container, member, status_code=400,
                            error=_Notice("银行未能扣款，充值失败", code="top_up_failed"))
    return _see(f"/wallet/top-ups/{paid.id}/done")


@router.get("/top-ups/{top_up_id}/done")
async def top_up_done(top_up_id: str, request: Request, container: ContainerDep) -> Response:
    """Where a top-up's payer comes back: the waiting wallet payment (if any) is made right away."""
    top_up = wallet.top_up_of(container.uow, top_up_id)
    if top_up is None:
        return _see("/wallet")
    await run_in_threadpool(wallet.pay_after_top_up, container.uow, container.member_tools, top_up_id)
    if top_up.then_pay_payment_id is not None:
        return _see(f"/cashier/{top_up.then_pay_payment_id}/result")
    return _see("/wallet")


# ---- withdrawal to a bound card (docs/wallet.md "Withdrawals") ----------------------------------------------


@router.get("/withdraw")
def withdraw_page(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    return _withdraw_page(request, container, member)


@router.post("/withdraw")
async def withdraw(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    """Withdraws to a bound card, confirmed with the payment password; the worker sends it to the bank."""
    member, fields = page.principal, page.form
    amount = _yuan_to_money(fields.get("amount", ""))
    if amount is None:
        return _withdraw_page(request, container, member, status_code=400, error=_Notice("请输入有效的金额"))
    try:
        await run_in_threadpool(
            lambda: payouts.request_withdrawal(
                container.uow, container.member_tools, container.channels, member.id,
                card_id=fields.get("card_id", ""), amount=amount, payment_password=fields.get("payment_password", ""),
                form_key=fields.get("form_key", ""),
            )
        )
    except IdempotencyConflict as conflict:
        return _withdraw_page(request, container, member, status_code=409, error=conflict)
    except DomainError as refused:
        wording = _WITHDRAWAL_MESSAGES_ZH.get(refused.code)
        error = refused if wording is None else _Notice(wording, code=refused.code)
        return _withdraw_page(request, container, member, status_code=400, error=error)
    return _see("/wallet/withdraw")


# ---- paying a payment from the wallet (reached from the cashier) ---------------------------------------------


@router.get("/pay/{payment_id}")
def pay_page(payment_id: str, request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    payment = _wallet_payable(container, payment_id)
    if payment is None:
        return _see(f"/cashier/{payment_id}/result")
    return _pay_page(request, container, member, payment)


@router.post("/pay/{payment_id}")
async def pay(payment_id: str, request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member, fields = page.principal, page.form
    payment = _wallet_payable(container, payment_id)
    if payment is None:
        return _see(f"/cashier/{payment_id}/result")
    try:
        await run_in_threadpool(
            wallet.confirm_wallet_payment, container.uow, container.member_tools, payment_id,
            member_id=member.id, payment_password=fields.get("payment_password", ""),
            sms_code=fields.get("sms_code") or None,
        )
    except SmsCodeRequired as needed:
        return _pay_page(request, container, member, payment, error=needed, sms_needed=True)
    except DomainError as refused:
        return _pay_page(request, container, member, payment, error=refused, status_code=400)
    return _see(f"/cashier/{payment_id}/result")


@router.post("/pay/{payment_id}/top-up")
async def top_up_and_pay(payment_id: str, request: Request, container: ContainerDep, page: SignedIn) -> Response:
    """Tops up the shortfall (or the whole amount) at a bank, then pays from the wallet automatically."""
    member, fields = page.principal, page.form
    payment = _wallet_payable(container, payment_id)
    if payment is None:
        return _see(f"/cashier/{payment_id}/result")
    if fields.get("bank") not in container.channels.online_banking_banks():
        return _pay_page(request, container, member, payment, error=_Notice("请选择银行"), status_code=400)
    try:
        # The password authorises the payment now; the wallet pays it when the top-up is credited.
        await run_in_threadpool(
            members.verify_payment_password, container.uow, container.member_tools, member.id,
            fields.get("payment_password", ""),
        )
    except DomainError as refused:
        return _pay_page(request, container, member, payment, error=refused, status_code=400)
    balance = wallet.wallet_balance(container.uow, member.id)
    shortfall = payment.amount - balance
    amount = payment.amount if fields.get("amount_choice") == "whole" or not shortfall.is_positive else shortfall
    return await _top_up_at_bank(request, container, member, amount, fields["bank"], then_pay=payment.id,
                                 form_key=fields.get("form_key", ""))


# ---- bank cards (quick pay) -----------------------------------------------------------------------------


@router.get("/cards")
def cards_page(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    return _cards_page(request, container, member)


@router.post("/cards")
async def apply_card_binding(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    """Sends the card and reserved phone, with the member's real name and ID number, to the card's bank."""
    member, fields = page.principal, page.form
    if not member.is_real_name_verified or member.name is None or member.id_number is None:
        return _cards_page(request, container, member, status_code=400, error=_Notice("请先完成实名认证"))
    application = BindingApplication(
        member_id=member.id,
        card_number=fields.get("card_number", "").replace(" ", ""),
        name=member.name,
        id_number=reveal(container.member_tools.cipher, PiiKind.ID_NUMBER, member.id_number),
        phone=fields.get("phone", "").strip(),
    )
    try:
        binding = await run_in_threadpool(
            card_bindings.apply_binding, container.uow, container.clock, container.ids, container.channels,
            container.member_tools.cipher, application, merchant_id=None,
        )
    except DomainError as refused:
        return _cards_page(request, container, member, status_code=400, error=refused)
    return _page(request, container, "card_code.html", member, binding=binding)


@router.post("/cards/{binding_id}/confirm")
async def confirm_card_binding(binding_id: str, request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member, fields = page.principal, page.form
    try:
        confirmed = await run_in_threadpool(
            lambda: card_bindings.confirm_binding(
                container.uow, container.clock, container.channels, container.member_tools.cipher,
                binding_id, fields.get("sms_code", ""), merchant_id=None, member_id=member.id,
            )
        )
    except DomainError as refused:
        return _binding_refused(request, container, member, binding_id, refused)
    if confirmed.needs_payment_password:
        return _see("/wallet/payment-password?first_card=1")
    return _see("/wallet/cards")


@router.post("/cards/{binding_id}/unbind")
async def unbind_card(binding_id: str, request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    try:
        await run_in_threadpool(
            lambda: card_bindings.unbind(
                container.uow, container.clock, container.channels, container.member_tools.cipher,
                binding_id, merchant_id=None, member_id=member.id,
            )
        )
    except DomainError as refused:
        return _cards_page(request, container, member, status_code=400, error=refused)
    return _see("/wallet/cards")


# ---- direct-debit mandates (代扣授权) -------------------------------------------------------------------


@router.get("/mandates")
def mandates_page(request: Request, container: ContainerDep, page: SignedIn) -> Response:
    member = page.principal
    return _mandates_page(request, container, member)


@router.get("/mandates/{mandate_id}/revoke")
def revoke_mandate_page(mandate_id: str, request: Request, container: ContainerDep, page: SignedIn) -> Response:
    """The confirmation step: revoking cannot be undone, so it is never one click from the list."""
    member = page.principal
    item = _member_mandate(container, member, mandate_id)
    if item is None or item.mandate.status.value != "active":
        return _mandates_page(request, container, member, status_code=404, error=_Notice("未找到生效中的代扣授权"))
    return _page(request, container, "mandate_revoke.html", member, item=item, purpose_name=_purpose_name)


@router.post("/mandates/{mandate_id}/revoke")
async def revoke_mandate(mandate_id: str, request: Request, container: ContainerDep, page: SignedIn) -> Response:
    """Revoked on the platform first, then at the bank; the merchant gets ``mandate.revoked``."""
    member, fields = page.principal, page.form
    if fields.get("confirm") != "yes":
        return _see(f"/wallet/mandates/{mandate_id}/revoke")
    try:
        await run_in_threadpool(
            lambda: mandates.revoke_mandate(
                container.uow, container.clock, container.channels, container.member_tools.cipher, mandate_id,
                merchant_id=None, member_id=member.id, cause="revoked by the payer in the wallet",
            )
        )
    except NotFound:
        # Another member's mandate looks exactly like a missing one.
        return _mandates_page(request, container, member, status_code=404, error=_Notice("未找到该代扣授权"))
    except IllegalTransition:
        return _mandates_page(request, container, member, status_code=409, error=_Notice("该代扣授权已结束，无需解约"))
    except DomainError as refused:
        return _mandates_page(request, container, member, status_code=400, error=refused)
    return _see("/wallet/mandates")


# ---- development ----------------------------------------------------------------------------------------------


@router.get("/_dev/sms")
def dev_sms(request: Request, container: ContainerDep) -> Response:
    """The platform's SMS outbox for one phone, newest first: only when Settings.dev_sms_outbox is on."""
    if not container.settings.dev_sms_outbox:
        return JSONResponse({"error": "not found"}, status_code=404)
    try:
        fingerprint = phone_fingerprint(container.member_tools.cipher, request.query_params.get("phone", ""))
    except DomainError:
        return JSONResponse({"error": "phone is a mainland China mobile number"}, status_code=400)
    messages = container.sms_outbox.messages_to(fingerprint)
    listed = [{"phone": m.phone_masked, "text": m.text, "created_at": m.created_at.isoformat()} for m in messages]
    return JSONResponse({"messages": listed}, headers={"Cache-Control": "no-store"})


# ---- helpers -------------------------------------------------------------------------------------------------


class _Notice:
    """An error of the page itself (not the domain's), shown like one."""

    def __init__(self, message: str, *, code: str = "bad_request") -> None:
        self.message = message
        self.code = code


def _cards_page(
    request: Request, container: Container, member: Member, *, status_code: int = 200,
    error: DomainError | _Notice | None = None,
) -> Response:
    cards = card_bindings.cards_of(container.uow, member.id, merchant_id=None)
    return _page(request, container, "cards.html", member, status_code=status_code, error=error, cards=cards)


def _mandates_page(
    request: Request, container: Container, member: Member, *, status_code: int = 200,
    error: DomainError | _Notice | None = None,
) -> Response:
    found = mandates.mandates_of_member(container.uow, member.id)
    return _page(request, container, "mandates.html", member, status_code=status_code, error=error,
                 mandates=found, status_name=lambda status: _MANDATE_STATUS_ZH.get(status, status),
                 purpose_name=_purpose_name)


def _member_mandate(container: Container, member: Member, mandate_id: str) -> mandates.MemberMandate | None:
    return next((m for m in mandates.mandates_of_member(container.uow, member.id) if m.mandate.id == mandate_id), None)


def _purpose_name(purpose: str) -> str:
    return _PURPOSE_ZH.get(purpose) or _PURPOSE_ZH.get(purpose.split(":")[0], purpose)


def _binding_refused(
    request: Request, container: Container, member: Member, binding_id: str, refused: DomainError
) -> Response:
    """A wrong code with tries left asks again on the same binding; anything else ends it: bind again."""
    if refused.code != "sms_code_invalid":
        return _cards_page(request, container, member, status_code=400, error=refused)
    try:
        binding = card_bindings.get_binding(container.uow, binding_id, merchant_id=None, member_id=member.id)
    except DomainError:
        return _cards_page(request, container, member, status_code=400, error=refused)
    if binding.sms_tries_left <= 0:
        return _cards_page(request, container, member, status_code=400, error=refused)
    return _page(request, container, "card_code.html", member, status_code=400, error=refused, binding=binding)


def _top_up_page(
    request: Request, container: Container, member: Member, *, status_code: int = 200,
    error: DomainError | _Notice | None = None,
) -> Response:
    return _page(
        request, container, "top_up.html", member, status_code=status_code, error=error,
        banks=wallet.top_up_banks(container.uow, container.channels.online_banking_banks()),
        cards=wallet.top_up_cards(container.uow, member.id),
        unavailable_reason=lambda code: _CARD_UNAVAILABLE_ZH.get(code, code),
    )


def _withdraw_page(
    request: Request, container: Container, member: Member, *, status_code: int = 200,
    error: DomainError | _Notice | None = None,
) -> Response:
    return _page(
        request, container, "withdraw.html", member, status_code=status_code, error=error,
        balance=wallet.wallet_balance(container.uow, member.id),
        cards=payouts.withdrawal_cards(container.uow, container.channels, member.id),
        unavailable_reason=lambda code: _WITHDRAWAL_CARD_UNAVAILABLE_ZH.get(code, code),
        withdrawals=payouts.withdrawals_of(container.uow, member.id),
        status_name=_withdrawal_status_zh,
    )


def _withdrawal_status_zh(payout: Payout) -> str:
    if payout.failure_code == REJECTED_IN_REVIEW:
        return _WITHDRAWAL_REJECTED_ZH
    status = payout.status.public
    return _WITHDRAWAL_STATUS_ZH.get(status, status)


def _quick_pay_top_up(
    container: Container, member: Member, amount: Money, card_id: str, password: str, form_key: str
) -> Payment:
    """Creates the top-up and charges the bound card; the wallet is credited when the attempt succeeds.

    A second POST of the same form finds the first top-up and returns it as it is: the card is
    charged once per form, however often the form is sent.
    """
    base_url = container.settings.base_url.rstrip("/")
    # The caller checked the card (wallet.top_up_card) before this; confirm_quick_pay checks it again.
    started = wallet.start_top_up(
        container.uow, container.member_tools, member.id, amount,
        return_url=f"{base_url}/wallet/top-ups/{{top_up_id}}/done", method=PaymentMethod.QUICK_PAY,
        form_key=form_key,
    )
    if started.replayed:
        return started.payment
    return confirm_quick_pay(
        container.uow, container.clock, container.ids, container.channels, container.member_tools,
        quick_pay_settings(container), merchant_id=None, payment_id=started.payment.id, card_id=card_id,
        payment_password=password, member_id=member.id,
    )


async def _top_up_at_bank(
    request: Request, container: Container, member: Member, amount: Money, bank: str, *, then_pay: str | None,
    form_key: str,
) -> Response:
    """Starts (or, for a second POST of the same form, finds) the top-up and sends the payer to the bank.

    A repeated form gets a new attempt on the same top-up payment, so the payer still reaches the bank
    while at most one attempt of the one payment can succeed and credit the wallet.
    """
    base_url = container.settings.base_url.rstrip("/")
    try:
        started = await run_in_threadpool(
            lambda: wallet.start_top_up(
                container.uow, container.member_tools, member.id, amount,
                return_url=f"{base_url}/wallet/top-ups/{{top_up_id}}/done", bank=bank, then_pay_payment_id=then_pay,
                form_key=form_key,
            )
        )
        if started.replayed and started.payment.status.is_final:
            return _see(f"/wallet/top-ups/{started.payment.id}/done")
        form = await run_in_threadpool(
            pay_at_bank, container.uow, container.clock, container.ids, container.channels,
            gateway_settings(container), started.payment.id, bank,
        )
    except DomainError as refused:
        return _top_up_page(request, container, member, status_code=400, error=refused)
    return _render_redirect(request, container, member, form)


def _pay_page(
    request: Request, container: Container, member: Member, payment: Payment, *, status_code: int = 200, **context: Any
) -> Response:
    balance = wallet.wallet_balance(container.uow, member.id)
    return _page(
        request, container, "pay.html", member, status_code=status_code,
        payment=payment, balance=balance, shortfall=payment.amount - balance,
        banks=wallet.top_up_banks(container.uow, container.channels.online_banking_banks()),
        # The quick-pay page for the whole amount is the card-binding work's (cashier quick pay).
        quick_pay_url=f"/cashier/{payment.id}/quick-pay",
        **context,
    )


def _wallet_payable(container: Container, payment_id: str) -> Payment | None:
    with container.uow() as uow:
        payment = uow.payments.get(payment_id)
    if payment is None or payment.method not in (PaymentMethod.WALLET, PaymentMethod.CASHIER):
        return None
    if payment.status.is_final or payment.is_expired_at(container.clock.now()):
        return None
    return payment


def _seal_phone_for_form(container: Container, request: Request, phone: str) -> str:
    # The sign-up form carries the phone to its second step sealed by the vault and bound to this
    # browser's nonce, so the page never holds the number in clear.
    nonce, _ = GUARD.nonce(request)
    return container.vault.seal(phone.encode(), context=f"wallet_register:{nonce}")


def _open_phone_from_form(container: Container, request: Request, token: str) -> str | None:
    nonce = request.cookies.get(NONCE_COOKIE) or ""
    try:
        return container.vault.open(token, context=f"wallet_register:{nonce}").decode()
    except ValueError:
        return None


def _masked_phone(container: Container, phone: str) -> str:
    try:
        return seal_phone(container.member_tools.cipher, phone).masked
    except DomainError:
        return ""


def _page(
    request: Request,
    container: Container,
    template: str,
    member: Member | None,
    *,
    status_code: int = 200,
    error: DomainError | _Notice | None = None,
    form_targets: tuple[str, ...] = (),
    **context: Any,
) -> Response:
    nonce, is_new = GUARD.nonce(request)
    html = _ENV.get_template(template).render(
        member=member,
        csrf_token=GUARD.csrf_token(container, nonce),
        error=_error_text(error),
        error_code=None if error is None else error.code,
        yuan=_yuan,
        signed_yuan=_signed_yuan,
        event_name=lambda event: _EVENT_NAMES.get(event, event),
        # Each form that moves money carries its own one-time key (docs/wallet.md "Double submits").
        new_form_key=lambda: secrets.token_urlsafe(FORM_KEY_BYTES),
        **context,
    )
    response = GUARD.finish(container, HTMLResponse(html, status_code=status_code), nonce, is_new)
    return security.add_security_headers(response, form_targets=form_targets)


def _error_text(error: DomainError | _Notice | None) -> str | None:
    """What the payer reads: a page's own notice as it is worded, a domain error in the page's Chinese."""
    if error is None:
        return None
    if isinstance(error, _Notice):
        return error.message
    return _MESSAGES_ZH.get(error.code, error.message)


def _render_redirect(request: Request, container: Container, member: Member, form: RedirectForm) -> Response:
    return _page(request, container, "redirect.html", member, form=form, form_targets=(security.origin_of(form.url),))


def _set_session_cookie(container: Container, response: Response, token: str) -> None:
    lifetime_s = int(container.member_tools.session_lifetime.total_seconds())
    set_cookie(container, response, SESSION_COOKIE, token, path=COOKIE_PATH, max_age_s=lifetime_s, same_site="lax")


def _safe_next(target: str | None) -> str:
    # Only our own pages: an open redirect after sign-in would hand phishers a trusted link.
    if target and target.startswith(("/wallet", "/cashier/")) and "//" not in target and "\\" not in target:
        return target
    return "/wallet"


def _see(path: str) -> Response:
    return security.add_security_headers(RedirectResponse(path, status_code=303))


def _yuan_to_money(text: str) -> Money | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    minor = value * 100
    if minor != minor.to_integral_value() or minor <= 0 or minor > 10**10:
        return None
    return Money.cny(int(minor))


def _yuan(amount: Money) -> str:
    major, minor = divmod(amount.minor, 100)
    return f"¥{major:,}.{minor:02d}"


def _signed_yuan(amount: Money) -> str:
    return ("+" if amount.minor >= 0 else "-") + _yuan(Money(abs(amount.minor), amount.currency))

