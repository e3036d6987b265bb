"""JHB's HTTP surface: `/api/{service}`, the online-banking pages under `/ebank`, and onboarding.

Service work (SQLite, SM2, scrypt) runs in the thread pool so the event loop stays free for the
notifier and for requests that magic amounts hold open. The `/_sim/partners` routes stand in for
the bank's out-of-band onboarding and key management.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from banksim.core.bank import BankContext
from banksim.core.magic import withhold_answer
from banksim.core.partners import PartnerConflict
from banksim.core.simapi import FaultMiddleware, sim_routes
from banksim.jhb import pages, wire
from banksim.jhb.codes import RetCode
from banksim.jhb.gateway import Gateway, plain_error
from banksim.jhb.keyring import DEFAULT_ROTATION_GRACE_S, Keyring, OnboardingPack, Rotation
from banksim.jhb.mandates import Mandates
from banksim.jhb.service import JhbService, PageError
from banksim.jhb.store import Payment, PaymentStatus

SESSION_COOKIE = "jhb_ebank_session"


class JhbApp:
    def __init__(
        self, context: BankContext, keyring: Keyring, gateway: Gateway, service: JhbService, mandates: Mandates
    ) -> None:
        self._context = context
        self._mandates = mandates
        self._keyring = keyring
        self._gateway = gateway
        self._service = service

    def build(self) -> FaultMiddleware:
        routes = [
            Route("/api/{service}", self.api, methods=["POST"]),
            Route("/ebank/pay", self.pay_page, methods=["GET"]),
            Route("/ebank/login", self.login, methods=["POST"]),
            Route("/ebank/confirm", self.confirm_page, methods=["GET"]),
            Route("/ebank/confirm", self.confirm, methods=["POST"]),
            Route("/_sim/partners", self.onboard, methods=["POST"]),
            Route("/_sim/partners/{partner_id}/rotate-key", self.rotate_key, methods=["POST"]),
            Route("/_sim/mandates/{mandate_no}/revoke", self.revoke_mandate, methods=["POST"]),
            *sim_routes(self._context),
        ]
        return FaultMiddleware(Starlette(routes=routes), self._context)

    # The API

    async def api(self, request: Request) -> Response:
        try:
            message = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return JSONResponse(plain_error(RetCode.MESSAGE_MALFORMED, "the body is not JSON"))
        result = await run_in_threadpool(
            self._gateway.handle, request.path_params["service"], message, str(request.base_url)
        )
        if result.withhold:
            # Magic 96/97: hold the connection past any client timeout, then give up without a body.
            await withhold_answer(self._context.config.hang_s)
            return Response(status_code=504)
        return JSONResponse(result.payload)

    # The payer's pages

    async def pay_page(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            payment = await run_in_threadpool(self._service.payment_for_page, token)
        except PageError as exc:
            return HTMLResponse(pages.message_page("无法支付", str(exc)), status_code=404)
        if page := self._finished_page(payment):
            return page
        return HTMLResponse(pages.login_page(payment, self._merchant(payment)))

    async def login(self, request: Request) -> Response:
        form = await request.form()
        token, card_no, password = (str(form.get(name, "")) for name in ("token", "card_no", "password"))
        try:
            session = await run_in_threadpool(self._service.login, token, card_no, password)
        except PageError as exc:
            return await self._login_again(token, str(exc))
        response = RedirectResponse(f"/ebank/confirm?token={token}", status_code=303)
        response.set_cookie(SESSION_COOKIE, session, path="/ebank", httponly=True, samesite="lax")
        return response

    async def confirm_page(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            payment = await run_in_threadpool(self._service.payment_for_page, token)
        except PageError as exc:
            return HTMLResponse(pages.message_page("无法支付", str(exc)), status_code=404)
        if page := self._finished_page(payment):
            return page
        session = request.cookies.get(SESSION_COOKIE, "")
        if not payment.session_token or session != payment.session_token:
            return RedirectResponse(f"/ebank/pay?token={token}", status_code=303)
        return HTMLResponse(pages.confirm_page(payment, self._merchant(payment)))

    async def confirm(self, request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", ""))
        session = request.cookies.get(SESSION_COOKIE, "")
        try:
            payment = await run_in_threadpool(self._service.confirm, token, session)
        except PageError as exc:
            return await self._login_again(token, str(exc))
        response = RedirectResponse(return_url_for(payment), status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/ebank")
        return response

    async def _login_again(self, token: str, error: str) -> Response:
        try:
            payment = await run_in_threadpool(self._service.payment_for_page, token)
        except PageError as exc:
            return HTMLResponse(pages.message_page("无法支付", str(exc)), status_code=404)
        if page := self._finished_page(payment):
            return page
        return HTMLResponse(pages.login_page(payment, self._merchant(payment), error), status_code=400)

    def _finished_page(self, payment: Payment) -> Response | None:
        """A page for an order that can no longer be paid (paid, failed or closed)."""
        if payment.status is PaymentStatus.WAIT_PAY:
            return None
        if payment.status is PaymentStatus.CLOSED:
            closed = pages.message_page("订单已关闭", "订单已超时关闭，请返回商户重新下单", payment.return_url)
            return HTMLResponse(closed, status_code=410)
        done = pages.message_page("订单已处理", "该订单已处理，请返回商户查看结果", return_url_for(payment))
        return HTMLResponse(done)

    def _merchant(self, payment: Payment) -> str:
        return self._context.partners.name(payment.partner_id) or payment.partner_id

    # Onboarding and key rotation (out of band at a real bank)

    async def onboard(self, request: Request) -> Response:
        data = await _json_object(request)
        if data is None or not isinstance(data.get("public_key"), str):
            return JSONResponse({"error": "public_key (SM2, PEM or hex 04||x||y) is required"}, status_code=400)
        try:
            pack = await run_in_threadpool(
                lambda: self._keyring.onboard(
                    name=str(data.get("name") or "天付支付有限公司"),
                    public_key_text=str(data["public_key"]),
                    partner_id=_optional_str(data.get("partner_id")),
                    reserve_acc_no=_optional_str(data.get("reserve_acc_no")),
                )
            )
        except PartnerConflict as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        except ValueError as exc:
            return JSONResponse({"error": f"public_key is not an SM2 key: {exc}"}, status_code=400)
        return JSONResponse(pack_view(pack, str(request.base_url)))

    async def rotate_key(self, request: Request) -> Response:
        data = await _json_object(request) or {}
        grace_s = data.get("grace_s", DEFAULT_ROTATION_GRACE_S)
        if not isinstance(grace_s, int | float) or isinstance(grace_s, bool) or grace_s < 0:
            return JSONResponse({"error": "grace_s must be a non-negative number"}, status_code=400)
        partner_id = request.path_params["partner_id"]
        try:
            rotation = await run_in_threadpool(self._keyring.rotate, partner_id, float(grace_s))
        except KeyError:
            return JSONResponse({"error": f"no partner {partner_id}"}, status_code=404)
        return JSONResponse(rotation_view(rotation))


    # The payer's own actions in JHB's app (stand-ins for the bank's mobile app)

    async def revoke_mandate(self, request: Request) -> Response:
        """The payer revokes a mandate in JHB's app; the partner gets `mandate.revoke.notify`."""
        mandate_no = request.path_params["mandate_no"]
        view = await run_in_threadpool(self._mandates.revoke_by_payer, mandate_no)
        if view is None:
            return JSONResponse({"error": "no such mandate"}, status_code=404)
        return JSONResponse(view)


def return_url_for(payment: Payment) -> str:
    """The partner's `return_url` with a few unsigned display parameters appended."""
    parts = urlsplit(payment.return_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [
        ("out_trade_no", payment.out_trade_no),
        ("jhb_trade_no", payment.jhb_trade_no),
        ("amount", wire.format_yuan(payment.amount_minor)),
        ("status", payment.status.value),
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def pack_view(pack: OnboardingPack, base_url: str) -> dict[str, Any]:
    return {
        "bank": "JHB",
        "partner_id": pack.partner_id,
        "partner_name": pack.partner_name,
        "api_base_url": base_url.rstrip("/"),
        "jhb_public_key_pem": pack.jhb_public_key_pem,
        "jhb_public_key_hex": pack.jhb_public_key_hex,
        "sm2_user_id": "1234567812345678",
        "signature_encoding": "DER",
        "key_id": pack.key_id,
        "data_key": pack.data_key.hex(),
        "reserve_acc_no": pack.reserve_acc_no,
    }


def rotation_view(rotation: Rotation) -> dict[str, Any]:
    return {
        "partner_id": rotation.partner_id,
        "key_id": rotation.key_id,
        "data_key": rotation.data_key.hex(),
        "previous_key_ids": list(rotation.previous_key_ids),
        "previous_valid_until": rotation.previous_valid_until.isoformat() if rotation.previous_valid_until else None,
    }


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _optional_str(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None
