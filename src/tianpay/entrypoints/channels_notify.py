"""``POST /channels/{code}/notify``: where banks deliver their asynchronous notifications.

The raw body goes to the gateway service untouched (the channel verifies the bank's signature over
exactly those bytes), and the bank gets the answer its protocol expects (HBB ``ok``, JHB
``{"ret_code":"0000"}``). Nothing here is authenticated by merchant signatures: the bank's own
signature is the authentication.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from tianpay.entrypoints.api.deps import ContainerDep
from tianpay.services.gateway import handle_bank_notification
from tianpay.services.payouts import handle_payout_notification

# Bank notifications are a few hundred bytes; anything far larger is not one.
MAX_NOTIFICATION_BYTES = 64 * 1024

router = APIRouter(include_in_schema=False)


@router.post("/channels/{code}/notify")
async def bank_notification(code: str, request: Request, container: ContainerDep) -> Response:
    bank = code.upper()
    takes_payments = bank in container.channels.online_banking_banks()
    takes_payouts = bank in container.channels.payout_banks()
    if not takes_payments and not takes_payouts:
        return Response("unknown channel", status_code=404, media_type="text/plain")
    body = await request.body()
    if len(body) > MAX_NOTIFICATION_BYTES:
        return Response("too large", status_code=413, media_type="text/plain")
    if not takes_payments:
        # A bank that only pays out (BCB) sends nothing else; payout batches name their own address
        # (``payout_notification`` below), so HBB's payment notices are never read twice here.
        payout_ack = await run_in_threadpool(
            handle_payout_notification,
            container.uow,
            container.clock,
            container.channels,
            bank,
            body,
            request.headers.get("content-type", ""),
            others_may_claim=False,
        )
        # Never None: with nobody else to claim the body, a notice that is not a payout's is refused.
        assert payout_ack is not None
        return Response(payout_ack.body, status_code=payout_ack.status_code, media_type=payout_ack.content_type)
    ack = await run_in_threadpool(
        handle_bank_notification,
        container.uow,
        container.clock,
        container.ids,
        container.channels,
        bank,
        body,
        request.headers.get("content-type", ""),
    )
    return Response(ack.body, status_code=ack.status_code, media_type=ack.content_type)


@router.post("/channels/{code}/payouts/notify")
async def payout_notification(code: str, request: Request, container: ContainerDep) -> Response:
    """The address payout batches name (``PayoutBatch.notify_url``): only payout notices come here, so
    the body is read by the payout channel alone (HBB's payment notices keep ``/notify``)."""
    bank = code.upper()
    if bank not in container.channels.payout_banks():
        return Response("unknown channel", status_code=404, media_type="text/plain")
    body = await request.body()
    if len(body) > MAX_NOTIFICATION_BYTES:
        return Response("too large", status_code=413, media_type="text/plain")
    ack = await run_in_threadpool(
        handle_payout_notification,
        container.uow,
        container.clock,
        container.channels,
        bank,
        body,
        request.headers.get("content-type", ""),
        others_may_claim=False,
    )
    # Never None: with nobody else to claim the body, a notice that is not a payout's is refused.
    assert ack is not None
    return Response(ack.body, status_code=ack.status_code, media_type=ack.content_type)
