"""HBB's HTTP face: the ACP gateway endpoints, the online-banking pages, and `/_sim/partners`.

Routes only translate between HTTP and `Gateway`; the rules live there. Synchronous answers are
raw ACP `k=v&k=v` text; the payer's pages are rendered from `templates/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from banksim.core.cards import mask
from banksim.core.magic import withhold_answer
from banksim.core.money import format_yuan
from banksim.core.simapi import FaultMiddleware, sim_routes
from banksim.hbb import payout, quickpay, statement, wire
from banksim.hbb.gateway import AcpError, AnswerWithheld, Gateway
from banksim.hbb.onboarding import OnboardingError, onboard
from banksim.hbb.orders import Order, OrderStatus
from banksim.hbb.wire import FormatError, RespCode, TxnType

_templates = Environment(loader=PackageLoader("banksim.hbb", "templates"), autoescape=select_autoescape(["html"]))

BackHandler = Callable[[Gateway, Mapping[str, str]], dict[str, str]]
# txnType → handler for backTransReq.do (12 is the payout) and for fileTransfer.do (76, the statement).
BACK_HANDLERS: dict[str, BackHandler] = {
    TxnType.REFUND.value: Gateway.refund,
    TxnType.CONSUME.value: quickpay.consume,
    TxnType.SEND_SMS.value: quickpay.send_sms,
    TxnType.BIND.value: quickpay.bind,
    TxnType.TOKEN_QUERY.value: quickpay.token_query,
    TxnType.UNBIND.value: quickpay.unbind,
    TxnType.PAYOUT.value: payout.payout,
}
FILE_HANDLERS: dict[str, BackHandler] = {TxnType.STATEMENT.value: statement.statement}


def build_app(gateway: Gateway) -> Starlette:
    hang_s = gateway.context.config.hang_s

    async def front_trans(request: Request) -> Response:
        try:
            fields = wire.parse_form(await request.body())
            gateway.verify(fields)
            order = gateway.accept_consume(fields)
        except FormatError as error:
            return _error_page(RespCode.FORMAT, str(error))
        except AcpError as error:
            if error.post_back and "frontUrl" in fields:
                return _refused_page(gateway, fields, error)
            return _error_page(error.code, error.detail)
        except AnswerWithheld:
            await withhold_answer(hang_s)
            return Response(status_code=504)
        return RedirectResponse(f"/ebank/pay/{order.session}", status_code=303)

    async def pay_page(request: Request) -> Response:
        session = request.path_params["session"]
        try:
            order = gateway.order_for_session(session)
        except AcpError as error:
            return _error_page(error.code, error.detail)
        if order.status is OrderStatus.AUTHENTICATED:
            return RedirectResponse(f"/ebank/pay/{session}/confirm", status_code=303)
        if order.status is OrderStatus.AWAITING_PAYER:
            return _login_page(gateway, order, "", "")
        return _result_page(gateway, order)

    async def login(request: Request) -> Response:
        session = request.path_params["session"]
        form = await request.form()
        card_no = str(form.get("card_no", "")).strip()
        try:
            result = gateway.login(session, card_no, str(form.get("password", "")))
        except AcpError as error:
            return _error_page(error.code, error.detail)
        if result.error:
            return _login_page(gateway, result.order, result.error, card_no)
        return RedirectResponse(f"/ebank/pay/{session}", status_code=303)

    async def confirm_page(request: Request) -> Response:
        session = request.path_params["session"]
        try:
            order = gateway.order_for_session(session)
        except AcpError as error:
            return _error_page(error.code, error.detail)
        if order.status is not OrderStatus.AUTHENTICATED:
            return RedirectResponse(f"/ebank/pay/{session}", status_code=303)
        return _confirm_page(gateway, order)

    async def confirm(request: Request) -> Response:
        session = request.path_params["session"]
        try:
            order = gateway.confirm(session)
        except AcpError as error:
            return _error_page(error.code, error.detail)
        except AnswerWithheld:
            await withhold_answer(hang_s)
            return Response(status_code=504)
        if order.status in (OrderStatus.AWAITING_PAYER, OrderStatus.AUTHENTICATED):
            return RedirectResponse(f"/ebank/pay/{session}", status_code=303)
        return _result_page(gateway, order)

    async def back_trans(request: Request) -> Response:
        return await _server_call(request, gateway, BACK_HANDLERS, hang_s)

    async def file_trans(request: Request) -> Response:
        return await _server_call(request, gateway, FILE_HANDLERS, hang_s)

    async def query_trans(request: Request) -> Response:
        return await _server_call(request, gateway, {TxnType.QUERY.value: Gateway.query}, hang_s)

    async def partners(request: Request) -> Response:
        try:
            payload = json.loads(await request.body() or b"{}")
            if not isinstance(payload, dict):
                raise OnboardingError("expected a JSON object")
            return JSONResponse(onboard(gateway, payload))
        except json.JSONDecodeError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        except OnboardingError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status_code)

    routes = [
        Route("/gateway/api/frontTransReq.do", front_trans, methods=["POST"]),
        Route("/gateway/api/backTransReq.do", back_trans, methods=["POST"]),
        Route("/gateway/api/queryTrans.do", query_trans, methods=["POST"]),
        Route("/gateway/api/fileTransfer.do", file_trans, methods=["POST"]),
        Route("/ebank/pay/{session}", pay_page, methods=["GET"]),
        Route("/ebank/pay/{session}/login", login, methods=["POST"]),
        Route("/ebank/pay/{session}/confirm", confirm_page, methods=["GET"]),
        Route("/ebank/pay/{session}/confirm", confirm, methods=["POST"]),
        Route("/_sim/partners", partners, methods=["POST"]),
        *sim_routes(gateway.context),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(FaultMiddleware, context=gateway.context)
    return app


async def _server_call(
    request: Request, gateway: Gateway, handlers: Mapping[str, BackHandler], hang_s: float
) -> Response:
    fields: dict[str, str] = {}
    try:
        fields = wire.parse_form(await request.body())
        gateway.verify(fields)
        handler = handlers.get(fields.get("txnType", ""))
        if handler is None:
            raise FormatError(f"txnType {fields.get('txnType', '')!r} is not served at this endpoint")
        answer = handler(gateway, fields)
    except FormatError as error:
        # Error answers echo only the plain identifying fields, never what the request carried in
        # `accNo`, `customerInfo` or `token` (ciphertext and card tokens stay out of answers).
        answer = gateway.answer(wire.echo(fields), RespCode.FORMAT, f"{wire.message(RespCode.FORMAT)}: {error}")
    except AcpError as error:
        answer = gateway.answer(wire.echo(fields), error.code, error.detail)
    except AnswerWithheld:
        await withhold_answer(hang_s)
        return Response(status_code=504)
    return PlainTextResponse(wire.encode_answer(answer), media_type=wire.ANSWER_CONTENT_TYPE)


def _render(name: str, **values: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(name).render(**values))


def _error_page(code: RespCode, detail: str) -> HTMLResponse:
    response = _render("error.html", resp_code=code.value, resp_msg=wire.message(code), detail=detail)
    response.status_code = 400
    return response


def _login_page(gateway: Gateway, order: Order, error: str, card_no: str) -> HTMLResponse:
    timeout = wire.parse_time(order.pay_timeout, "payTimeout")
    return _render(
        "login.html",
        order=order,
        merchant=gateway.merchant_name(order),
        amount=format_yuan(order.amount_minor),
        error=error,
        card_no=card_no,
        pay_timeout=f"{timeout:%Y-%m-%d %H:%M:%S}",
    )


def _confirm_page(gateway: Gateway, order: Order) -> HTMLResponse:
    account = gateway.context.books.account(order.acc_no)
    return _render(
        "confirm.html",
        order=order,
        merchant=gateway.merchant_name(order),
        amount=format_yuan(order.amount_minor),
        card=mask(order.acc_no),
        balance=format_yuan(account.balance_minor if account else 0),
    )


def _result_page(gateway: Gateway, order: Order) -> HTMLResponse:
    fields = gateway.result(order)
    code = fields["respCode"]
    headlines = {"00": "支付成功", "05": "支付处理中"}
    return _render(
        "result.html",
        order=order,
        merchant=gateway.merchant_name(order),
        amount=format_yuan(order.amount_minor),
        succeeded=code == RespCode.SUCCESS,
        headline=headlines.get(code, "支付失败"),
        resp_code=code,
        resp_msg=fields["respMsg"],
        front_url=order.front_url,
        fields=fields,
    )


def _refused_page(gateway: Gateway, request_fields: Mapping[str, str], error: AcpError) -> HTMLResponse:
    """Magic 91: refused before processing; nothing is recorded, the browser goes back signed."""
    fields = gateway.answer(request_fields, error.code)
    amount = request_fields.get("txnAmt", "0")
    return _render(
        "result.html",
        order={"order_id": request_fields.get("orderId", "")},
        merchant=gateway.merchant_name_for(request_fields.get("merId", "")),
        amount=format_yuan(int(amount) if amount.isdigit() else 0),
        succeeded=False,
        headline="支付失败",
        resp_code=error.code.value,
        resp_msg=wire.message(error.code),
        front_url=request_fields["frontUrl"],
        fields=fields,
    )
