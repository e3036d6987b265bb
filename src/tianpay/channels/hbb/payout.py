"""HBB payout (代付, txnType 12) behind the platform's PayoutChannel: one request per payout, no batch.

``orderId`` is ``order_id_for(payout_id)`` and ``txnTime`` the payout's creation time, both fixed
before the call, so a lost answer is resolved by querying (txnType 00) those two, never by sending
again. The payee's account number is encrypted under HBB's encryption certificate for the wire and
is never logged; the payee's name travels in ``customerInfo``. Codes: docs/banks/hbb-adapter.md.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import httpx
import structlog

from tianpay.channels.hbb import mapping, wire
from tianpay.channels.hbb.client import ACK_OK, ACK_RETRY, HbbChannel, hbb_parts_from_onboarding
from tianpay.channels.hbb.config import HbbConfig
from tianpay.channels.hbb.quickpay_wire import AccountEncryptor
from tianpay.channels.hbb.signing import HbbVerifier, SignatureRejected, Signer
from tianpay.channels.hbb.wire import AcpResult, QueryRequest, WireError
from tianpay.domain.money import Money
from tianpay.ports.channels import BankNotification, ChannelResult, InvalidNotification, NotificationAck, Outcome
from tianpay.ports.payouts import KIND_PAYOUT, PayoutBatch, PayoutOrder

log = structlog.stdlib.get_logger(__name__)

CODE: Final = "HBB"
BIZ_TYPE_PAYOUT: Final = "000401"
# HBB's answer when the payee's name is not the holder's of an HBB account (docs/banks/hbb.md).
NAME_MISMATCH: Final = "56"
# How long after a payout was created HBB's "no such transaction" (34) still means "maybe not yet":
# HBB records every payout it accepts before it answers, so after this window the payout never
# reached HBB and NOT_SUBMITTED is safe. One window for every HBB back-office order (refunds too).
ABSENT_WINDOW: Final = mapping.ABSENT_ORDER_FINAL_AFTER
# Characters that would break ``customerInfo``'s ``{k=v&k=v}`` block.
_INFO_UNSAFE: Final = frozenset("{}&=")

S, F, U, N = Outcome.SUCCEEDED, Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_SUBMITTED
# Payout codes beyond the common table (mapping.TRANSACTION_OUTCOMES), which covers the rest.
_PAYOUT_OUTCOMES: Final[Mapping[str, Outcome]] = {NAME_MISMATCH: F}


def payout_outcome(code: str) -> Outcome:
    """The outcome of a payout's own answer or notification ``respCode``."""
    return _PAYOUT_OUTCOMES.get(code) or mapping.transaction_outcome(code)


def payout_query_outcome(orig_code: str) -> Outcome:
    """The outcome of a successful query's ``origRespCode`` (03/04/05 still processing)."""
    return _PAYOUT_OUTCOMES.get(orig_code) or mapping.original_outcome(orig_code)


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutRequest(wire.AcpRequest):
    """``txnType=12`` (代付) on ``backTransReq.do``: ``accNo`` encrypted, the payee's name in ``customerInfo``.

    ``backUrl`` is optional here: an empty one is left out by ``wire.request_fields``.
    """

    txnAmt: str
    accNo: str
    encryptCertId: str
    customerInfo: str
    backUrl: str = ""
    txnType: str = wire.TxnType.PAYOUT.value
    txnSubType: str = wire.TxnSubType.DEFAULT.value
    bizType: str = BIZ_TYPE_PAYOUT
    currencyCode: str = wire.CURRENCY_CNY


def customer_info(name: str) -> str:
    """``customerInfo`` of a payout: base64 of ``{customerNm=<payee name>}``."""
    if not name or _INFO_UNSAFE.intersection(name):
        raise ValueError("the payee name is empty or holds a character HBB cannot carry")
    return base64.b64encode(("{customerNm=" + name + "}").encode("utf-8")).decode("ascii")


class HbbPayoutChannel:
    """HBB's payout interface (PayoutChannel); shares the signing and HTTP rules of HbbChannel."""

    def __init__(
        self,
        *,
        base_url: str,
        mer_id: str,
        signer: Signer,
        verifier: HbbVerifier,
        http: httpx.Client,
        encryptor: AccountEncryptor,
        notify_url: str = "",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.code = CODE
        self._exchanges = HbbChannel(base_url=base_url, mer_id=mer_id, signer=signer, verifier=verifier, http=http)
        self._mer_id = mer_id
        self._signer = signer
        self._verifier = verifier
        self._encryptor = encryptor
        self._notify_url = notify_url
        self._now = clock or (lambda: datetime.now(UTC))

    def close(self) -> None:
        self._exchanges.close()

    def submit_payouts(self, batch: PayoutBatch) -> Mapping[str, ChannelResult]:
        notify_url = batch.notify_url or self._notify_url
        return {order.payout_id: self._submit(order, notify_url) for order in batch.orders}

    def query_payouts(self, batch: PayoutBatch) -> Mapping[str, ChannelResult]:
        return {order.payout_id: self._query(order) for order in batch.orders}

    def parse_notification(self, body: bytes, content_type: str) -> BankNotification:
        if content_type.split(";")[0].strip().lower() != wire.FORM_CONTENT_TYPE:
            raise InvalidNotification("HBB notifications are form-encoded")
        try:
            fields = wire.decode_form(body)
            self._verifier.verify(fields)
            result = wire.parse_result(fields)
            if result.merId != self._mer_id:
                raise WireError("the notification is for another merchant")
            if result.txnType != wire.TxnType.PAYOUT:
                raise WireError("the notification is not about a payout")
            try:
                payout_id = mapping.platform_id_for(result.orderId)
            except ValueError as error:
                raise WireError("the notification's orderId is not one of ours") from error
            outcome = payout_outcome(result.respCode)
            channel_result = _result(outcome, result, result.respCode, result.respMsg)
        except (WireError, SignatureRejected) as error:
            log.warning("hbb.payout_notification_rejected", reason=str(error))
            raise InvalidNotification(str(error)) from None
        return BankNotification(kind=KIND_PAYOUT, platform_reference=payout_id, result=channel_result)

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return ACK_OK if accepted else ACK_RETRY

    # Internals

    def _submit(self, order: PayoutOrder, notify_url: str) -> ChannelResult:
        order_id = mapping.order_id_for(order.payout_id)
        try:
            fields = self._request(order, order_id, notify_url)
        except ValueError as error:
            # Nothing was sent: the order itself can never be carried to HBB as it stands.
            return ChannelResult(Outcome.FAILED, bank_message=str(error))
        answer = self._exchanges._exchange(wire.BACK_TRANS_PATH, fields, submits=True)
        if isinstance(answer, ChannelResult):
            return answer
        if not mapping.answers_request(answer, mer_id=self._mer_id, order_id=order_id):
            return ChannelResult(U, bank_message="the answer is about another order")
        log.info("hbb.payout_answer", order_id=order_id, resp_code=answer.respCode)
        return _result(payout_outcome(answer.respCode), answer, answer.respCode, answer.respMsg)

    def _request(self, order: PayoutOrder, order_id: str, notify_url: str) -> dict[str, str]:
        request = PayoutRequest(
            certId=self._signer.cert_id,
            merId=self._mer_id,
            orderId=order_id,
            txnTime=mapping.beijing_stamp(order.created_at),
            txnAmt=mapping.fen(order.amount),
            accNo=self._encryptor.encrypt(order.account_no),
            encryptCertId=self._encryptor.cert_id,
            customerInfo=customer_info(order.account_name),
            backUrl=notify_url,
        )
        return wire.request_fields(request)

    def _query(self, order: PayoutOrder) -> ChannelResult:
        request = QueryRequest(
            certId=self._signer.cert_id,
            merId=self._mer_id,
            orderId=mapping.order_id_for(order.payout_id),
            txnTime=mapping.beijing_stamp(order.created_at),
        )
        answer = self._exchanges._exchange(wire.QUERY_TRANS_PATH, wire.request_fields(request), submits=False)
        if isinstance(answer, ChannelResult):
            return answer
        if answer.respCode == wire.RespCode.NO_SUCH_TRANSACTION:
            if self._now() - order.created_at >= ABSENT_WINDOW:
                return ChannelResult(N, bank_code=answer.respCode, bank_message=answer.respMsg)
            return ChannelResult(U, bank_code=answer.respCode, bank_message=answer.respMsg)
        if answer.respCode != wire.RespCode.SUCCESS or answer.origRespCode is None:
            return ChannelResult(U, bank_code=answer.respCode, bank_message=answer.respMsg)
        if not mapping.answers_request(answer, mer_id=self._mer_id, order_id=request.orderId):
            return ChannelResult(U, bank_message="the answer is about another order")
        outcome = payout_query_outcome(answer.origRespCode)
        return _result(outcome, answer, answer.origRespCode, answer.origRespMsg)


def _result(outcome: Outcome, result: AcpResult, code: str, message: str) -> ChannelResult:
    if result.currencyCode not in (None, wire.CURRENCY_CNY):
        return ChannelResult(U, bank_message="HBB answered in a currency other than CNY")
    return ChannelResult(
        outcome=outcome,
        bank_reference=result.queryId,
        amount=Money.cny(result.txnAmt) if result.txnAmt is not None else None,
        bank_code=code,
        bank_message=message,
        settle_date=result.settleDate if outcome is Outcome.SUCCEEDED else None,
    )


def build_hbb_payout_channel(
    config: HbbConfig,
    *,
    notify_url: str = "",
    http_client: httpx.Client | None = None,
    clock: Callable[[], datetime] | None = None,
) -> HbbPayoutChannel:
    """Builds HBB's payout channel from onboarding material (like build_hbb_quick_pay_channel)."""
    parts = hbb_parts_from_onboarding(config, http_client=http_client, clock=clock)
    return HbbPayoutChannel(
        base_url=config.gateway_url,
        mer_id=config.mer_id,
        signer=parts.signer,
        verifier=parts.verifier,
        http=parts.http,
        encryptor=parts.encryptor(),
        notify_url=notify_url,
        clock=clock,
    )
