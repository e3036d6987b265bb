"""JHB quick pay (协议支付) behind the platform's QuickPayChannel: bind.apply, bind.confirm, unbind, pay.

The channel extends JhbChannel (same envelope client, keys and notifications: a ``pay.notify``
is already a payment notice). ``pay`` is sent once; a timeout or an unverifiable answer is
UNKNOWN and ``query_payment`` (``pay.query``) resolves it, never a second ``pay``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from tianpay.channels.jhb import quickpay_mapping as qmapping
from tianpay.channels.jhb import wire
from tianpay.channels.jhb.channel import JhbChannel, _unanswered
from tianpay.channels.jhb.client import Answered, JhbClient
from tianpay.channels.jhb.config import JhbConfig
from tianpay.channels.jhb.mapping import NotAcceptable
from tianpay.channels.jhb.quickpay_wire import Unbind, read_bind_answer
from tianpay.ports.channels import (
    BindingApplied,
    BindingConfirmation,
    BindingConfirmed,
    BindingRequest,
    ChannelResult,
    Outcome,
    QuickPayOrder,
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class JhbQuickPayChannel(JhbChannel):
    """JHB's online banking, refunds and quick pay (QuickPayChannel)."""

    def apply_binding(self, request: BindingRequest) -> BindingApplied:
        call = self._client.call(wire.Service.BIND_APPLY, qmapping.bind_apply(request).to_body())
        if not isinstance(call, Answered):
            result = _unanswered(call, submission=True)
            return BindingApplied(result.outcome, bank_code=result.bank_code, bank_message=result.bank_message)
        try:
            return qmapping.applied(read_bind_answer(call.body))
        except wire.WireError as exc:
            return BindingApplied(Outcome.UNKNOWN, bank_message=str(exc))

    def confirm_binding(self, confirmation: BindingConfirmation) -> BindingConfirmed:
        try:
            body = qmapping.bind_confirm(confirmation).to_body()
        except NotAcceptable as exc:
            return BindingConfirmed(Outcome.NOT_SUBMITTED, bank_message=str(exc))
        call = self._client.call(wire.Service.BIND_CONFIRM, body)
        if not isinstance(call, Answered):
            result = _unanswered(call, submission=True)
            return BindingConfirmed(result.outcome, bank_code=result.bank_code, bank_message=result.bank_message)
        try:
            return qmapping.confirmed(read_bind_answer(call.body))
        except wire.WireError as exc:
            return BindingConfirmed(Outcome.UNKNOWN, bank_message=str(exc))

    def unbind(self, card_token: str, member_ref: str) -> ChannelResult:
        call = self._client.call(wire.Service.UNBIND, Unbind(no_agree=card_token).to_body())
        if not isinstance(call, Answered):
            return _unanswered(call, submission=True)
        try:
            code, message = wire.read_ret_code(call.body)
        except wire.WireError as exc:
            return ChannelResult(Outcome.UNKNOWN, bank_message=str(exc))
        return qmapping.unbind_result(code, message)

    def pay(self, order: QuickPayOrder) -> ChannelResult:
        try:
            body = qmapping.pay_request(order).to_body()
        except NotAcceptable as exc:
            return ChannelResult(Outcome.NOT_SUBMITTED, bank_message=str(exc))
        call = self._client.call(wire.Service.PAY, body)
        if not isinstance(call, Answered):
            return _unanswered(call, submission=True)
        try:
            view = wire.read_trade_view(call.body)
        except wire.WireError as exc:
            return ChannelResult(Outcome.UNKNOWN, bank_message=str(exc))
        return qmapping.pay_result(view, order.attempt_id)


def build_jhb_quick_pay_channel(
    config: JhbConfig,
    *,
    http_client: httpx.Client | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> JhbQuickPayChannel:
    """Like build_jhb_channel, with quick pay."""
    owned = httpx.Client(timeout=config.timeout_s) if http_client is None else None
    http = http_client if http_client is not None else owned
    assert http is not None
    return JhbQuickPayChannel(config, JhbClient(config, http, clock), clock, owned_http=owned)
