"""Signed-in pages: one guard per site (session or redirect, CSRF or 403), cookies, forms, headers.

A site (the merchant portal, the operator console, the wallet) builds one ``PageGuard`` naming its
cookies and how to find who a session token belongs to, and its routes take ``Depends(guard.page)``: the guard
redirects a signed-out browser to the login page, refuses a POST without a valid CSRF token with 403,
and hands the route the signed-in principal, the parsed form and the CSRF token for the next page.
CSRF tokens are HMAC-SHA256(site key, subject + a random nonce kept in an HttpOnly cookie), as for
the cashier (``entrypoints/cashier/security.py``), whose headers and token helpers are reused here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Generic, Literal, TypeVar
from urllib.parse import parse_qs, quote

from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from tianpay.bootstrap import Container
from tianpay.entrypoints.api.deps import get_container
from tianpay.entrypoints.cashier import security

MAX_FORM_BYTES: Final = 64 * 1024
MAX_FORM_FIELDS: Final = 40
NONCE_MAX_AGE_S: Final = security.NONCE_MAX_AGE_S
add_security_headers = security.add_security_headers

P = TypeVar("P")


class PageInterrupt(Exception):
    """Raised by a page dependency to answer with ``response`` instead of running the route."""

    def __init__(self, response: Response) -> None:
        super().__init__("page interrupted")
        self.response = response


async def _interrupted(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageInterrupt)
    return exc.response


def install_page_handlers(app: FastAPI) -> None:
    """Lets page guards redirect or refuse from inside a dependency."""
    app.add_exception_handler(PageInterrupt, _interrupted)


def site_secret(container: Container, label: bytes) -> bytes:
    """A per-site key derived one-way from the platform key, shared by every ``serve`` process."""
    raw = container.platform_key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return hmac.new(raw, label, hashlib.sha256).digest()


def is_https(container: Container) -> bool:
    return container.settings.base_url.startswith("https://")


SameSite = Literal["strict", "lax"]


def set_cookie(
    container: Container, response: Response, name: str, value: str, *, path: str, max_age_s: int,
    same_site: SameSite = "strict",
) -> None:
    """HttpOnly, SameSite=Strict unless a site needs Lax, and Secure whenever the platform is served over https."""
    response.set_cookie(
        name, value, max_age=max_age_s, path=path, httponly=True, samesite=same_site, secure=is_https(container)
    )


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (first value of each single-valued field); {} when oversized or bad."""
    cached = getattr(request.state, "form_fields", None)
    if isinstance(cached, dict):
        return cached
    body = await request.body()
    fields: dict[str, str] = {}
    if len(body) <= MAX_FORM_BYTES:
        try:
            parsed = parse_qs(body.decode("utf-8"), max_num_fields=MAX_FORM_FIELDS)
        except (UnicodeDecodeError, ValueError):
            parsed = {}
        fields = {name: values[0] for name, values in parsed.items() if len(values) == 1}
    request.state.form_fields = fields
    return fields


def see_other(location: str) -> Response:
    return add_security_headers(RedirectResponse(location, status_code=303))


@dataclass(frozen=True, slots=True)
class Page(Generic[P]):
    """What a guarded route receives: who is signed in, the POSTed form, and the page's CSRF token."""

    principal: P
    form: Mapping[str, str]
    csrf_token: str
    nonce: str
    is_new_nonce: bool
    session_token: str


@dataclass(frozen=True, slots=True)
class PageGuard(Generic[P]):
    """One site's guard. ``resolve(container, session_token)`` returns the principal or None.

    ``same_site`` is the nonce cookie's SameSite: the wallet keeps Lax, since payers arrive at its
    pages by links from the cashier, which they reach from merchants' sites. With ``refuses_signed_out_posts`` a POST
    without a session is refused like a bad CSRF token (403) instead of redirected to the login page,
    so that a form posted after the session ended never runs and never loses its fields silently.
    """

    site: str
    login_path: str
    session_cookie: str
    nonce_cookie: str
    cookie_path: str
    resolve: Callable[[Container, str | None], P | None]
    forbidden: Callable[[Request, Container], Response]
    secret_label: bytes = field(default=b"")
    same_site: SameSite = "strict"
    refuses_signed_out_posts: bool = False

    def secret(self, container: Container) -> bytes:
        return site_secret(container, self.secret_label or f"tianpay {self.site} csrf v1".encode())

    def nonce(self, request: Request) -> tuple[str, bool]:
        existing = request.cookies.get(self.nonce_cookie)
        if existing and len(existing) <= 64:
            return existing, False
        return security.new_nonce(), True

    def csrf_token(self, container: Container, nonce: str) -> str:
        return security.csrf_token(self.secret(container), self.site, nonce)

    async def csrf_ok(self, container: Container, request: Request) -> bool:
        form = await read_form(request)
        nonce = request.cookies.get(self.nonce_cookie)
        return security.csrf_valid(self.secret(container), self.site, nonce, form.get("csrf_token"))

    def finish(self, container: Container, response: Response, nonce: str, is_new: bool) -> Response:
        """Sets the nonce cookie when the page made a new one, and the security headers."""
        if is_new:
            set_cookie(container, response, self.nonce_cookie, nonce, path=self.cookie_path,
                       max_age_s=NONCE_MAX_AGE_S, same_site=self.same_site)
        return add_security_headers(response)

    async def page(self, request: Request) -> Page[P]:
        """The dependency: signed in (or a redirect to the login page) and, for a POST, a valid CSRF token."""
        container = get_container(request)
        token = request.cookies.get(self.session_cookie)
        principal = self.resolve(container, token)
        if (principal is None or token is None) and request.method == "POST" and self.refuses_signed_out_posts:
            raise PageInterrupt(self.forbidden(request, container))
        if principal is None or token is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise PageInterrupt(see_other(f"{self.login_path}?next={quote(target, safe='')}"))
        form: Mapping[str, str] = {}
        if request.method == "POST":
            if not await self.csrf_ok(container, request):
                raise PageInterrupt(self.forbidden(request, container))
            form = await read_form(request)
        nonce, is_new = self.nonce(request)
        return Page(principal, form, self.csrf_token(container, nonce), nonce, is_new, token)

    async def posted_form(self, request: Request) -> Mapping[str, str]:
        """The dependency of a POST that needs no session (sign-in, sign-up): its form, CSRF-checked or 403."""
        container = get_container(request)
        if not await self.csrf_ok(container, request):
            raise PageInterrupt(self.forbidden(request, container))
        return await read_form(request)


def static_response(directory: Path, name: str, media_types: Mapping[str, str]) -> Response:
    """One of a site's own static files (only those named in ``media_types``: no path from the URL)."""
    media_type = media_types.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    response = Response((directory / name).read_bytes(), media_type=media_type)
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def safe_next(target: str | None, site: str) -> str:
    """Where to go after sign-in: only a page of ``site`` itself (``/console``, ``/merchant``), since an
    open redirect after sign-in would hand phishers a trusted link."""
    if target and target.startswith(site) and "//" not in target and "\\" not in target:
        return target
    return site
