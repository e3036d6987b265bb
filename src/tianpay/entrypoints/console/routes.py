"""The operator console (``/console``): server-rendered pages for the platform's own staff.

Every signed-in route takes ``require(permission)``: one dependency that signs the operator in (or
redirects to the login page), checks the CSRF token of a POST, and refuses with 403 any operator whose
role lacks the permission in ``domain/console.py``'s table — so a support user typing a finance URL or
POSTing a finance form is refused by the server, not just shown fewer links. Actions call
``services/console.py``, which checks the permission again and writes the audit row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from tianpay.bootstrap import Container
from tianpay.channels.observed import BANK_CALL_SECONDS
from tianpay.domain.console import Permission, is_allowed
from tianpay.domain.errors import DomainError
from tianpay.domain.merchant import PAYMENT_METHODS
from tianpay.domain.merchant_user import LoginFailed, LoginLocked
from tianpay.domain.operator import Operator
from tianpay.domain.reconciliation import ExceptionStatus, actions_for
from tianpay.domain.statistics import business_date_of
from tianpay.entrypoints.api.deps import ContainerDep
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
from tianpay.services import audit, console, reconciliation, statistics
from tianpay.services import settlement as settlement_service
from tianpay.services.console import ConsoleTools
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant

log = structlog.stdlib.get_logger(__name__)

SESSION_COOKIE: Final = "tp_console_session"
NONCE_COOKIE: Final = "tp_console_nonce"
COOKIE_PATH: Final = "/console"
SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
STATIC_FILES: Final[Mapping[str, str]] = {"console.css": "text/css; charset=utf-8"}
STATISTICS_DAYS: Final = 30

# The shared layout (entrypoints/web/templates/layout.html) reads these; the console speaks one
# language for now (docs/console.md).
TEXTS: Final[Mapping[str, str]] = {
    "html_lang": "zh-CN",
    "brand": "天付 · 运营控制台",
    "other_lang_code": "zh",
    "other_lang": "中文",
}

# The menu: (path, label, permission). A link shows only when the role has the permission; the
# server refuses the page either way.
MENU: Final = (
    ("/console", "概览 Overview", Permission.VIEW_OVERVIEW),
    ("/console/merchants", "商户 Merchants", Permission.VIEW_MERCHANTS),
    ("/console/members", "会员 Members", Permission.VIEW_MEMBERS),
    ("/console/channels", "通道 Channels", Permission.VIEW_CHANNELS),
    ("/console/reconciliation", "对账 Reconciliation", Permission.VIEW_RECONCILIATION),
    ("/console/settlements", "结算与代付 Settlement", Permission.VIEW_SETTLEMENTS),
    ("/console/webhooks", "通知 Webhooks", Permission.VIEW_WEBHOOKS),
    ("/console/statistics", "统计 Statistics", Permission.VIEW_STATISTICS),
    ("/console/audit", "审计 Audit log", Permission.VIEW_OWN_AUDIT),
)

_HERE = Path(__file__).parent
_ENV = Environment(
    loader=ChoiceLoader([FileSystemLoader(_HERE / "templates"), FileSystemLoader(_HERE.parent / "web" / "templates")]),
    autoescape=select_autoescape(enabled_extensions=("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(prefix="/console", include_in_schema=False)


def console_tools(container: Container) -> ConsoleTools:
    tools = container.member_tools
    return ConsoleTools(
        clock=container.clock,
        ids=container.ids,
        hasher=tools.hasher,
        cipher=tools.cipher,
        keys=KeyTools(container.ids, container.clock, container.key_issuer, container.vault),
    )


def _resolve(container: Container, token: str | None) -> Operator | None:
    return console.signed_in(container.uow, console_tools(container), token)


def _forbidden(request: Request, container: Container) -> Response:
    log.warning("console.csrf_refused", path=request.url.path)
    return _render(request, container, "message.html", None, status_code=403,
                   title="403", message="This form expired or did not come from the console. Reload and try again.")


GUARD: Final[PageGuard[Operator]] = PageGuard(
    site="console",
    login_path="/console/login",
    session_cookie=SESSION_COOKIE,
    nonce_cookie=NONCE_COOKIE,
    cookie_path=COOKIE_PATH,
    resolve=_resolve,
    forbidden=_forbidden,
)


def require(permission: Permission) -> Callable[[Request], Awaitable[Page[Operator]]]:
    """The one dependency of every signed-in route: signed in, CSRF-checked, and allowed ``permission``."""

    async def dependency(request: Request) -> Page[Operator]:
        page = await GUARD.page(request)
        if not is_allowed(page.principal.role, permission):
            container: Container = request.app.state.container
            log.warning("console.permission_refused", operator=page.principal.username,
                        role=page.principal.role.value, permission=permission.value, path=request.url.path)
            raise PageInterrupt(_render(
                request, container, "message.html", page, status_code=403, title="403",
                message=f"Your role ({page.principal.role.value}) may not {permission.value}.",
            ))
        return page

    return dependency


def _page(permission: Permission) -> Any:
    return Depends(require(permission))


# ---- sign-in -------------------------------------------------------------------------------------------


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
    tools = console_tools(container)
    try:
        operator = await run_in_threadpool(
            console.log_in, container.uow, tools, fields.get("username", ""), fields.get("password", "")
        )
    except (LoginFailed, LoginLocked) as refused:
        return _render(request, container, "login.html", None, status_code=400, error=refused.message,
                       next=_safe_next(fields.get("next")))
    # A new token at every sign-in (the old one revoked) defeats session fixation.
    console.end_session(container.uow, tools, request.cookies.get(SESSION_COOKIE))
    token = console.start_session(container.uow, tools, operator)
    response = see_other(_safe_next(fields.get("next")))
    set_cookie(container, response, SESSION_COOKIE, token, path=COOKIE_PATH,
               max_age_s=int(tools.session_lifetime.total_seconds()))
    return response


@router.post("/logout")
def logout(request: Request, container: ContainerDep, page: Page[Operator] = _page(Permission.VIEW_OVERVIEW)
           ) -> Response:
    console.end_session(container.uow, console_tools(container), page.session_token)
    response = see_other("/console/login")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


# ---- overview ------------------------------------------------------------------------------------------


@router.get("")
def overview(request: Request, container: ContainerDep, page: Page[Operator] = _page(Permission.VIEW_OVERVIEW)
             ) -> Response:
    uow = container.uow
    open_exceptions = reconciliation.exceptions_of(uow, status=ExceptionStatus.OPEN, limit=100)
    return _render(
        request, container, "overview.html", page,
        open_exceptions=len(open_exceptions),
        awaiting_review=len(console.payouts_awaiting_review(uow)),
        can_see_review=is_allowed(page.principal.role, Permission.VIEW_SETTLEMENTS),
        failed_webhooks=len(console.failed_webhooks(uow)),
        channels=console.channels_overview(uow, container.channels.online_banking_banks(),
                                           container.channels.quick_pay_routes()),
        merchant_count=len(console.merchant_list(uow)),
    )


# ---- merchants -----------------------------------------------------------------------------------------


@router.get("/merchants")
def merchants_page(request: Request, container: ContainerDep,
                   page: Page[Operator] = _page(Permission.VIEW_MERCHANTS)) -> Response:
    return _render(request, container, "merchants.html", page, merchants=console.merchant_list(container.uow))


@router.post("/merchants")
def onboard(request: Request, container: ContainerDep,
            page: Page[Operator] = _page(Permission.ONBOARD_MERCHANT)) -> Response:
    form = page.form
    rate = _int(form.get("fee_rate_bps", "60"))
    if rate is None:
        return _refused(request, container, page, "fee_rate_bps is a whole number of basis points")
    try:
        created = console.onboard_merchant(
            container.uow, console_tools(container), page.principal,
            NewMerchant(form.get("name", ""), KeyRequest(), None, rate), reason=form.get("reason", ""),
        )
    except DomainError as error:
        return _refused(request, container, page, error.message)
    # The private key was written to the data directory by the key issuer; only its path is shown.
    return _render(request, container, "onboarded.html", page, created=created)


@router.get("/merchants/{merchant_id}")
def merchant_page(merchant_id: str, request: Request, container: ContainerDep,
                  page: Page[Operator] = _page(Permission.VIEW_MERCHANTS)) -> Response:
    try:
        detail = console.merchant_detail(container.uow, container.clock, merchant_id)
    except DomainError as error:
        return _refused(request, container, page, error.message, status_code=404)
    return _render(request, container, "merchant.html", page, detail=detail, methods=PAYMENT_METHODS,
                   done=request.query_params.get("done"),
                   can_edit_settlement=is_allowed(page.principal.role, Permission.EDIT_SETTLEMENT))


@router.post("/merchants/{merchant_id}/fee-plan")
def fee_plan(merchant_id: str, request: Request, container: ContainerDep,
             page: Page[Operator] = _page(Permission.EDIT_FEE_PLAN)) -> Response:
    rates: dict[str, tuple[int, int]] = {}
    for method in PAYMENT_METHODS:
        bps = _int(page.form.get(f"rate_{method}", ""))
        minimum = _int(page.form.get(f"min_{method}", "0") or "0")
        if bps is None or minimum is None:
            return _refused(request, container, page, f"the rate and minimum of {method} are whole numbers")
        rates[method] = (bps, minimum)
    try:
        console.change_fee_plan(container.uow, console_tools(container), page.principal, merchant_id, rates,
                                reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other(f"/console/merchants/{merchant_id}?done=fee_plan")


@router.post("/merchants/{merchant_id}/settlement")
def settlement_settings(merchant_id: str, request: Request, container: ContainerDep,
                        page: Page[Operator] = _page(Permission.EDIT_SETTLEMENT)) -> Response:
    form = page.form
    cycle = _int(form.get("cycle_days", ""))
    minimum = _yuan_to_minor(form.get("minimum_payout", "0") or "0")
    if cycle is None or minimum is None:
        return _refused(request, container, page, "the cycle is a whole number of days and the minimum an amount")
    account = None
    if form.get("account_no", "").strip():
        account = settlement_service.AccountInput(
            form.get("account_bank", ""), form.get("account_no", ""), form.get("account_name", "")
        )
    change = settlement_service.SettingsChange(
        cycle_days=cycle, minimum_payout_minor=minimum, auto_payout=form.get("auto_payout") == "on", account=account
    )
    try:
        console.change_settlement(container.uow, console_tools(container), page.principal, merchant_id, change,
                                  reason=form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other(f"/console/merchants/{merchant_id}?done=settlement")


@router.post("/merchants/{merchant_id}/payout-review")
def payout_review_threshold(merchant_id: str, request: Request, container: ContainerDep,
                            page: Page[Operator] = _page(Permission.EDIT_SETTLEMENT)) -> Response:
    text = page.form.get("review_threshold", "").strip()
    # Empty means no review; otherwise yuan with at most two decimals, as the other money fields.
    threshold = _yuan_to_minor(text) if text else None
    if text and threshold is None:
        return _refused(request, container, page, "the review threshold is an amount in yuan, or empty for none")
    try:
        console.set_payout_review_threshold(container.uow, console_tools(container), page.principal, merchant_id,
                                            threshold, reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other(f"/console/merchants/{merchant_id}?done=payout_review")


@router.post("/merchants/{merchant_id}/freeze")
def freeze(merchant_id: str, request: Request, container: ContainerDep,
           page: Page[Operator] = _page(Permission.FREEZE_MERCHANT)) -> Response:
    try:
        console.set_merchant_frozen(container.uow, console_tools(container), page.principal, merchant_id,
                                    is_frozen=page.form.get("frozen") == "yes", reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other(f"/console/merchants/{merchant_id}?done=status")


# ---- members -------------------------------------------------------------------------------------------


@router.get("/members")
def members_page(request: Request, container: ContainerDep,
                 page: Page[Operator] = _page(Permission.VIEW_MEMBERS)) -> Response:
    wanted = request.query_params.get("id", "").strip()
    if wanted:
        try:
            found = [console.member_of(container.uow, wanted)]
        except DomainError as error:
            return _refused(request, container, page, error.message, status_code=404)
    else:
        found = list(console.member_list(container.uow))
    return _render(request, container, "members.html", page, members=found, wanted=wanted)


@router.post("/members/{member_id}/unmask")
def unmask(member_id: str, request: Request, container: ContainerDep,
           page: Page[Operator] = _page(Permission.UNMASK_MEMBER)) -> Response:
    field = page.form.get("field", "")
    try:
        clear = console.unmask_member(container.uow, console_tools(container), page.principal, member_id, field,
                                      reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    # Shown once, on a page that is never cached (no-store) and is not reachable by a GET.
    return _render(request, container, "unmasked.html", page, member_id=member_id, field=field, clear=clear)


# ---- channels ------------------------------------------------------------------------------------------


@router.get("/channels")
def channels_page(request: Request, container: ContainerDep,
                  page: Page[Operator] = _page(Permission.VIEW_CHANNELS)) -> Response:
    registry = container.channels
    banks = sorted(set(registry.online_banking_banks()) | set(registry.payout_banks()) | set(registry.debit))
    rows = console.channels_overview(container.uow, banks, registry.quick_pay_routes())
    return _render(request, container, "channels.html", page, rows=rows,
                   can_edit=is_allowed(page.principal.role, Permission.EDIT_CHANNELS),
                   done=request.query_params.get("done"))


@router.post("/channels/{bank}")
def channel_set(bank: str, request: Request, container: ContainerDep,
                page: Page[Operator] = _page(Permission.EDIT_CHANNELS)) -> Response:
    cost_text = page.form.get("cost_bps", "").strip()
    cost = _int(cost_text) if cost_text else None
    if cost_text and cost is None:
        return _refused(request, container, page, "the cost is a whole number of basis points")
    try:
        console.set_channel(container.uow, console_tools(container), page.principal, bank,
                            is_enabled=page.form.get("enabled") == "yes", cost_bps=cost,
                            reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other("/console/channels?done=saved")


# ---- reconciliation ------------------------------------------------------------------------------------


@router.get("/reconciliation")
def reconciliation_page(request: Request, container: ContainerDep,
                        page: Page[Operator] = _page(Permission.VIEW_RECONCILIATION)) -> Response:
    uow = container.uow
    return _render(
        request, container, "reconciliation.html", page,
        runs=console.reconciliation_runs(uow),
        open_exceptions=reconciliation.exceptions_of(uow, status=ExceptionStatus.OPEN, limit=200),
        resolved=reconciliation.exceptions_of(uow, status=ExceptionStatus.RESOLVED, limit=30),
        actions_for=lambda kind: [action.value for action in actions_for(kind)],
        can_resolve=is_allowed(page.principal.role, Permission.RESOLVE_EXCEPTION),
        done=request.query_params.get("done"),
    )


@router.post("/reconciliation/exceptions/{exception_id}/resolve")
def resolve(exception_id: str, request: Request, container: ContainerDep,
            page: Page[Operator] = _page(Permission.RESOLVE_EXCEPTION)) -> Response:
    try:
        console.resolve_exception(container.uow, console_tools(container), page.principal, exception_id,
                                  action=page.form.get("action", ""), reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other(f"/console/reconciliation?done={exception_id}")


# ---- settlements and payout batches --------------------------------------------------------------------


@router.get("/settlements")
def settlements_page(request: Request, container: ContainerDep,
                     page: Page[Operator] = _page(Permission.VIEW_SETTLEMENTS)) -> Response:
    uow = container.uow
    return _render(request, container, "settlements.html", page, settlements=console.settlement_list(uow),
                   batches=console.payout_batch_list(uow), done=request.query_params.get("done"),
                   retried=request.query_params.get("retried"),
                   can_retry=is_allowed(page.principal.role, Permission.RETRY_PAYOUT_QUERY),
                   can_retry_payout=is_allowed(page.principal.role, Permission.RETRY_SETTLEMENT_PAYOUT))


@router.post("/settlements/{settlement_id}/retry-payout")
def retry_settlement_payout(settlement_id: str, request: Request, container: ContainerDep,
                            page: Page[Operator] = _page(Permission.RETRY_SETTLEMENT_PAYOUT)) -> Response:
    try:
        console.retry_settlement_payout(container.uow, console_tools(container), page.principal, settlement_id,
                                        directory=container.channels, reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other(f"/console/settlements?retried={settlement_id}")


# ---- payout review (人工审核) --------------------------------------------------------------------------


@router.get("/payouts/review")
def review_queue(request: Request, container: ContainerDep,
                 page: Page[Operator] = _page(Permission.VIEW_SETTLEMENTS)) -> Response:
    return _render(request, container, "review_queue.html", page,
                   payouts=console.payouts_awaiting_review(container.uow),
                   decided=request.query_params.get("decided"))


@router.get("/payouts/{payout_id}")
def payout_page(payout_id: str, request: Request, container: ContainerDep,
                page: Page[Operator] = _page(Permission.VIEW_SETTLEMENTS)) -> Response:
    try:
        detail = console.payout_detail(container.uow, payout_id)
    except DomainError as error:
        return _refused(request, container, page, error.message, status_code=404)
    return _render(request, container, "payout.html", page, detail=detail,
                   can_review=is_allowed(page.principal.role, Permission.REVIEW_PAYOUTS))


@router.post("/payouts/{payout_id}/approve")
def approve_payout(payout_id: str, request: Request, container: ContainerDep,
                   page: Page[Operator] = _page(Permission.REVIEW_PAYOUTS)) -> Response:
    try:
        console.approve_payout(container.uow, console_tools(container), page.principal, payout_id,
                               note=page.form.get("reason", ""))
    except DomainError as error:
        # The loser of a double click or of an approval racing a rejection reads what happened.
        return _refused(request, container, page, error.message)
    return see_other(f"/console/payouts/review?decided={payout_id}")


@router.post("/payouts/{payout_id}/reject")
def reject_payout(payout_id: str, request: Request, container: ContainerDep,
                  page: Page[Operator] = _page(Permission.REVIEW_PAYOUTS)) -> Response:
    try:
        console.reject_payout(container.uow, console_tools(container), page.principal, payout_id,
                              reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other(f"/console/payouts/review?decided={payout_id}")


@router.post("/payout-batches/{batch_id}/retry-query")
def retry_query(batch_id: str, request: Request, container: ContainerDep,
                page: Page[Operator] = _page(Permission.RETRY_PAYOUT_QUERY)) -> Response:
    try:
        console.retry_batch_query(container.uow, console_tools(container), page.principal, batch_id,
                                  reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other(f"/console/settlements?done={batch_id}")


# ---- webhooks ------------------------------------------------------------------------------------------


@router.get("/webhooks")
def webhooks_page(request: Request, container: ContainerDep,
                  page: Page[Operator] = _page(Permission.VIEW_WEBHOOKS)) -> Response:
    return _render(request, container, "webhooks.html", page, events=console.failed_webhooks(container.uow),
                   done=request.query_params.get("done"),
                   can_resend=is_allowed(page.principal.role, Permission.RESEND_WEBHOOK))


@router.post("/webhooks/{merchant_id}/{event_id}/resend")
def resend(merchant_id: str, event_id: str, request: Request, container: ContainerDep,
           page: Page[Operator] = _page(Permission.RESEND_WEBHOOK)) -> Response:
    try:
        console.resend_webhook(container.uow, console_tools(container), page.principal, merchant_id, event_id,
                               reason=page.form.get("reason", ""))
    except DomainError as error:
        return _refused(request, container, page, error.message)
    return see_other(f"/console/webhooks?done={event_id}")


# ---- audit log and statistics --------------------------------------------------------------------------


@router.get("/audit")
def audit_page(request: Request, container: ContainerDep,
               page: Page[Operator] = _page(Permission.VIEW_OWN_AUDIT)) -> Response:
    # Admin reads everyone's trail; the other roles read their own actions only.
    sees_all = is_allowed(page.principal.role, Permission.VIEW_AUDIT)
    records = audit.audit_trail(container.uow, operator=None if sees_all else page.principal.username, limit=200)
    return _render(request, container, "audit.html", page, records=records, sees_all=sees_all)


@router.get("/statistics")
def statistics_page(request: Request, container: ContainerDep,
                    page: Page[Operator] = _page(Permission.VIEW_STATISTICS)) -> Response:
    last = business_date_of(container.clock.now())
    first = last - timedelta(days=STATISTICS_DAYS - 1)
    figures = statistics.platform_statistics(container.read_uow, first, last)
    by_bank: dict[str, int] = {}
    by_method: dict[str, int] = {}
    for row in figures.volume:
        by_bank[row.bank or "—"] = by_bank.get(row.bank or "—", 0) + row.succeeded_minor
        by_method[row.method] = by_method.get(row.method, 0) + row.succeeded_minor
    return _render(
        request, container, "statistics.html", page, figures=figures, first=first, last=last,
        bank_chart=charts.bar_list([charts.Bar(k, v) for k, v in by_bank.items()], name="volume-by-bank",
                                   format_value=_yuan_minor),
        method_chart=charts.bar_list([charts.Bar(k, v) for k, v in by_method.items()], name="volume-by-method",
                                     format_value=_yuan_minor),
        latencies=_bank_call_latencies(),
        money_chart=charts.bar_list(
            [charts.Bar("fee income", figures.fee_income_minor), charts.Bar("bank cost", figures.bank_cost_minor)],
            name="fee-income-vs-bank-cost", format_value=_yuan_minor,
        ),
    )


def _bank_call_latencies() -> list[tuple[str, str, int, int]]:
    """(bank, interface, calls, mean milliseconds) from this process's bank-call histogram (the one
    /metrics exports): how long each channel's calls took since this ``serve`` process started."""
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], float] = {}
    for metric in BANK_CALL_SECONDS.collect():
        for sample in metric.samples:
            key = (sample.labels.get("bank", ""), sample.labels.get("interface", ""))
            if sample.name.endswith("_sum"):
                sums[key] = sums.get(key, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                counts[key] = counts.get(key, 0.0) + sample.value
    return [
        (bank, interface, int(count), round(sums.get((bank, interface), 0.0) * 1000 / count))
        for (bank, interface), count in sorted(counts.items())
        if count > 0
    ]


# ---- helpers -------------------------------------------------------------------------------------------


def _refused(request: Request, container: Container, page: Page[Operator], message: str, *,
             status_code: int = 400) -> Response:
    return _render(request, container, "message.html", page, status_code=status_code, title="不能完成 Not done",
                   message=message, back=request.headers.get("referer", ""))


def _int(text: str) -> int | None:
    cleaned = text.strip()
    if not cleaned or len(cleaned) > 12 or not cleaned.lstrip("-").isdigit():
        return None
    return int(cleaned)


def _yuan_to_minor(text: str) -> int | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    minor = value * 100
    if not minor.is_finite() or minor != minor.to_integral_value() or not 0 <= minor <= 10**12:
        return None
    return int(minor)


def _yuan_minor(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    major, rest = divmod(abs(minor), 100)
    return f"{sign}¥{major:,}.{rest:02d}"


def _bps(bps: int | None) -> str:
    # Integer arithmetic, so 25 bps reads 0.25 % exactly.
    return "—" if bps is None else f"{bps // 100}.{bps % 100:02d}%"


def _local(moment: datetime | date | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    return moment.isoformat()


def _safe_next(target: str | None) -> str:
    return safe_next(target, "/console")


def _render(
    request: Request,
    container: Container,
    template: str,
    page: Page[Operator] | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    if page is not None:
        nonce, is_new, csrf = page.nonce, page.is_new_nonce, page.csrf_token
    else:
        nonce, is_new = GUARD.nonce(request)
        csrf = GUARD.csrf_token(container, nonce)
    operator = page.principal if page is not None else None
    menu = [] if operator is None else [(path, label) for path, label, needed in MENU
                                        if is_allowed(operator.role, needed)]
    context.setdefault("error", None)
    html = _ENV.get_template(template).render(
        t=TEXTS, path=request.url.path, operator=operator, menu=menu, csrf_token=csrf,
        yuan_minor=_yuan_minor, bps=_bps, local=_local, **context,
    )
    return GUARD.finish(container, HTMLResponse(html, status_code=status_code), nonce, is_new)


__all__ = ["GUARD", "console_tools", "require", "router"]
