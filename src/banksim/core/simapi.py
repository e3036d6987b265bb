"""The simulator-only HTTP surface every bank shares: `/_sim/*`, the `/sms` page, and faults.

Banks mount `sim_routes(context)` next to their protocol routes and wrap their app in
`FaultMiddleware` so latency and outage apply to protocol endpoints only (never to `/_sim`,
which tests need even while a bank is "down").
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from banksim.core.bank import BankContext
from banksim.core.faults import FaultError
from banksim.core.money import format_yuan

_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
UNPROTECTED_PREFIXES = ("/_sim", "/sms")


class FaultMiddleware:
    """Applies the bank's latency and outage switches to everything but `/_sim` and `/sms`."""

    def __init__(self, app: ASGIApp, context: BankContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(UNPROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        settings = self.context.faults.settings
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        if settings.outage:
            # An outage looks like a gateway in front of the bank refusing the request: the bank
            # itself never sees it, so nothing was processed.
            response = Response("service unavailable", status_code=503, media_type="text/plain")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def sim_routes(context: BankContext) -> list[BaseRoute]:
    """Routes for `/_sim/health|state|faults|clock|sms` and the `/sms` outbox page."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"bank": context.code, "ok": True})

    async def state(request: Request) -> JSONResponse:
        return JSONResponse(state_snapshot(context))

    async def faults(request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                context.faults.update(await _json_object(request))
            except (FaultError, ValueError) as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(context.faults.settings.as_dict())

    async def clock(request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                _set_clock(context, await _json_object(request))
            except ValueError as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(_clock_view(context))

    async def sms_json(request: Request) -> JSONResponse:
        phone = request.query_params.get("phone")
        return JSONResponse([_sms_view(m.phone, m.text, m.sent_at) for m in context.sms.messages(phone)])

    async def sms_page(request: Request) -> HTMLResponse:
        return HTMLResponse(_sms_html(context, request.query_params.get("phone")))

    return [
        Route("/_sim/health", health),
        Route("/_sim/state", state),
        Route("/_sim/faults", faults, methods=["GET", "POST"]),
        Route("/_sim/clock", clock, methods=["GET", "POST"]),
        Route("/_sim/sms", sms_json),
        Route("/sms", sms_page),
    ]


def state_snapshot(context: BankContext) -> dict[str, Any]:
    books = context.books
    return {
        "bank": context.code,
        "name": context.profile.name_zh,
        "clock": _clock_view(context),
        "faults": context.faults.settings.as_dict(),
        "accounts": [
            {
                "acc_no": a.acc_no,
                "holder_name": a.holder_name,
                "kind": a.kind.value,
                "status": a.status.value,
                "balance_minor": a.balance_minor,
            }
            for a in books.accounts()
        ],
        "transfers": [
            {
                "bank_ref": t.bank_ref,
                "kind": t.kind,
                "debit_acc": t.debit_acc,
                "credit_acc": t.credit_acc,
                "amount_minor": t.amount_minor,
                "business_date": t.business_date.isoformat(),
                "statement_date": t.statement_date.isoformat(),
                "created_at": t.created_at.isoformat(),
                "memo": t.memo,
            }
            for t in books.transfers()
        ],
        "notifications": [
            {
                "notification_id": n.notification_id,
                "event_ref": n.event_ref,
                "url": n.url,
                "status": n.status.value,
                "attempts": n.attempts,
                "last_error": n.last_error,
            }
            for n in context.notifier.notifications()
        ],
        "clearing_positions": context.clearing.positions(),
    }


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    data = json.loads(body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _set_clock(context: BankContext, data: dict[str, Any]) -> None:
    clock = context.clock
    if data.get("reset"):
        clock.reset()
    if "offset_s" in data:
        clock.set_offset(float(data["offset_s"]))
    if "advance_s" in data:
        clock.advance(float(data["advance_s"]))
    if "now" in data:
        clock.set_now(datetime.fromisoformat(str(data["now"])))


def _clock_view(context: BankContext) -> dict[str, Any]:
    clock = context.clock
    return {
        "now": clock.local_now().isoformat(),
        "business_date": clock.business_date().isoformat(),
        "offset_s": clock.offset_s,
    }


def _sms_view(phone: str, text: str, sent_at: datetime) -> dict[str, Any]:
    found = _CODE.search(text)
    return {"phone": phone, "text": text, "sent_at": sent_at.isoformat(), "code": found.group(1) if found else None}


def _sms_html(context: BankContext, phone: str | None) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(m.sent_at.astimezone(context.clock.local_now().tzinfo).strftime('%m-%d %H:%M:%S'))}"
        f"</td><td>{html.escape(m.phone)}</td><td>{html.escape(m.text)}</td></tr>"
        for m in context.sms.messages(phone)
    )
    name = html.escape(context.profile.name_zh)
    reserve = context.books.account(context.profile.reserve_acc_no)
    reserve_line = f"备付金账户余额 ¥{format_yuan(reserve.balance_minor)}" if reserve else ""
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>{name} · 短信发件箱</title><meta http-equiv="refresh" content="5">
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:.4em .8em;text-align:left}}small{{color:#777}}</style></head>
<body><h1>{name} 短信发件箱</h1><p><small>模拟银行：发往预留手机号的短信显示在这里（每5秒刷新）。
{html.escape(reserve_line)}</small></p>
<form><label>手机号 <input name="phone" value="{html.escape(phone or "")}"></label> <button>筛选</button></form>
<table><tr><th>时间</th><th>手机号</th><th>内容</th></tr>{rows}</table></body></html>"""


class SimOnlyBank:
    """A bank whose protocol package does not exist yet: books, `/_sim` and `/sms` only."""

    def __init__(self, context: BankContext) -> None:
        self._context = context

    @property
    def context(self) -> BankContext:
        return self._context

    def asgi_app(self) -> ASGIApp:
        return Starlette(routes=sim_routes(self._context))

    async def start(self) -> None:
        self._context.notifier.start()

    async def stop(self) -> None:
        await self._context.notifier.stop()
