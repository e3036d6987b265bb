"""FastAPI dependencies shared by every merchant API route, so routes read as prose.

``AuthenticatedMerchant`` is the verified caller (RFC 9421 signature, replay and freshness checked);
``ContainerDep`` is the process's composition root; ``stored_json_response`` turns the result of an
idempotent write (``tianpay.services.idempotency.run_idempotent``) into the HTTP response.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from tianpay.bootstrap import Container
from tianpay.services.idempotency import StoredResponse

from .auth import MerchantContext, authenticate
from .errors import request_id_of

__all__ = [
    "AuthenticatedMerchant",
    "ContainerDep",
    "MerchantContext",
    "RequestId",
    "get_container",
    "stored_json_response",
]

# Set on replayed idempotent responses, so a merchant can tell a first answer from a repeat.
IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"


def get_container(request: Request) -> Container:
    """The container that ``create_app`` stored on the application."""
    container: Container = request.app.state.container
    return container


def get_request_id(request: Request) -> str:
    """The ``req_…`` id the signing middleware gave this request (also sent as ``Request-Id``)."""
    return request_id_of(request)


ContainerDep = Annotated[Container, Depends(get_container)]
AuthenticatedMerchant = Annotated[MerchantContext, Depends(authenticate)]
RequestId = Annotated[str, Depends(get_request_id)]


def stored_json_response(stored: StoredResponse) -> JSONResponse:
    """The HTTP response for an idempotent write: the first answer, byte for byte the same body."""
    headers = {IDEMPOTENT_REPLAYED_HEADER: "true"} if stored.replayed else None
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)
