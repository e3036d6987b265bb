"""HBB quick pay (认证支付) behind the platform's QuickPayChannel: 77 SMS, 79 bind, 74 unbind, token consume.

The channel extends HbbChannel (same signer, verifier and HTTP client; online banking and refunds
unchanged). Every request is sent once: a timeout or an untrusted answer is UNKNOWN, never resent.
Card numbers are encrypted for HBB before they leave, and neither they nor codes are ever logged.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime

import httpx
import structlog

from tianpay.channels.hbb import quickpay_mapping as qmapping
from tianpay.channels.hbb import wire
from tianpay.channels.hbb.client import HbbChannel, hbb_parts_from_onboarding
from tianpay.channels.hbb.config import HbbConfig
from tianpay.channels.hbb.quickpay_wire import AccountEncryptor, read_token
from tianpay.channels.hbb.signing import HbbVerifier, SignatureRejected, Signer
from tianpay.channels.hbb.wire import WireError
from tianpay.domain.money import Money
from tianpay.ports.channels import (
    BindingApplied,
    BindingConfirmation,
    BindingConfirmed,
    BindingRequest,
    ChannelResult,
    Outcome,
    QuickPayOrder,
)

log = structlog.stdlib.get_logger(__name__)

Answer = dict[str, str]


class HbbQuickPayChannel(HbbChannel):
    """HBB's online banking, refunds and quick pay (QuickPayChannel)."""

    def __init__(
        self,
        *,
        base_url: str,
        mer_id: str,
        signer: Signer,
        verifier: HbbVerifier,
        http: httpx.Client,
        encryptor: AccountEncryptor,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(base_url=base_url, mer_id=mer_id, signer=signer, verifier=verifier, http=http, clock=clock)
        self._encryptor = encryptor

    # Binding

    def apply_binding(self, request: BindingRequest) -> BindingApplied:
        sms = qmapping.sms_request(
            request, mer_id=self._mer_id, cert_id=self._signer.cert_id, encryptor=self._encryptor
        )
        answer = self._call(wire.request_fields(sms), submits=True)
        if isinstance(answer, ChannelResult):
            return qmapping.unanswered_binding(answer)
        result = wire.parse_result(answer)
        if not qmapping.answers_request(result, mer_id=self._mer_id, order_id=sms.orderId):
            return BindingApplied(Outcome.UNKNOWN, bank_message="the answer is about another order")
        return qmapping.applied(result)

    def confirm_binding(self, confirmation: BindingConfirmation) -> BindingConfirmed:
        bind = qmapping.bind_request(
            confirmation, mer_id=self._mer_id, cert_id=self._signer.cert_id, encryptor=self._encryptor
        )
        answer = self._call(wire.request_fields(bind), submits=True)
        if isinstance(answer, ChannelResult):
            return BindingConfirmed(answer.outcome, bank_code=answer.bank_code, bank_message=answer.bank_message)
        result = wire.parse_result(answer)
        if not qmapping.answers_request(result, mer_id=self._mer_id, order_id=bind.orderId):
            return BindingConfirmed(Outcome.UNKNOWN, bank_message="the answer is about another order")
        token: str | None = None
        if result.respCode == wire.RespCode.SUCCESS:
            try:
                token = read_token(answer)
            except WireError:
                token = None
        return qmapping.confirmed(result, token)

    def unbind(self, card_token: str, member_ref: str) -> ChannelResult:
        # 74 needs an orderId of its own; it is never queried, so a random one serves.
        platform_id = "unb_" + secrets.token_hex(12)
        request = qmapping.unbind_request(
            card_token, platform_id, self._now(), mer_id=self._mer_id, cert_id=self._signer.cert_id
        )
        answer = self._call(wire.request_fields(request), submits=True)
        if isinstance(answer, ChannelResult):
            return answer
        result = wire.parse_result(answer)
        return ChannelResult(
            qmapping.unbind_outcome(result.respCode), bank_code=result.respCode, bank_message=result.respMsg
        )

    # Paying

    def pay(self, order: QuickPayOrder) -> ChannelResult:
        request = qmapping.token_consume_request(order, mer_id=self._mer_id, cert_id=self._signer.cert_id)
        answer = self._call(wire.request_fields(request), submits=True)
        if isinstance(answer, ChannelResult):
            return answer
        result = wire.parse_result(answer)
        if not qmapping.answers_request(result, mer_id=self._mer_id, order_id=request.orderId):
            return ChannelResult(Outcome.UNKNOWN, bank_message="the answer is about another order")
        outcome = qmapping.consume_outcome(result.respCode)
        if result.currencyCode not in (None, wire.CURRENCY_CNY):
            return ChannelResult(Outcome.UNKNOWN, bank_message="HBB answered in a currency other than CNY")
        return ChannelResult(
            outcome=outcome,
            bank_reference=result.queryId,
            amount=Money.cny(result.txnAmt) if result.txnAmt is not None else None,
            bank_code=result.respCode,
            bank_message=result.respMsg,
            settle_date=result.settleDate if outcome is Outcome.SUCCEEDED else None,
        )

    # Internals

    def _call(self, fields: Mapping[str, str], *, submits: bool) -> Answer | ChannelResult:
        """One signed POST to ``backTransReq.do``; HBB's verified fields, or the outcome when there are none.

        Like HbbChannel._exchange, but the raw fields come back too: a bind answer's ``token`` is
        not part of the parsed result the online-banking flows read. A bad answer is parsed here
        so callers may call ``wire.parse_result`` without handling WireError.
        """
        message = self._signer.signed(fields)
        order_id = fields.get("orderId", "")
        txn_type = fields.get("txnType", "")
        try:
            response = self._http.post(
                self._base_url + wire.BACK_TRANS_PATH,
                content=wire.encode_form(message),
                headers={"Content-Type": f"{wire.FORM_CONTENT_TYPE}; charset=UTF-8"},
            )
        except httpx.ConnectError:
            log.warning("hbb.unreachable", txn_type=txn_type, order_id=order_id)
            if submits:
                return ChannelResult(Outcome.NOT_SUBMITTED, bank_message="HBB could not be reached")
            return ChannelResult(Outcome.UNKNOWN, bank_message="HBB could not be reached")
        except httpx.TimeoutException:
            log.warning("hbb.timeout", txn_type=txn_type, order_id=order_id)
            return ChannelResult(Outcome.UNKNOWN, bank_message="HBB did not answer in time")
        except httpx.HTTPError as error:
            log.warning("hbb.transport_error", txn_type=txn_type, order_id=order_id, error=type(error).__name__)
            return ChannelResult(Outcome.UNKNOWN, bank_message="the exchange with HBB broke off")
        if response.status_code != 200:
            log.warning("hbb.http_status", txn_type=txn_type, order_id=order_id, status=response.status_code)
            return ChannelResult(Outcome.UNKNOWN, bank_message=f"HBB answered HTTP {response.status_code}")
        try:
            answer = wire.decode_answer(response.content.decode("utf-8"))
            self._verifier.verify(answer)
            result = wire.parse_result(answer)
        except (UnicodeDecodeError, WireError, SignatureRejected) as error:
            log.warning("hbb.answer_rejected", txn_type=txn_type, order_id=order_id, reason=str(error))
            return ChannelResult(Outcome.UNKNOWN, bank_message="HBB's answer could not be trusted")
        log.info("hbb.quick_pay_answer", txn_type=txn_type, order_id=order_id, resp_code=result.respCode)
        return answer


def build_hbb_quick_pay_channel(
    config: HbbConfig,
    *,
    http_client: httpx.Client | None = None,
    clock: Callable[[], datetime] | None = None,
) -> HbbQuickPayChannel:
    """Builds HBB's channel with quick pay from onboarding material (like build_hbb_channel)."""
    parts = hbb_parts_from_onboarding(config, http_client=http_client, clock=clock)
    return HbbQuickPayChannel(
        base_url=config.gateway_url,
        mer_id=config.mer_id,
        signer=parts.signer,
        verifier=parts.verifier,
        http=parts.http,
        encryptor=parts.encryptor(),
        clock=clock,
    )
