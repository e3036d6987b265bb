"""Merchant self-service routes: the platform's public keys, and rotating the merchant's own key.

``GET /v1/platform-keys`` is the one unauthenticated ``/v1`` route: merchants (and the SDK) fetch the
key that verifies response signatures from it. ``POST /v1/keys`` registers a new public key and
starts a rotation: the merchant's current keys stay valid for ``overlap_s`` more seconds.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from tianpay.services.merchants import KeyRequest, KeyTools, rotate_key

from .deps import AuthenticatedMerchant, ContainerDep
from .schemas import KeyOut, PlatformKeyOut, PlatformKeysOut, RetiringKeyOut, RotateKeyIn

router = APIRouter(prefix="/v1", tags=["keys"])


@router.get(
    "/platform-keys",
    response_model=PlatformKeysOut,
    summary="The platform's response-signing keys (no authentication)",
)
async def list_platform_keys(container: ContainerDep) -> PlatformKeysOut:
    key = container.platform_key
    return PlatformKeysOut(data=[PlatformKeyOut(key_id=key.key_id, public_key_pem=key.public_key_pem)])


@router.post("/keys", response_model=KeyOut, status_code=201, summary="Register a new public key (rotation)")
async def create_key(body: RotateKeyIn, merchant: AuthenticatedMerchant, container: ContainerDep) -> KeyOut:
    """Adds the public key; the merchant's current keys expire ``overlap_s`` seconds from now."""
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    rotation = await run_in_threadpool(
        lambda: rotate_key(
            container.uow,
            tools,
            merchant.merchant_id,
            KeyRequest(public_key_pem=body.public_key.encode()),
            overlap=timedelta(seconds=body.overlap_s),
        )
    )
    return KeyOut(
        key_id=rotation.new_key.key_id,
        algorithm=rotation.new_key.algorithm.value,
        retiring=[RetiringKeyOut(key_id=k, expires_at=at) for k, at in rotation.retiring],
    )
