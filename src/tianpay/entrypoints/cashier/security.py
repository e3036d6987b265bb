"""The cashier's browser security: CSRF tokens bound to the payment, cookies and response headers.

A CSRF token is HMAC-SHA256(secret, payment id + a random nonce kept in an HttpOnly cookie): a page
on another site can neither read the cookie nor compute the token, so it cannot make a payer's
browser start a payment. The secret is derived from the platform's signing key, so every ``serve``
process sharing the data directory accepts the others' tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from fastapi import Response

from tianpay.bootstrap import Container

NONCE_COOKIE = "tp_cashier_nonce"
# The wallet's sign-in cookie (Path=/): the cashier reads it to offer a member's bound cards.
WALLET_SESSION_COOKIE = "tp_wallet_session"
LANG_COOKIE = "tp_lang"
COOKIE_PATH = "/cashier"
NONCE_MAX_AGE_S = 7 * 24 * 3600
LANG_MAX_AGE_S = 365 * 24 * 3600
_SECRET_LABEL = b"tianpay cashier csrf v1"


def csrf_secret(container: Container) -> bytes:
    """A key for cashier CSRF tokens, derived one-way from the platform key (never the key itself)."""
    raw = container.platform_key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return hmac.new(raw, _SECRET_LABEL, hashlib.sha256).digest()


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def csrf_token(secret: bytes, payment_id: str, nonce: str) -> str:
    return hmac.new(secret, f"{payment_id}\n{nonce}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: bytes, payment_id: str, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token:
        return False
    return hmac.compare_digest(csrf_token(secret, payment_id, nonce), token)


def set_cookie(response: Response, name: str, value: str, *, max_age_s: int, secure: bool) -> None:
    response.set_cookie(
        name, value, max_age=max_age_s, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure
    )


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    """No inline script or style; forms go only to us (and, on the redirect page, to the bank)."""
    form_action = " ".join(["'self'", *form_targets])
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            f"form-action {form_action}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


def add_security_headers(response: Response, *, form_targets: Iterable[str] = ()) -> Response:
    response.headers["Content-Security-Policy"] = content_security_policy(form_targets)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
