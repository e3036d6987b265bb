"""Builds the ASGI application served by ``tianpay serve``: routes, error envelope, signing.

Every response passes through ``SignedApiMiddleware`` (request id, authentication of ``/v1``,
platform signature), and every failure is rendered by the handlers in ``errors.py``. The OpenAPI
document describes the signature scheme and puts the error envelope on every operation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from tianpay.bootstrap import Container
from tianpay.entrypoints.cashier import router as cashier_router
from tianpay.entrypoints.channels_notify import router as channels_notify_router
from tianpay.entrypoints.console import router as console_router
from tianpay.entrypoints.health import health_router
from tianpay.entrypoints.merchant_portal import router as merchant_portal_router
from tianpay.entrypoints.metrics import install_metrics
from tianpay.entrypoints.security_headers import SecurityHeadersMiddleware, docs_router
from tianpay.entrypoints.wallet import router as wallet_router
from tianpay.entrypoints.web.pages import install_page_handlers

from .auth import ALGORITHMS, MERCHANT_ID_HEADER, RequestAuthenticator
from .balance import router as balance_router
from .cards import router as cards_router
from .confirm import router as confirm_router
from .errors import install_error_handlers
from .events import router as events_router
from .mandates import router as mandates_router
from .members import router as members_router
from .merchants import router as merchants_router
from .payments import router as payments_router
from .payouts import router as payouts_router
from .refunds import router as refunds_router
from .schemas import ErrorEnvelope
from .settlements import router as settlements_router
from .signing import (
    PUBLIC_API_PATHS,
    RESPONSE_COMPONENTS,
    RESPONSE_SIGNATURE_LABEL,
    ResponseSigner,
    SignedApiMiddleware,
    requires_signature,
)
from .statistics import router as statistics_router

SECURITY_SCHEME = "HttpMessageSignature"
_ERROR_RESPONSES = {
    "400": "Invalid request: malformed JSON, unknown or missing field, wrong type, bad value",
    "401": "Authentication failed: missing, invalid, stale or replayed signature, or unknown keyid",
    "404": "No such resource or route",
    "409": "Idempotency conflict or a state that forbids the operation",
    "500": "Internal error (no details; quote the request id)",
}

SIGNATURE_DESCRIPTION = f"""\
Requests are signed with **HTTP Message Signatures (RFC 9421)** and carry a **Content-Digest
(RFC 9530)** of the body.

* Headers: `Signature-Input`, `Signature`, `{MERCHANT_ID_HEADER}` (your merchant id; must own the key)
  and, with a body, `Content-Type` and `Content-Digest` (`sha-256` or `sha-512`).
* Exactly one signature (any label, e.g. `sig1`).
* Covered components: `"@method"`, `"@target-uri"`; with a body also `"content-type"` and
  `"content-digest"`. More components may be covered.
* Parameters: `created` (required, Unix seconds), `keyid` (required, your key id), `nonce`
  (optional, recommended), `alg` (optional; must match the key).
* Algorithms: {", ".join(f"`{a.value}`" for a in ALGORITHMS)}.
* A signature older than 300 s (or more than 30 s in the future) is refused, and so is a second use
  of the same signed content or nonce within that window.
* `@target-uri` is compared with the public base URL of the platform plus the path and query.

Responses (errors included) are signed by the platform's ed25519 key (label
`{RESPONSE_SIGNATURE_LABEL}`, components {", ".join(f'`"{c}"`' for c in RESPONSE_COMPONENTS)},
parameters `created`, `keyid`, `alg="ed25519"`) and carry `Content-Digest` and `Request-Id`; fetch
the key from `GET /v1/platform-keys`.
"""


def create_app(container: Container, *, extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    """The application; ``extra_routers`` lets tests mount routes of their own."""
    app = FastAPI(
        title="Tianpay merchant API",
        version="1",
        description="Signed JSON over HTTP. See docs/api.md for the signing guide.",
        debug=False,
        # The documentation pages are served by ``security_headers.docs_router`` under a strict CSP.
        docs_url=None,
        redoc_url=None,
    )
    app.state.container = container
    app.state.authenticator = RequestAuthenticator(container)
    install_error_handlers(app)
    install_page_handlers(app)
    app.include_router(merchants_router)
    app.include_router(balance_router)
    app.include_router(payments_router)
    app.include_router(refunds_router)
    app.include_router(payouts_router)
    app.include_router(cards_router)
    app.include_router(mandates_router)
    app.include_router(confirm_router)
    app.include_router(members_router)
    app.include_router(events_router)
    app.include_router(statistics_router)
    app.include_router(settlements_router)
    # Payer pages and bank notifications: outside /v1, so no merchant signature is asked of them.
    app.include_router(cashier_router)
    app.include_router(wallet_router)
    app.include_router(merchant_portal_router)
    app.include_router(console_router)
    app.include_router(channels_notify_router)
    app.include_router(docs_router(app.title))
    # Probes for load balancers and orchestrators (docs/deploy.md, "Health checks"); not in the schema.
    app.include_router(health_router(container.engine))
    for router in extra_routers:
        app.include_router(router)
    app.add_middleware(
        SignedApiMiddleware,  # type: ignore[arg-type]
        authenticator=app.state.authenticator,
        signer=ResponseSigner(container.platform_key, container.clock.now),
        public_base_url=container.settings.public_base_url,
        new_id=container.ids.new,
    )
    # Headers a response did not set itself (error pages, 404s, JSON): framing and sniffing refused.
    app.add_middleware(SecurityHeadersMiddleware)  # type: ignore[arg-type]
    # Outermost, so request latency includes authentication and signing (docs/statistics.md).
    install_metrics(app, container)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "Signature",
        "description": SIGNATURE_DESCRIPTION,
    }
    schemas = components.setdefault("schemas", {})
    envelope_schema = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in envelope_schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas["ErrorEnvelope"] = envelope_schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            _describe_operation(path, operation)
    app.openapi_schema = schema
    return schema


def _describe_operation(path: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for status, description in _ERROR_RESPONSES.items():
        if status == "401" and not requires_signature(path):
            continue
        responses.setdefault(status, {"description": description, "content": error_content})
    if requires_signature(path) and path not in PUBLIC_API_PATHS:
        operation["security"] = [{SECURITY_SCHEME: []}]
        parameters = operation.setdefault("parameters", [])
        parameters.append(
            {
                "name": MERCHANT_ID_HEADER,
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "Your merchant id; must be the merchant that owns the signing key.",
            }
        )
