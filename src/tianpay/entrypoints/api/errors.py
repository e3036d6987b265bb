"""The merchant API's one error envelope, and the handlers that map every failure onto it.

``{"error": {"type", "code", "message", "param", "request_id"}}``: ``type`` is the family a client
branches on (``invalid_request_error``, ``authentication_error``, ``idempotency_error``,
``api_error``), ``code`` the precise reason, ``param`` the request field at fault. Domain errors map
by their ``kind``/``code``; a 500 never carries a stack trace or an exception's text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tianpay.domain.errors import DomainError

logger = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
IDEMPOTENCY = "idempotency_error"
RATE_LIMIT = "rate_limit_error"
API_ERROR = "api_error"

# HTTP status by domain error code, for codes whose kind alone does not say it. Other modules may
# add their own codes here at import time (e.g. a payments error that means 402).
DOMAIN_ERROR_STATUS: dict[str, int] = {
    "resource_missing": 404,
    "conflict": 409,
    "illegal_state_transition": 409,
    "idempotency_conflict": 409,
    "insufficient_balance": 400,
    "phone_in_use": 409,
    "id_number_in_use": 409,
    "payment_password_already_set": 409,
    "payment_password_locked": 423,
    "card_already_bound": 409,
    "card_binding_not_pending": 409,
    "bill_conflict": 409,
}
_STATUS_BY_KIND = {
    INVALID_REQUEST: 400,
    AUTHENTICATION: 401,
    IDEMPOTENCY: 409,
    RATE_LIMIT: 429,
    API_ERROR: 500,
}

# Pydantic error types mapped to our codes. Custom types raised by schemas.py (amount_too_small,
# currency_unsupported …) are already our codes and pass through unchanged.
_VALIDATION_CODES = {
    "missing": "parameter_missing",
    "extra_forbidden": "parameter_unknown",
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "model_attributes_type": "invalid_json",
}
CUSTOM_VALIDATION_CODES = frozenset(
    {"amount_too_small", "amount_too_large", "currency_unsupported", "parameter_invalid"}
)


class ApiError(Exception):
    """A failure raised at the HTTP edge that already knows its envelope."""

    def __init__(
        self, status_code: int, type_: str, code: str, message: str, *, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type_
        self.code = code
        self.message = message
        self.param = param


class AuthenticationFailed(ApiError):
    """Every authentication failure: 401 ``authentication_error`` with a precise ``code``."""

    def __init__(self, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(401, AUTHENTICATION, code, message, param=param)


def request_id_of(request: Request) -> str:
    """The request's ``req_…`` id, set by the signing middleware for every HTTP request."""
    request_id = getattr(request.state, "request_id", None)
    return request_id if isinstance(request_id, str) else "req_unknown"


def envelope(
    type_: str, code: str, message: str, param: str | None, request_id: str
) -> dict[str, dict[str, str | None]]:
    return {"error": {"type": type_, "code": code, "message": message, "param": param, "request_id": request_id}}


def error_response(
    status_code: int,
    type_: str,
    code: str,
    message: str,
    *,
    request_id: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        envelope(type_, code, message, param, request_id), status_code=status_code, headers=headers
    )


def internal_error_response(request_id: str) -> JSONResponse:
    """The 500 answer: a fixed message and the request id to quote to support, nothing else."""
    return error_response(
        500, API_ERROR, "internal_error", "an internal error occurred; quote the request id to support",
        request_id=request_id,
    )


def status_for(error: DomainError) -> int:
    return DOMAIN_ERROR_STATUS.get(error.code) or _STATUS_BY_KIND.get(error.kind, 400)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status_code, exc.type, exc.code, exc.message, param=exc.param, request_id=request_id_of(request)
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = status_for(exc)
    request_id = request_id_of(request)
    if status >= 500:
        # Internal invariants (an unbalanced entry …) are logged, not explained to the caller.
        logger.error("domain error %s on request %s: %s", exc.code, request_id, exc.message)
        return internal_error_response(request_id)
    return error_response(status, exc.kind, exc.code, exc.message, param=exc.param, request_id=request_id)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: Sequence[Any] = exc.errors()
    first: Mapping[str, Any] = errors[0] if errors else {"type": "value_error", "loc": (), "msg": "invalid"}
    code, param, message = describe_validation_error(first)
    return error_response(400, INVALID_REQUEST, code, message, param=param, request_id=request_id_of(request))


def describe_validation_error(error: Mapping[str, Any]) -> tuple[str, str | None, str]:
    """(code, param, message) for one pydantic error; the input value is never echoed back."""
    type_ = str(error.get("type", "value_error"))
    loc = [part for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")]
    if type_ in ("json_invalid", "json_type"):
        return "invalid_json", None, "the request body is not valid JSON"
    if type_ == "model_attributes_type" or not loc:
        return "invalid_json", None, "the request body must be a JSON object"
    param = ".".join(str(part) for part in loc)
    code = type_ if type_ in CUSTOM_VALIDATION_CODES else _VALIDATION_CODES.get(type_, "parameter_invalid")
    if code == "parameter_missing":
        return code, param, f"{param} is required"
    if code == "parameter_unknown":
        return code, param, f"{param} is not a parameter of this request"
    return code, param, f"{param}: {error.get('msg', 'invalid value')}"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    request_id = request_id_of(request)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 404:
        return error_response(
            404, INVALID_REQUEST, "resource_missing", "no such resource or route", request_id=request_id
        )
    if exc.status_code == 405:
        return error_response(
            405, INVALID_REQUEST, "method_not_allowed", f"{request.method} is not allowed here",
            request_id=request_id, headers=headers,
        )
    if exc.status_code >= 500:
        return internal_error_response(request_id)
    detail = exc.detail if isinstance(exc.detail, str) else "the request was refused"
    return error_response(
        exc.status_code, INVALID_REQUEST, "request_refused", detail, request_id=request_id, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
