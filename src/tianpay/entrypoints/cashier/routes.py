"""The hosted cashier (收银台): the payer picks a bank (or a bound card), pays, and comes back to a result.

Pages live under ``/cashier`` (never under the signed ``/v1`` prefix). Every page carries a strict
Content-Security-Policy (scripts and styles only from ``/cashier/static``), and every state-changing
POST from the payer carries a CSRF token bound to the payment (``security.py``). The result page
reads only the platform's records; what a bank's redirect says is applied only if it is signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from tianpay.bootstrap import Container
from tianpay.channels.registry import BANK_NAMES
from tianpay.domain.errors import DomainError, IllegalTransition, NotFound
from tianpay.domain.member import Member
from tianpay.domain.money import Money
from tianpay.domain.payment import InvalidBank, PaymentExpired
from tianpay.entrypoints.api.deps import ContainerDep
from tianpay.entrypoints.gateway_wiring import gateway_settings
from tianpay.entrypoints.quick_pay_wiring import quick_pay_settings
from tianpay.ports.channels import RedirectForm
from tianpay.services import members
from tianpay.services.card_bindings import cards_of
from tianpay.services.cashier import CashierView, PageState, cashier_view
from tianpay.services.gateway import BankRefused, handle_front_return, nudge_payment, pay_at_bank
from tianpay.services.quick_pay import confirm_quick_pay
from tianpay.services.routing import card_offers

from . import security
from .i18n import DEFAULT_LANG, LANGS, texts

log = structlog.stdlib.get_logger(__name__)

_HERE = Path(__file__).parent
_ENV = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
STATIC_FILES: Final[Mapping[str, str]] = {
    "cashier.js": "text/javascript; charset=utf-8",
    "cashier.css": "text/css; charset=utf-8",
}
MAX_FORM_BYTES: Final = 16 * 1024
# How often the result page of a payment still processing reloads itself.
REFRESH_S: Final = 5

router = APIRouter(prefix="/cashier", include_in_schema=False)


# ---- pages ------------------------------------------------------------------------------------------


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    response = Response((_HERE / "static" / name).read_bytes(), media_type=media_type)
    security.add_security_headers(response)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@router.get("/{payment_id}")
def checkout_page(payment_id: str, request: Request, container: ContainerDep) -> Response:
    lang = _lang(request)
    view = _view(container, payment_id)
    if view is None:
        return _message(request, container, lang, "not_found", 404)
    if view.state not in (PageState.PAYABLE, PageState.PROCESSING):
        return _see_result(payment_id)
    nonce, is_new_nonce = _nonce(request)
    error = request.query_params.get("error")
    response = _render(
        request, container, lang, "checkout.html",
        view=view,
        csrf_token=security.csrf_token(security.csrf_secret(container), payment_id, nonce),
        error_key="bank_unavailable" if error == "bank_unavailable" else None,
    )
    if is_new_nonce:
        _set_cookie(container, response, security.NONCE_COOKIE, nonce, max_age_s=security.NONCE_MAX_AGE_S)
    return response


@router.post("/{payment_id}/pay")
async def pay(payment_id: str, request: Request, container: ContainerDep) -> Response:
    lang = _lang(request)
    fields = await _form(request)
    if not _csrf_ok(container, request, payment_id, fields):
        log.warning("cashier.csrf_refused", payment_id=payment_id)
        return _message(request, container, lang, "forbidden", 403)
    view = _view(container, payment_id)
    if view is None:
        return _message(request, container, lang, "not_found", 404)
    bank = fields.get("bank", "")
    if not view.offers_banks:
        return _see_result(payment_id)
    if bank not in view.banks:
        return _message(request, container, lang, "bad_request", 400)
    try:
        form = await run_in_threadpool(
            pay_at_bank, container.uow, container.clock, container.ids, container.channels,
            gateway_settings(container), payment_id, bank,
        )
    except BankRefused as refused:
        if refused.may_try_another_bank:
            return RedirectResponse(f"/cashier/{payment_id}?error=bank_unavailable", status_code=303)
        return _see_result(payment_id)
    except (PaymentExpired, IllegalTransition):
        return _see_result(payment_id)
    except (NotFound, InvalidBank):
        return _message(request, container, lang, "bad_request", 400)
    return _render_redirect(request, container, lang, form)


@router.api_route("/{payment_id}/return/{attempt_id}", methods=["GET", "POST"])
async def bank_return(payment_id: str, attempt_id: str, request: Request, container: ContainerDep) -> Response:
    """The bank sends the payer back here; a signed result in the body is applied, then the result page."""
    body = await request.body() if request.method == "POST" else b""
    if 0 < len(body) <= MAX_FORM_BYTES:
        try:
            await run_in_threadpool(
                handle_front_return, container.uow, container.clock, container.ids, container.channels,
                payment_id, attempt_id, body, request.headers.get("content-type", ""),
            )
        except DomainError as error:
            log.warning("cashier.return_not_applied", payment_id=payment_id, attempt_id=attempt_id, error=error.code)
    return _see_result(payment_id)


@router.get("/{payment_id}/result")
def result_page(payment_id: str, request: Request, container: ContainerDep) -> Response:
    lang = _lang(request)
    view = _view(container, payment_id)
    if view is None:
        return _message(request, container, lang, "not_found", 404)
    nonce, is_new_nonce = _nonce(request)
    response = _render(
        request, container, lang, "result.html",
        view=view,
        csrf_token=security.csrf_token(security.csrf_secret(container), payment_id, nonce),
        refresh_s=REFRESH_S if view.state is PageState.PROCESSING else None,
    )
    if is_new_nonce:
        _set_cookie(container, response, security.NONCE_COOKIE, nonce, max_age_s=security.NONCE_MAX_AGE_S)
    return response


@router.post("/{payment_id}/result/check")
async def check_again(payment_id: str, request: Request, container: ContainerDep) -> Response:
    """The payer's "check again": asks the bank now (rate-limited per attempt by the service)."""
    lang = _lang(request)
    fields = await _form(request)
    if not _csrf_ok(container, request, payment_id, fields):
        return _message(request, container, lang, "forbidden", 403)
    await run_in_threadpool(
        nudge_payment, container.uow, container.clock, container.ids, container.channels,
        gateway_settings(container), payment_id,
    )
    return _see_result(payment_id)


# ---- quick pay with a bound card (a signed-in wallet member) ------------------------------------------


@router.get("/{payment_id}/quick-pay")
def quick_pay_page(payment_id: str, request: Request, container: ContainerDep) -> Response:
    lang = _lang(request)
    view = _view(container, payment_id)
    if view is None:
        return _message(request, container, lang, "not_found", 404)
    if not view.offers_quick_pay:
        return _see_result(payment_id)
    return _quick_pay_page(request, container, lang, view)


@router.post("/{payment_id}/quick-pay")
async def quick_pay(payment_id: str, request: Request, container: ContainerDep) -> Response:
    """Charges the member's chosen bound card (``services.quick_pay``), then the result page."""
    lang = _lang(request)
    fields = await _form(request)
    if not _csrf_ok(container, request, payment_id, fields):
        log.warning("cashier.csrf_refused", payment_id=payment_id)
        return _message(request, container, lang, "forbidden", 403)
    view = _view(container, payment_id)
    if view is None:
        return _message(request, container, lang, "not_found", 404)
    member = _wallet_member(container, request)
    if not view.offers_quick_pay or member is None:
        return _see_result(payment_id) if member is not None else _quick_pay_page(request, container, lang, view)
    try:
        # The member's id scopes the card: a card id from another member's page is "not found".
        await run_in_threadpool(lambda: confirm_quick_pay(
            container.uow, container.clock, container.ids, container.channels, container.member_tools,
            quick_pay_settings(container), merchant_id=None, payment_id=payment_id,
            card_id=fields.get("card_id", ""), payment_password=fields.get("payment_password", ""),
            member_id=member.id,
        ))
    except DomainError as refused:
        log.info("cashier.quick_pay_refused", payment_id=payment_id, error=refused.code)
        return _quick_pay_page(request, container, lang, view, error_code=refused.code, status_code=400)
    return _see_result(payment_id)


def _quick_pay_page(
    request: Request,
    container: Container,
    lang: str,
    view: CashierView,
    *,
    error_code: str | None = None,
    status_code: int = 200,
) -> Response:
    member = _wallet_member(container, request)
    # A card at a bank an operator switched off is listed greyed out with its reason, by the same rule as
    # the wallet's quick top-up; confirm_quick_pay refuses it if a stale or forged form names it.
    cards = [] if member is None else card_offers(container.uow, cards_of(container.uow, member.id, merchant_id=None))
    nonce, is_new_nonce = _nonce(request)
    response = _render(
        request, container, lang, "quick_pay.html", status_code=status_code,
        view=view, member=member, cards=cards,
        csrf_token=security.csrf_token(security.csrf_secret(container), view.payment.id, nonce),
        error_code=error_code,
        login_url=f"/wallet/login?next=/cashier/{view.payment.id}/quick-pay",
    )
    if is_new_nonce:
        _set_cookie(container, response, security.NONCE_COOKIE, nonce, max_age_s=security.NONCE_MAX_AGE_S)
    return response


def _wallet_member(container: Container, request: Request) -> Member | None:
    token = request.cookies.get(security.WALLET_SESSION_COOKIE)
    return members.member_of_session(container.uow, container.member_tools, token)


# ---- helpers ----------------------------------------------------------------------------------------


def _view(container: Container, payment_id: str) -> CashierView | None:
    try:
        return cashier_view(container.uow, container.channels, payment_id, container.clock.now())
    except NotFound:
        return None


def _see_result(payment_id: str) -> Response:
    response = RedirectResponse(f"/cashier/{payment_id}/result", status_code=303)
    return security.add_security_headers(response)


def _lang(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked
    remembered = request.cookies.get(security.LANG_COOKIE)
    return remembered if remembered in LANGS else DEFAULT_LANG


def _nonce(request: Request) -> tuple[str, bool]:
    existing = request.cookies.get(security.NONCE_COOKIE)
    if existing and len(existing) <= 64:
        return existing, False
    return security.new_nonce(), True


def _csrf_ok(container: Container, request: Request, payment_id: str, fields: Mapping[str, str]) -> bool:
    nonce = request.cookies.get(security.NONCE_COOKIE)
    return security.csrf_valid(security.csrf_secret(container), payment_id, nonce, fields.get("csrf_token"))


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in parsed.items() if len(values) == 1}


def _set_cookie(container: Container, response: Response, name: str, value: str, *, max_age_s: int) -> None:
    secure = container.settings.base_url.startswith("https://")
    security.set_cookie(response, name, value, max_age_s=max_age_s, secure=secure)


def _render(
    request: Request,
    container: Container,
    lang: str,
    template: str,
    *,
    status_code: int = 200,
    form_targets: tuple[str, ...] = (),
    **context: Any,
) -> Response:
    html = _ENV.get_template(template).render(
        t=texts(lang),
        lang=lang,
        path=request.url.path,
        bank_name=lambda code: BANK_NAMES.get(code, {}).get(lang, code),
        yuan=_yuan,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    if request.query_params.get("lang") in LANGS:
        _set_cookie(container, response, security.LANG_COOKIE, lang, max_age_s=security.LANG_MAX_AGE_S)
    return security.add_security_headers(response, form_targets=form_targets)


def _render_redirect(request: Request, container: Container, lang: str, form: RedirectForm) -> Response:
    return _render(
        request, container, lang, "redirect.html",
        form=form, form_targets=(security.origin_of(form.url),),
    )


def _message(request: Request, container: Container, lang: str, key: str, status_code: int) -> Response:
    return _render(request, container, lang, "message.html", status_code=status_code, message_key=key)


def _yuan(amount: Money) -> str:
    """¥1,234.56: the amount as payers read it (CNY only at the cashier)."""
    major, minor = divmod(amount.minor, 100)
    return f"¥{major:,}.{minor:02d}"
