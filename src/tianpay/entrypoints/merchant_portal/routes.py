"""The merchant portal (``/merchant``): server-rendered pages for a merchant's own staff.

Every signed-in route takes ``PortalPage`` (one dependency: a verified session or a redirect to the
login page, and for a POST a valid CSRF token or 403), and every query names the session's merchant,
so a user of merchant A asking for merchant B's payment gets the same 404 as for a payment that does
not exist. Writes go through the services the merchant API uses (refunds, keys, webhooks, resends).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from tianpay.bootstrap import Container
from tianpay.domain.errors import DomainError, NotFound
from tianpay.domain.merchant_user import LoginFailed, LoginLocked, TotpInvalid
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentMethod, PaymentStatus
from tianpay.domain.refund import RefundRequest
from tianpay.domain.statistics import business_date_of
from tianpay.entrypoints.api.deps import ContainerDep, get_container
from tianpay.entrypoints.api.refunds import requery_policy
from tianpay.entrypoints.api.settlements import statement_csv
from tianpay.entrypoints.iso_dates import DATE_FORMAT, parse_iso_date
from tianpay.entrypoints.web import charts
from tianpay.entrypoints.web.pages import (
    Page,
    PageGuard,
    PageInterrupt,
    read_form,
    safe_next,
    see_other,
    set_cookie,
    static_response,
)
from tianpay.ports.merchant_portal import PortalPaymentFilter
from tianpay.services import merchant_portal as portal
from tianpay.services import merchant_users, merchants, notifications, payouts, refunds, settlement
from tianpay.services.merchant_users import PortalTools, SignedIn
from tianpay.services.merchants import KeyRequest, KeyTools

from .i18n import DEFAULT_LANG, LANGS, texts

log = structlog.stdlib.get_logger(__name__)

SESSION_COOKIE: Final = "tp_merchant_session"
NONCE_COOKIE: Final = "tp_merchant_nonce"
LANG_COOKIE: Final = "tp_merchant_lang"
COOKIE_PATH: Final = "/merchant"
LANG_MAX_AGE_S: Final = 365 * 24 * 3600
LIST_LIMIT: Final = 30
SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
STATIC_FILES: Final[Mapping[str, str]] = {"portal.css": "text/css; charset=utf-8"}
_ERROR_KEYS: Final = {"login_failed", "login_locked", "totp_invalid"}

_HERE = Path(__file__).parent
_ENV = Environment(
    loader=ChoiceLoader([FileSystemLoader(_HERE / "templates"), FileSystemLoader(_HERE.parent / "web" / "templates")]),
    autoescape=select_autoescape(enabled_extensions=("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(prefix="/merchant", include_in_schema=False)


def portal_tools(container: Container) -> PortalTools:
    return PortalTools(container.clock, container.ids, container.member_tools.hasher, container.vault)


def _key_tools(container: Container) -> KeyTools:
    return KeyTools(container.ids, container.clock, container.key_issuer, container.vault)


def _resolve(container: Container, token: str | None) -> SignedIn | None:
    return merchant_users.signed_in(container.uow, portal_tools(container), token)


def _forbidden(request: Request, container: Container) -> Response:
    log.warning("merchant_portal.csrf_refused", path=request.url.path)
    return _render(request, container, "message.html", None, status_code=403, message_key="forbidden")


GUARD: Final[PageGuard[SignedIn]] = PageGuard(
    site="merchant",
    login_path="/merchant/login",
    session_cookie=SESSION_COOKIE,
    nonce_cookie=NONCE_COOKIE,
    cookie_path=COOKIE_PATH,
    resolve=_resolve,
    forbidden=_forbidden,
)


async def _verified_page(request: Request) -> Page[SignedIn]:
    page = await GUARD.page(request)
    if not page.principal.is_verified:
        raise PageInterrupt(see_other("/merchant/totp"))
    return page


PortalPage = Annotated[Page[SignedIn], Depends(_verified_page)]


# ---- sign-in, TOTP, sign-out ---------------------------------------------------------------------------


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    return static_response(_HERE / "static", name, STATIC_FILES)


@router.get("/login")
def login_page(request: Request, container: ContainerDep) -> Response:
    return _render(request, container, "login.html", None, next=_safe_next(request.query_params.get("next")))


@router.post("/login")
async def login(request: Request, container: ContainerDep) -> Response:
    if not await GUARD.csrf_ok(container, request):
        return _forbidden(request, container)
    fields = await read_form(request)
    tools = portal_tools(container)
    try:
        user = await run_in_threadpool(
            merchant_users.log_in, container.uow, tools, fields.get("username", ""), fields.get("password", "")
        )
    except (LoginFailed, LoginLocked) as refused:
        log.info("merchant_portal.login_refused", code=refused.code)
        return _render(request, container, "login.html", None, status_code=400, error_key=refused.code,
                       next=_safe_next(fields.get("next")))
    # A new token at every sign-in (the old one revoked) defeats session fixation.
    merchant_users.end_session(container.uow, tools, request.cookies.get(SESSION_COOKIE))
    token = merchant_users.start_session(container.uow, tools, user)
    target = _safe_next(fields.get("next")) if not user.is_totp_enabled else "/merchant/totp"
    response = see_other(target)
    set_cookie(container, response, SESSION_COOKIE, token, path=COOKIE_PATH,
               max_age_s=int(tools.session_lifetime.total_seconds()))
    return response


@router.get("/totp")
def totp_page(request: Request, container: ContainerDep) -> Response:
    if _resolve(container, request.cookies.get(SESSION_COOKIE)) is None:
        return see_other("/merchant/login")
    return _render(request, container, "totp.html", None)


@router.post("/totp")
async def totp_verify(request: Request, container: ContainerDep) -> Response:
    if not await GUARD.csrf_ok(container, request):
        return _forbidden(request, container)
    token = request.cookies.get(SESSION_COOKIE)
    if token is None or _resolve(container, token) is None:
        return see_other("/merchant/login")
    fields = await read_form(request)
    try:
        merchant_users.verify_totp(container.uow, portal_tools(container), token, fields.get("code", "").strip())
    except (TotpInvalid, LoginLocked) as refused:
        return _render(request, container, "totp.html", None, status_code=400, error_key=refused.code)
    return see_other("/merchant")


@router.post("/logout")
async def logout(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    merchant_users.end_session(container.uow, portal_tools(container), page.session_token)
    response = see_other("/merchant/login")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


@router.get("/security")
def security_page(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    return _render(request, container, "security.html", page)


@router.post("/security/totp")
def totp_begin(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    enrolment = merchant_users.begin_totp_setup(container.uow, portal_tools(container), page.principal.user)
    return _render(request, container, "security.html", page, enrolment=enrolment)


@router.post("/security/totp/confirm")
def totp_confirm(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    try:
        merchant_users.confirm_totp_setup(
            container.uow, portal_tools(container), page.principal.user, page.form.get("code", "").strip()
        )
    except TotpInvalid:
        return _render(request, container, "security.html", page, status_code=400, error_key="totp_invalid")
    return see_other("/merchant/security")


# ---- dashboard ------------------------------------------------------------------------------------------


@router.get("")
def dashboard(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    merchant_id = page.principal.user.merchant_id
    today = business_date_of(container.clock.now())
    board = portal.dashboard(container.read_uow, merchant_id, today)
    daily = [charts.Bar(day.isoformat(), totals.succeeded_minor) for day, totals in board.days.items()]
    return _render(
        request, container, "dashboard.html", page, board=board, today=today,
        daily_chart=charts.column_chart(daily, name="daily-volume", format_value=_yuan_minor),
        method_chart=charts.bar_list(
            [charts.Bar(m, v.succeeded_minor) for m, v in board.by_method.items()], name="by-method",
            format_value=_yuan_minor,
        ),
        bank_chart=charts.bar_list(
            [charts.Bar(b or "—", v.succeeded_minor) for b, v in board.by_bank.items()], name="by-bank",
            format_value=_yuan_minor,
        ),
        rate=_rate,
    )


# ---- payments ------------------------------------------------------------------------------------------


@router.get("/payments")
def payments_page(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    query = request.query_params
    error_key: str | None = None
    found: portal.PaymentSearchPage | None = None
    try:
        filters = _filters(query)
        found = portal.search_payments(container.uow, page.principal.user.merchant_id, filters,
                                       after=query.get("after") or None)
    except DomainError as refused:
        error_key, found = refused.code, None
    next_url = None
    if found is not None and found.next_after is not None:
        kept = {k: v for k, v in query.items() if k not in ("after", "lang") and v}
        next_url = "/merchant/payments?" + urlencode({**kept, "after": found.next_after})
    return _render(
        request, container, "payments.html", page, status_code=400 if error_key else 200, error_key=error_key,
        error_message=None, found=found, query=query, next_url=next_url,
        statuses=[s.value for s in PaymentStatus], methods=[m.value for m in PaymentMethod],
        banks=("HBB", "JHB", "BCB", "TCS"),
    )


@router.get("/payments/{payment_id}")
def payment_page(request: Request, container: ContainerDep, page: PortalPage, payment_id: str) -> Response:
    return _payment_detail(request, container, page, payment_id)


@router.post("/payments/{payment_id}/refunds")
def refund_payment(request: Request, container: ContainerDep, page: PortalPage, payment_id: str) -> Response:
    merchant_id = page.principal.user.merchant_id
    amount = _yuan_to_minor(page.form.get("amount", ""))
    out_refund_no = page.form.get("out_refund_no", "")
    reason = page.form.get("reason", "").strip() or None
    if amount is None:
        return _payment_detail(request, container, page, payment_id, status_code=400,
                               error_message="amount: a positive amount in yuan, at most 2 decimals")
    try:
        created = refunds.create_refund(
            container.uow, container.clock, container.ids, container.channels, merchant_id, payment_id,
            RefundRequest(out_refund_no, Money.cny(amount), reason),
            notify_base_url=container.settings.base_url, policy=requery_policy(container),
        )
    except NotFound:
        return _not_found(request, container, page)
    except DomainError as refused:
        return _payment_detail(request, container, page, payment_id, status_code=400, error_message=refused.message)
    log.info("merchant_portal.refund_requested", merchant_id=merchant_id, payment_id=payment_id,
             refund_id=created.refund.id, replayed=created.replayed, user_id=page.principal.user.id)
    return see_other(f"/merchant/payments/{payment_id}#refunds")


def _payment_detail(
    request: Request, container: Container, page: Page[SignedIn], payment_id: str, *, status_code: int = 200,
    error_message: str | None = None,
) -> Response:
    try:
        detail = portal.payment_detail(container.uow, page.principal.user.merchant_id, payment_id)
    except NotFound:
        return _not_found(request, container, page)
    payment = detail.payment
    refundable = payment.amount.minor - payment.refunded_amount.minor
    return _render(
        request, container, "payment.html", page, status_code=status_code, detail=detail,
        refundable_minor=refundable, error_message=error_message,
        # A fresh refund number per rendering: resubmitting the same form repeats the same refund.
        out_refund_no=f"portal-{secrets.token_hex(8)}",
    )


# ---- balance, settlements, payouts ----------------------------------------------------------------------


@router.get("/balance")
def balance_page(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    merchant_id = page.principal.user.merchant_id
    balance = merchants.merchant_balance(container.uow, merchant_id)
    settled = settlement.list_settlements(container.uow, merchant_id, limit=LIST_LIMIT)
    paid_out, _ = payouts.list_payouts(container.uow, merchant_id, limit=LIST_LIMIT)
    return _render(request, container, "balance.html", page, balance=balance, settlements=settled.settlements,
                   payouts=paid_out)


@router.get("/statements/{business_date}.csv")
def statement_download(container: ContainerDep, page: PortalPage, business_date: str) -> Response:
    """The same CSV as ``GET /v1/statements/{date}``, for a person rather than a program."""
    day = parse_iso_date(business_date)
    found = None
    if day is not None:
        with suppress(NotFound):
            found = settlement.statement_of(container.uow, page.principal.user.merchant_id, day)
    if found is None or day is None:
        return Response("no statement for that date", status_code=404, media_type="text/plain")
    return Response(
        statement_csv(found).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="statement-{day.isoformat()}.csv"',
                 "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


# ---- API keys -------------------------------------------------------------------------------------------


@router.get("/keys")
def keys_page(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    return _keys(request, container, page)


@router.post("/keys")
def add_key(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    merchant_id = page.principal.user.merchant_id
    try:
        issued = merchants.add_key(container.uow, _key_tools(container), merchant_id, _key_request(page.form))
    except DomainError as refused:
        return _keys(request, container, page, status_code=400, error_message=refused.message)
    log.info("merchant_portal.key_added", merchant_id=merchant_id, key_id=issued.key_id)
    return _keys(request, container, page, issued=issued)


@router.post("/keys/rotate")
def rotate_keys(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    merchant_id = page.principal.user.merchant_id
    try:
        overlap_h = int(page.form.get("overlap_hours", "24"))
    except ValueError:
        overlap_h = -1
    if not 0 <= overlap_h <= 24 * 30:
        return _keys(request, container, page, status_code=400, error_message="overlap: 0–720 hours")
    try:
        rotation = merchants.rotate_key(container.uow, _key_tools(container), merchant_id, _key_request(page.form),
                                        overlap=timedelta(hours=overlap_h))
    except DomainError as refused:
        return _keys(request, container, page, status_code=400, error_message=refused.message)
    log.info("merchant_portal.key_rotated", merchant_id=merchant_id, key_id=rotation.new_key.key_id)
    return _keys(request, container, page, issued=rotation.new_key)


@router.post("/keys/{key_id}/revoke")
def revoke_key(request: Request, container: ContainerDep, page: PortalPage, key_id: str) -> Response:
    try:
        portal.revoke_key(container.uow, _key_tools(container), page.principal.user.merchant_id, key_id)
    except NotFound:
        return _not_found(request, container, page)
    except DomainError as refused:
        return _keys(request, container, page, status_code=400, error_message=refused.message)
    return see_other("/merchant/keys")


def _key_request(form: Mapping[str, str]) -> KeyRequest:
    pem = form.get("public_key", "").strip()
    return KeyRequest(public_key_pem=pem.encode()) if pem else KeyRequest(use_hmac=True)


def _keys(request: Request, container: Container, page: Page[SignedIn], *, status_code: int = 200,
          **context: Any) -> Response:
    keys = portal.keys_of(container.uow, page.principal.user.merchant_id)
    return _render(request, container, "keys.html", page, status_code=status_code, keys=keys,
                   now=container.clock.now(), **context)


# ---- webhooks -------------------------------------------------------------------------------------------


@router.get("/webhooks")
def webhooks_page(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    return _webhooks(request, container, page)


@router.post("/webhooks/url")
def set_webhook_url(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    url = page.form.get("webhook_url", "").strip() or None
    try:
        merchants.set_webhook_url(container.uow, page.principal.user.merchant_id, url)
    except DomainError as refused:
        return _webhooks(request, container, page, status_code=400, error_message=refused.message)
    return see_other("/merchant/webhooks")


@router.post("/webhooks/secret")
def rotate_webhook_secret(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    secret = portal.rotate_webhook_secret(container.uow, _key_tools(container), page.principal.user.merchant_id)
    log.info("merchant_portal.webhook_secret_rotated", merchant_id=page.principal.user.merchant_id)
    return _webhooks(request, container, page, new_secret=secret)


@router.post("/webhooks/events/{event_id}/resend")
def resend_event(request: Request, container: ContainerDep, page: PortalPage, event_id: str) -> Response:
    try:
        notifications.resend_event(container.uow, container.clock, page.principal.user.merchant_id, event_id)
    except NotFound:
        return _not_found(request, container, page)
    except DomainError as refused:
        return _webhooks(request, container, page, status_code=409, error_message=refused.message)
    back = page.form.get("back", "")
    return see_other(back if back.startswith("/merchant/payments/") and "//" not in back else "/merchant/webhooks")


def _webhooks(request: Request, container: Container, page: Page[SignedIn], *, status_code: int = 200,
              **context: Any) -> Response:
    merchant_id = page.principal.user.merchant_id
    merchant = portal.merchant_of(container.uow, merchant_id)
    after = request.query_params.get("after") or None
    try:
        log_page = notifications.list_events(container.uow, merchant_id, starting_after=after, limit=50)
    except DomainError:
        log_page = notifications.list_events(container.uow, merchant_id, limit=50)
    return _render(request, container, "webhooks.html", page, status_code=status_code, merchant=merchant,
                   log_page=log_page, **context)


# ---- members, mandates, terminals -----------------------------------------------------------------------


@router.get("/members")
def members_page(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    rows = portal.members_of(container.uow, page.principal.user.merchant_id)
    return _render(request, container, "members.html", page, rows=rows)


@router.get("/mandates")
def mandates_page(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    rows = portal.mandates_of(container.uow, page.principal.user.merchant_id)
    return _render(request, container, "mandates.html", page, rows=rows)


@router.get("/terminals")
def terminals_page(request: Request, container: ContainerDep, page: PortalPage) -> Response:
    rows = portal.terminals_of(container.uow, page.principal.user.merchant_id)
    return _render(request, container, "terminals.html", page, rows=rows)


# ---- helpers --------------------------------------------------------------------------------------------


def _filters(query: Mapping[str, str]) -> PortalPaymentFilter:
    status = query.get("status") or None
    method = query.get("method") or None
    bank = query.get("bank") or None
    if status is not None and status not in {s.value for s in PaymentStatus}:
        raise portal.InvalidSearch("unknown status", param="status")
    if method is not None and method not in {m.value for m in PaymentMethod}:
        raise portal.InvalidSearch("unknown method", param="method")
    return PortalPaymentFilter(
        status=PaymentStatus(status) if status else None,
        method=PaymentMethod(method) if method else None,
        bank=bank[:10] if bank else None,
        amount_min_minor=_optional_yuan(query.get("amount_min"), "amount_min"),
        amount_max_minor=_optional_yuan(query.get("amount_max"), "amount_max"),
        created_from=_day_start(query.get("date_from"), "date_from", 0),
        created_before=_day_start(query.get("date_to"), "date_to", 1),
        out_trade_no=(query.get("out_trade_no") or "").strip()[:64] or None,
    )


def _optional_yuan(text: str | None, param: str) -> int | None:
    if not text:
        return None
    minor = _yuan_to_minor(text, allow_zero=True)
    if minor is None:
        raise portal.InvalidSearch("an amount in yuan, at most 2 decimals", param=param)
    return minor


def _day_start(text: str | None, param: str, plus_days: int) -> datetime | None:
    # Dates are Shanghai calendar dates (docs/clearing.md); "to" is inclusive, so it ends a day later.
    if not text:
        return None
    day = parse_iso_date(text)
    if day is None:
        raise portal.InvalidSearch(DATE_FORMAT, param=param)
    return datetime.combine(day + timedelta(days=plus_days), time(), SHANGHAI).astimezone(UTC)


def _yuan_to_minor(text: str, *, allow_zero: bool = False) -> int | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    minor = value * 100
    if not minor.is_finite() or minor != minor.to_integral_value() or minor > 10**12:
        return None
    if minor < 0 or (minor == 0 and not allow_zero):
        return None
    return int(minor)


def _yuan_minor(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    major, rest = divmod(abs(minor), 100)
    return f"{sign}¥{major:,}.{rest:02d}"


def _rate(bps: int | None) -> str:
    return "—" if bps is None else f"{bps / 100:.2f}%"


def _yuan(amount: Money) -> str:
    return _yuan_minor(amount.minor)


def _local(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _safe_next(target: str | None) -> str:
    return safe_next(target, "/merchant")


def _lang(request: Request) -> tuple[str, bool]:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked, True
    stored = request.cookies.get(LANG_COOKIE)
    return (stored if stored in LANGS else DEFAULT_LANG), False


def _not_found(request: Request, container: Container, page: Page[SignedIn] | None) -> Response:
    return _render(request, container, "message.html", page, status_code=404, message_key="not_found")


def _render(
    request: Request,
    container: Container,
    template: str,
    page: Page[SignedIn] | None,
    *,
    status_code: int = 200,
    error_key: str | None = None,
    **context: Any,
) -> Response:
    lang, lang_chosen = _lang(request)
    t = texts(lang)
    if page is not None:
        nonce, is_new, csrf = page.nonce, page.is_new_nonce, page.csrf_token
    else:
        nonce, is_new = GUARD.nonce(request)
        csrf = GUARD.csrf_token(container, nonce)
    user = page.principal.user if page is not None else None
    html = _ENV.get_template(template).render(
        t=t,
        lang=lang,
        path=request.url.path,
        user=user,
        csrf_token=csrf,
        error=t.get(error_key, error_key) if error_key in _ERROR_KEYS else error_key,
        yuan=_yuan,
        yuan_minor=_yuan_minor,
        local=_local,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    if lang_chosen:
        set_cookie(container, response, LANG_COOKIE, lang, path=COOKIE_PATH, max_age_s=LANG_MAX_AGE_S)
    return GUARD.finish(container, response, nonce, is_new)


__all__ = ["GUARD", "get_container", "portal_tools", "router"]
