"""JHB's API gateway: open the request envelope, run the service, seal the answer.

Failures found before the request is authenticated and decrypted (malformed envelope, unknown
partner, bad signature, bad key) are answered with a plain, unsigned `{"ret_code", "ret_msg"}`:
JHB cannot seal an answer for a sender it has not recognised, and nothing was processed. Every
later answer, failure or success, is a sealed envelope under the key the request used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tongsuopy.crypto.asymciphers import ec

from banksim.core.bank import BankContext
from banksim.jhb import crypto, envelope, wire
from banksim.jhb.bill import BILL_SERVICE, Bills, read_bill_date
from banksim.jhb.codes import RET_MSG, JhbError, RetCode
from banksim.jhb.keyring import Keyring
from banksim.jhb.mandates import Mandates, read_mandate_apply, read_mandate_debit
from banksim.jhb.quickpay import QuickPay
from banksim.jhb.service import Answer, JhbService
from banksim.jhb.store import JhbStore, StoredDataKey

log = logging.getLogger("banksim.jhb")

Handler = Callable[[JhbService, str, Mapping[str, Any], str], Answer]
QuickPayHandler = Callable[[QuickPay, str, Mapping[str, Any]], Answer]

SERVICES: dict[str, Handler] = {
    "ebank.pay": lambda svc, partner, body, base: svc.ebank_pay(partner, wire.read_ebank_pay(body), base),
    "pay.query": lambda svc, partner, body, _: svc.pay_query(partner, wire.read_trade_ref(body)),
    "refund": lambda svc, partner, body, _: svc.refund(partner, wire.read_refund(body)),
    "refund.query": lambda svc, partner, body, _: svc.refund_query(partner, wire.read_refund_ref(body)),
}
QUICK_PAY_SERVICES: dict[str, QuickPayHandler] = {
    "bind.apply": lambda qp, partner, body: qp.bind_apply(partner, wire.read_bind_apply(body)),
    "bind.confirm": lambda qp, partner, body: qp.bind_confirm(partner, wire.read_bind_confirm(body)),
    "bind.query": lambda qp, partner, body: qp.bind_query(partner, wire.read_no_agree(body)),
    "unbind": lambda qp, partner, body: qp.unbind(partner, wire.read_no_agree(body)),
    "pay": lambda qp, partner, body: qp.pay(partner, wire.read_quick_pay(body)),
}
MandateHandler = Callable[[Mandates, str, Mapping[str, Any]], Answer]
MANDATE_SERVICES: dict[str, MandateHandler] = {
    "mandate.apply": lambda m, partner, body: m.apply(partner, read_mandate_apply(body)),
    "mandate.confirm": lambda m, partner, body: m.confirm(
        partner, wire.read_bind_confirm(body).token, wire.read_bind_confirm(body).verify_code
    ),
    "mandate.query": lambda m, partner, body: m.query(partner, str(body.get("mandate_no") or "")),
    "mandate.revoke": lambda m, partner, body: m.revoke(partner, str(body.get("mandate_no") or "")),
    "mandate.debit": lambda m, partner, body: m.debit(partner, read_mandate_debit(body)),
}
BillHandler = Callable[[Bills, str, Mapping[str, Any]], Answer]
BILL_SERVICES: dict[str, BillHandler] = {
    BILL_SERVICE: lambda bills, partner, body: bills.download(partner, read_bill_date(body)),
}
# Services BANKS.md names that this simulator does not offer yet; they answer 1006.
PLANNED_SERVICES: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class GatewayResult:
    """What the HTTP layer sends back: a JSON object, or nothing at all (magic 96/97)."""

    payload: dict[str, Any]
    withhold: bool = False


def plain_error(code: RetCode, detail: str | None = None) -> dict[str, Any]:
    return {"ret_code": code.value, "ret_msg": detail or RET_MSG[code]}


class Gateway:
    def __init__(
        self,
        context: BankContext,
        store: JhbStore,
        keyring: Keyring,
        service: JhbService,
        quick_pay: QuickPay,
        mandates: Mandates,
        bills: Bills,
    ) -> None:
        self._bills = bills
        self._context = context
        self._store = store
        self._keyring = keyring
        self._service = service
        self._quick_pay = quick_pay
        self._mandates = mandates

    def handle(self, service_name: str, message: Any, pages_base_url: str) -> GatewayResult:
        try:
            sealed = envelope.parse(message)
        except envelope.EnvelopeMalformed as exc:
            return GatewayResult(plain_error(RetCode.MESSAGE_MALFORMED, str(exc)))
        head = sealed.head
        try:
            data_key, body = self._open(sealed, service_name)
        except JhbError as exc:
            log.info("refused %s from %s: %s", service_name, head.partner_id, exc.code.value)
            return GatewayResult(plain_error(exc.code, exc.message))
        self._store.note_key_used(head.partner_id, data_key.key_id)
        answer = self._dispatch(service_name, head.partner_id, body, pages_base_url)
        if answer.withhold:
            return GatewayResult({}, withhold=True)
        answer_head = envelope.Head(
            version=envelope.ENVELOPE_VERSION,
            partner_id=head.partner_id,
            service=head.service,
            req_no=head.req_no,
            req_time=wire.format_time(self._context.clock.now()),
            key_id=data_key.key_id,
        )
        return GatewayResult(envelope.seal(answer_head, answer.body, data_key.key, self._keyring.signing_key))

    def _open(self, sealed: envelope.SealedEnvelope, service_name: str) -> tuple[StoredDataKey, dict[str, Any]]:
        head = sealed.head
        if head.version != envelope.ENVELOPE_VERSION:
            raise JhbError(RetCode.MESSAGE_MALFORMED, f"version must be {envelope.ENVELOPE_VERSION}")
        if head.service != service_name:
            raise JhbError(RetCode.MESSAGE_MALFORMED, "head.service does not match the URL")
        # Only the form of req_time is checked: the simulated clock may be moved for tests while the
        # platform's is not, so a freshness window would refuse honest requests.
        wire.parse_time(head.req_time, "head.req_time")
        public_keys = self._keyring.partner_public_keys(head.partner_id)
        if not public_keys:
            raise JhbError(RetCode.PARTNER_UNKNOWN)
        if not any(_verifies(sealed, key) for key in public_keys):
            raise JhbError(RetCode.SIGNATURE_INVALID)
        data_key = self._keyring.accepted_data_key(head.partner_id, head.key_id)
        try:
            body = envelope.unseal(sealed, data_key.key)
        except crypto.DecryptionFailed as exc:
            raise JhbError(RetCode.DECRYPT_FAILED, str(exc)) from exc
        return data_key, body

    def _dispatch(self, service_name: str, partner_id: str, body: Mapping[str, Any], base_url: str) -> Answer:
        handler = SERVICES.get(service_name)
        quick_handler = QUICK_PAY_SERVICES.get(service_name)
        mandate_handler = MANDATE_SERVICES.get(service_name)
        bill_handler = BILL_SERVICES.get(service_name)
        if handler is None and quick_handler is None and mandate_handler is None and bill_handler is None:
            detail = "服务暂未开通" if service_name in PLANNED_SERVICES else None
            return Answer(plain_error(RetCode.SERVICE_UNKNOWN, detail))
        try:
            if bill_handler is not None:
                return bill_handler(self._bills, partner_id, body)
            if mandate_handler is not None:
                return mandate_handler(self._mandates, partner_id, body)
            if quick_handler is not None:
                return quick_handler(self._quick_pay, partner_id, body)
            assert handler is not None
            return handler(self._service, partner_id, body, base_url)
        except JhbError as exc:
            return Answer(plain_error(exc.code, exc.message))
        except Exception:
            # A bug part-way through may already have moved money, so the honest answer is
            # "processing, ask again", never a definite failure.
            log.exception("%s failed", service_name)
            return Answer(plain_error(RetCode.PROCESSING, "系统繁忙，请稍后查询结果"))


def _verifies(sealed: envelope.SealedEnvelope, key: ec.EllipticCurvePublicKey) -> bool:
    try:
        envelope.verify(sealed, key)
    except crypto.SignatureInvalid:
        return False
    return True
