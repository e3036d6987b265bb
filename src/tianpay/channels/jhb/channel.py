"""JHB's online banking and refunds behind the platform's channel port.

`ebank.pay` is a server call that returns the URL of JHB's login page (BANKS.md, JHB section), so
unlike HBB's signed browser form, `payment_form` calls JHB and then hands the payer a GET form to
that URL; when JHB gives no page it raises `PaymentFormUnavailable` with the mapped outcome.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from tianpay.channels.jhb import mapping, signing, wire
from tianpay.channels.jhb.client import Answered, CallResult, JhbClient, NoAnswer, Unverifiable
from tianpay.channels.jhb.config import JhbConfig
from tianpay.ports.channels import (
    KIND_MANDATE_REVOKED,
    BankNotification,
    ChannelResult,
    FormNotIssued,
    InvalidNotification,
    NotificationAck,
    OnlineBankingOrder,
    Outcome,
    RedirectForm,
    RefundOrder,
)

log = structlog.stdlib.get_logger(__name__)

CHANNEL_CODE = "JHB"
ACK_CONTENT_TYPE = "application/json; charset=utf-8"
PAYMENT_NOTICES = frozenset({wire.NoticeService.EBANK_PAY, wire.NoticeService.PAY, wire.NoticeService.MANDATE_DEBIT})


class PaymentFormUnavailable(FormNotIssued):
    """JHB issued no payment page (see the port's FormNotIssued for what the outcome means)."""

    def __init__(self, result: ChannelResult) -> None:
        super().__init__("JHB", result)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class JhbChannel:
    """Implements `OnlineBankingChannel` and `RefundChannel` for JHB."""

    code: str = CHANNEL_CODE

    def __init__(
        self,
        config: JhbConfig,
        client: JhbClient,
        clock: Callable[[], datetime] = _utc_now,
        owned_http: httpx.Client | None = None,
    ) -> None:
        self._config = config
        self._client = client
        self._clock = clock
        self._owned_http = owned_http

    def close(self) -> None:
        """Closes the HTTP client if this channel created it (a shared one is the caller's)."""
        if self._owned_http is not None:
            self._owned_http.close()

    # Online banking

    def payment_form(self, order: OnlineBankingOrder) -> RedirectForm:
        """Calls `ebank.pay` and returns a GET form to JHB's login page.

        Raises `PaymentFormUnavailable` when JHB gives no page; never calls `ebank.pay` twice.
        """
        try:
            request = mapping.ebank_pay_request(order)
        except mapping.NotAcceptable as exc:
            raise PaymentFormUnavailable(ChannelResult(Outcome.NOT_SUBMITTED, bank_message=str(exc))) from exc
        call = self._client.call(wire.Service.EBANK_PAY, request.to_body())
        if not isinstance(call, Answered):
            raise PaymentFormUnavailable(_unanswered(call, submission=True))
        try:
            answer = wire.read_ebank_pay_answer(call.body)
        except wire.WireError as exc:
            raise PaymentFormUnavailable(ChannelResult(Outcome.UNKNOWN, bank_message=str(exc))) from exc
        if answer.ret_code != wire.RetCode.SUCCESS or answer.out_trade_no != order.attempt_id:
            raise PaymentFormUnavailable(mapping.ebank_pay_refusal(answer))
        try:
            return mapping.redirect_form(answer)
        except ValueError as exc:
            raise PaymentFormUnavailable(mapping.ebank_pay_refusal(answer)) from exc

    def query_payment(self, attempt_id: str, created_at: datetime) -> ChannelResult:
        try:
            request = mapping.pay_query_request(attempt_id)
        except mapping.NotAcceptable as exc:
            return ChannelResult(Outcome.UNKNOWN, bank_message=str(exc))
        call = self._client.call(wire.Service.PAY_QUERY, request.to_body())
        if not isinstance(call, Answered):
            return _unanswered(call, submission=False)
        try:
            view = wire.read_trade_view(call.body)
        except wire.WireError as exc:
            return ChannelResult(Outcome.UNKNOWN, bank_message=str(exc))
        return mapping.trade_query_result(view, attempt_id, self._age(created_at))

    # Notifications

    def parse_notification(self, body: bytes, content_type: str) -> BankNotification:
        """Verifies JHB's signature, checks the head is ours, decrypts and maps the notice.

        Anything that fails is `InvalidNotification` and changes nothing; `content_type` is not
        trusted for anything (the envelope is JSON whatever the header says).
        """
        try:
            envelope = wire.read_envelope(json.loads(body))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidNotification(f"not a JHB envelope: {exc}") from exc
        head = envelope.head
        if head.version != wire.ENVELOPE_VERSION or head.partner_id != self._config.partner_id:
            raise InvalidNotification("the notification is not addressed to this partner")
        try:
            notice = signing.open_envelope(envelope, self._config.jhb_public_key, self._config.data_keys)
        except signing.EnvelopeError as exc:
            raise InvalidNotification(f"{type(exc).__name__}: {exc}") from exc
        try:
            parsed = self._notice(head.service, notice)
        except wire.WireError as exc:
            raise InvalidNotification(str(exc)) from exc
        log.info(
            "jhb notification",
            service=head.service,
            req_no=head.req_no,
            platform_reference=parsed.platform_reference,
            outcome=parsed.result.outcome.value,
        )
        return parsed

    def _notice(self, service: str, notice: dict[str, Any]) -> BankNotification:
        try:
            kind = wire.NoticeService(service)
        except ValueError as exc:
            raise wire.WireError(f"unknown notification service {service!r}") from exc
        if kind in PAYMENT_NOTICES:
            trade = wire.read_trade_view(notice)
            if not trade.out_trade_no:
                raise wire.WireError("out_trade_no is missing")
            return BankNotification("payment", trade.out_trade_no, mapping.trade_notice_result(trade))
        if kind is wire.NoticeService.MANDATE_REVOKE:
            return _mandate_revoked(notice)
        refund = wire.read_refund_view(notice)
        if not refund.out_refund_no:
            raise wire.WireError("out_refund_no is missing")
        return BankNotification("refund", refund.out_refund_no, mapping.refund_notice_result(refund))

    def notification_ack(self, accepted: bool) -> NotificationAck:
        """`{"ret_code": "0000"}` stops JHB's retries (BANKS.md); anything else asks for another try."""
        if accepted:
            return NotificationAck(200, b'{"ret_code":"0000"}', ACK_CONTENT_TYPE)
        # Not a JHB code on purpose: JHB only looks for HTTP 200 with 0000, and will retry this.
        return NotificationAck(500, b'{"ret_code":"9999","ret_msg":"not processed, retry"}', ACK_CONTENT_TYPE)

    # Refunds

    def refund(self, order: RefundOrder) -> ChannelResult:
        """Submits the refund once; an unclear answer is UNKNOWN and only `query_refund` resolves it."""
        try:
            request = mapping.refund_request(order)
        except mapping.NotAcceptable as exc:
            return ChannelResult(Outcome.NOT_SUBMITTED, bank_message=str(exc))
        call = self._client.call(wire.Service.REFUND, request.to_body())
        if not isinstance(call, Answered):
            return _unanswered(call, submission=True)
        try:
            view = wire.read_refund_view(call.body)
        except wire.WireError as exc:
            return ChannelResult(Outcome.UNKNOWN, bank_message=str(exc))
        return mapping.refund_answer_result(view, order.refund_id)

    def query_refund(self, refund_id: str, created_at: datetime) -> ChannelResult:
        try:
            request = mapping.refund_query_request(refund_id)
        except mapping.NotAcceptable as exc:
            return ChannelResult(Outcome.UNKNOWN, bank_message=str(exc))
        call = self._client.call(wire.Service.REFUND_QUERY, request.to_body())
        if not isinstance(call, Answered):
            return _unanswered(call, submission=False)
        try:
            view = wire.read_refund_view(call.body)
        except wire.WireError as exc:
            return ChannelResult(Outcome.UNKNOWN, bank_message=str(exc))
        return mapping.refund_query_result(view, refund_id, self._age(created_at))

    def _age(self, created_at: datetime) -> timedelta:
        aware = created_at if created_at.tzinfo is not None else created_at.replace(tzinfo=UTC)
        return self._clock() - aware


def _unanswered(call: CallResult, *, submission: bool) -> ChannelResult:
    """No trustworthy answer: UNKNOWN, except a submission whose connection never opened."""
    if isinstance(call, NoAnswer):
        outcome = Outcome.NOT_SUBMITTED if submission and not call.request_sent else Outcome.UNKNOWN
        return ChannelResult(outcome, bank_message=call.reason)
    assert isinstance(call, Unverifiable)
    # JHB's unsigned errors are kept for operators, but nobody signed them, so they decide nothing.
    code = call.plain.ret_code if call.plain is not None else None
    message = f"{call.reason}: {call.plain.ret_msg}" if call.plain is not None else call.reason
    return ChannelResult(Outcome.UNKNOWN, bank_code=code, bank_message=message)


def build_jhb_channel(
    config: JhbConfig,
    *,
    http_client: httpx.Client | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> JhbChannel:
    """The composition root's way in: a channel over a shared (or its own) httpx client."""
    owned = httpx.Client(timeout=config.timeout_s) if http_client is None else None
    http = http_client if http_client is not None else owned
    assert http is not None
    return JhbChannel(config, JhbClient(config, http, clock), clock, owned_http=owned)


def _mandate_revoked(notice: dict[str, Any]) -> BankNotification:
    """`mandate.revoke.notify`: the payer revoked the mandate at JHB (docs/banks/jhb.md).

    Only a final `REVOKED` is a revocation; the bank's mandate number travels as the result's
    `bank_reference` (it is the payer's standing consent, so it is never logged).
    """
    out_mandate_no, mandate_no, status = (notice.get(name) for name in ("out_mandate_no", "mandate_no", "status"))
    if not (isinstance(out_mandate_no, str) and out_mandate_no and isinstance(mandate_no, str) and mandate_no):
        raise wire.WireError("out_mandate_no and mandate_no are required")
    if status != "REVOKED":
        raise wire.WireError(f"a mandate notice with status {status!r}")
    result = ChannelResult(Outcome.SUCCEEDED, bank_reference=mandate_no)
    return BankNotification(KIND_MANDATE_REVOKED, out_mandate_no, result)
