"""Browser security headers on every response, and the API documentation pages under a strict CSP.

Pages set their own headers (``entrypoints/cashier/security.py``, reused by the wallet, the portal
and the console); this middleware is the floor under them: a response that set no policy of its own
(an error page, a 404 of a static file, a JSON error) gets the strictest one, so no path is left
framable or sniffable. The docs pages load Swagger UI and ReDoc from their CDN and start Swagger UI
with one inline script; their policy names the CDN and that script's SHA-256, never 'unsafe-inline'.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tianpay.entrypoints.cashier.security import content_security_policy

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
OPENAPI_PATH = "/openapi.json"
CDN = "https://cdn.jsdelivr.net"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
_BASELINE = (
    (b"content-security-policy", content_security_policy().encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeadersMiddleware:
    """Adds each baseline header the response does not carry already (pages keep their own policy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in _BASELINE if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _docs_policy(page: bytes) -> str:
    """The CDN for scripts and styles, the page's own inline scripts by hash, nothing else inline.
    Styles may be inline: both UIs style their elements from script, which CSP sees as inline style."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {CDN} {hashes}".strip(),
            f"style-src 'self' {CDN} https://fonts.googleapis.com 'unsafe-inline'",
            "font-src https://fonts.gstatic.com",
            f"img-src 'self' data: {CDN} https://fastapi.tiangolo.com",
            "connect-src 'self'",
            "worker-src blob:",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _docs_policy(bytes(page.body))
    return page


def docs_router(title: str) -> APIRouter:
    """``/docs`` (Swagger UI) and ``/redoc``; there is no OAuth, so no OAuth2 redirect page."""
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_PATH)
    def swagger_ui() -> HTMLResponse:
        return _with_policy(get_swagger_ui_html(openapi_url=OPENAPI_PATH, title=f"{title} — Swagger UI"))

    @router.get(REDOC_PATH)
    def redoc() -> HTMLResponse:
        return _with_policy(get_redoc_html(openapi_url=OPENAPI_PATH, title=f"{title} — ReDoc"))

    return router
