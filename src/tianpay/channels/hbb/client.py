"""The HBB channel: the only part of the adapter that talks to the bank (httpx, synchronous).

Every submit is sent exactly once: a timeout, a 5xx, an unparsable or badly signed answer is
UNKNOWN and is resolved by ``query_*``, never by sending again (DESIGN.md §7). Only a connection
that was never established proves nothing reached HBB, and only that is NOT_SUBMITTED.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tianpay.channels.hbb import mapping, signing, wire
from tianpay.channels.hbb.config import HbbConfig
from tianpay.channels.hbb.quickpay_wire import AccountEncryptor
from tianpay.channels.hbb.signing import Clock, HbbVerifier, SignatureRejected, Signer
from tianpay.channels.hbb.wire import AcpResult, WireError
from tianpay.ports.channels import (
    BankNotification,
    ChannelResult,
    InvalidNotification,
    NotificationAck,
    OnlineBankingOrder,
    Outcome,
    RedirectForm,
    RefundOrder,
)

log = structlog.stdlib.get_logger(__name__)

CODE = "HBB"
ACK_OK = NotificationAck(status_code=200, body=b"ok", content_type="text/plain; charset=utf-8")
# Anything but 200 ``ok`` makes HBB send the notification again later (BANKS.md "HBB").
ACK_RETRY = NotificationAck(status_code=500, body=b"fail", content_type="text/plain; charset=utf-8")


class HbbChannel:
    """HBB's online banking (网银) and refund interfaces behind the platform's channel ports."""

    def __init__(
        self,
        *,
        base_url: str,
        mer_id: str,
        signer: Signer,
        verifier: HbbVerifier,
        http: httpx.Client,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.code = CODE
        self._base_url = base_url.rstrip("/")
        self._mer_id = mer_id
        self._signer = signer
        self._verifier = verifier
        self._http = http
        # The platform's clock (it may be moved in demos and fault drills): requests are dated and
        # HBB's "no such refund" window is judged by it, never by the machine's own time.
        self._now = clock or (lambda: datetime.now(UTC))

    def close(self) -> None:
        self._http.close()

    # Online banking

    def payment_form(self, order: OnlineBankingOrder) -> RedirectForm:
        request = mapping.consume_request(order, mer_id=self._mer_id, cert_id=self._signer.cert_id)
        fields = self._signer.signed(wire.request_fields(request))
        return RedirectForm(method="POST", url=self._base_url + wire.FRONT_TRANS_PATH, fields=fields)

    def query_payment(self, attempt_id: str, created_at: datetime) -> ChannelResult:
        return self._query(attempt_id, created_at)

    def parse_notification(self, body: bytes, content_type: str) -> BankNotification:
        if content_type.split(";")[0].strip().lower() != wire.FORM_CONTENT_TYPE:
            raise InvalidNotification("HBB notifications are form-encoded")
        try:
            fields = wire.decode_form(body)
            self._verifier.verify(fields)
            return mapping.notification(wire.parse_result(fields), mer_id=self._mer_id)
        except (WireError, SignatureRejected) as error:
            log.warning("hbb.notification_rejected", reason=str(error))
            raise InvalidNotification(str(error)) from None

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return ACK_OK if accepted else ACK_RETRY

    # Refunds

    def refund(self, order: RefundOrder) -> ChannelResult:
        request = mapping.refund_request(order, mer_id=self._mer_id, cert_id=self._signer.cert_id)
        answer = self._exchange(wire.BACK_TRANS_PATH, wire.request_fields(request), submits=True)
        if isinstance(answer, ChannelResult):
            return answer
        if not mapping.answers_request(answer, mer_id=self._mer_id, order_id=request.orderId):
            return _unknown("the answer is about another order")
        return mapping.transaction_result(answer)

    def query_refund(self, refund_id: str, created_at: datetime) -> ChannelResult:
        """The refund's fate; HBB's "no such transaction" becomes NOT_SUBMITTED once the refund is old
        enough that HBB would have recorded it (mapping.ABSENT_ORDER_FINAL_AFTER), UNKNOWN before."""
        result = self._query(refund_id, created_at)
        return mapping.settle_absent_order(result, age=self._now() - created_at)

    # Internals

    def _query(self, platform_id: str, created_at: datetime) -> ChannelResult:
        request = mapping.query_request(platform_id, created_at, mer_id=self._mer_id, cert_id=self._signer.cert_id)
        answer = self._exchange(wire.QUERY_TRANS_PATH, wire.request_fields(request), submits=False)
        if isinstance(answer, ChannelResult):
            return answer
        if answer.respCode == wire.RespCode.SUCCESS and not mapping.answers_request(
            answer, mer_id=self._mer_id, order_id=request.orderId
        ):
            return _unknown("the answer is about another order")
        return mapping.query_result(answer)

    def _exchange(self, path: str, fields: Mapping[str, str], *, submits: bool) -> AcpResult | ChannelResult:
        """Posts one signed request and returns HBB's verified answer, or the outcome when there is none.

        httpx does not retry a request unless told to, and nothing here tells it to.
        """
        message = self._signer.signed(fields)
        order_id = fields.get("orderId", "")
        try:
            response = self._http.post(
                self._base_url + path,
                content=wire.encode_form(message),
                headers={"Content-Type": f"{wire.FORM_CONTENT_TYPE}; charset=UTF-8"},
            )
        except httpx.ConnectError:
            log.warning("hbb.unreachable", path=path, order_id=order_id)
            if submits:
                return ChannelResult(Outcome.NOT_SUBMITTED, bank_message="HBB could not be reached")
            return _unknown("HBB could not be reached")
        except httpx.TimeoutException:
            log.warning("hbb.timeout", path=path, order_id=order_id)
            return _unknown("HBB did not answer in time")
        except httpx.HTTPError as error:
            log.warning("hbb.transport_error", path=path, order_id=order_id, error=type(error).__name__)
            return _unknown("the exchange with HBB broke off")
        if response.status_code != 200:
            log.warning("hbb.http_status", path=path, order_id=order_id, status=response.status_code)
            return _unknown(f"HBB answered HTTP {response.status_code}")
        try:
            answer = wire.decode_answer(response.content.decode("utf-8"))
            self._verifier.verify(answer)
            return wire.parse_result(answer)
        except (UnicodeDecodeError, WireError, SignatureRejected) as error:
            log.warning("hbb.answer_rejected", path=path, order_id=order_id, reason=str(error))
            return _unknown("HBB's answer could not be trusted")


def _unknown(message: str) -> ChannelResult:
    return ChannelResult(Outcome.UNKNOWN, bank_message=message)


@dataclass(frozen=True, slots=True)
class HbbParts:
    """What every HBB channel that takes part in payments is assembled from, checked once.

    The platform's signer, HBB's verifier (trusting HBB's root CA), the HTTP client, and HBB's
    encryption certificate, already known to chain to that root.
    """

    signer: Signer
    verifier: HbbVerifier
    http: httpx.Client
    encryption_certificate: x509.Certificate

    def encryptor(self) -> AccountEncryptor:
        """The encryptor of card and account numbers for HBB (quick pay, payouts).

        Built on demand rather than with the other parts: the online-banking channel sends no numbers,
        and so does not ask that the encryption certificate hold an RSA key.
        """
        return AccountEncryptor(self.encryption_certificate)


def hbb_parts_from_onboarding(
    config: HbbConfig,
    *,
    http_client: httpx.Client | None = None,
    clock: Clock | None = None,
) -> HbbParts:
    """The parts of an HBB channel from onboarding material; fails fast on keys or certificates that do not fit.

    ``http_client`` lets tests and the composition root share or fake the transport; ``clock`` is
    the time certificates are checked against. The client is made last, so a refused configuration
    leaves none behind.
    """
    key = signing.load_private_key(config.signing_key_pem)
    root = signing.load_certificate(config.hbb_root_ca_pem)
    encryption_certificate = _checked_encryption_certificate(config.hbb_encryption_cert_pem, root)
    signer = Signer(key, config.resolved_cert_id)
    verifier = HbbVerifier([root], clock=clock)
    http = http_client or httpx.Client(timeout=httpx.Timeout(config.timeout_s))
    return HbbParts(signer=signer, verifier=verifier, http=http, encryption_certificate=encryption_certificate)


def build_hbb_channel(
    config: HbbConfig,
    *,
    http_client: httpx.Client | None = None,
    clock: Clock | None = None,
) -> HbbChannel:
    """Builds the HBB channel from onboarding material (``hbb_parts_from_onboarding``, which fails fast)."""
    parts = hbb_parts_from_onboarding(config, http_client=http_client, clock=clock)
    return HbbChannel(
        base_url=config.gateway_url,
        mer_id=config.mer_id,
        signer=parts.signer,
        verifier=parts.verifier,
        http=parts.http,
        clock=clock,
    )


def _checked_encryption_certificate(pem: str, root: x509.Certificate) -> x509.Certificate:
    # The encryption certificate will carry card numbers to HBB (card binding), so a certificate
    # that does not come from HBB's own root is refused now rather than trusted later.
    certificate = signing.load_certificate(pem)
    try:
        certificate.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as error:
        raise ValueError("HBB's encryption certificate does not chain to HBB's root CA") from error
    return certificate
