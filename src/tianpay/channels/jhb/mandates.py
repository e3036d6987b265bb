"""JHB direct debit (代扣) behind the platform's DirectDebitChannel: ``mandate.apply`` → SMS →
``mandate.confirm`` → ``mandate_no``, ``mandate.revoke`` and ``mandate.debit`` (BANKS.md, JHB).

The channel extends the quick-pay channel (same envelope client, keys and notifications: a
``mandate.debit.notify`` is a payment notice). ``mandate.debit`` is sent once; a timeout is UNKNOWN
and ``query_payment`` (``pay.query``) resolves it. ``1071`` (out of mandate) is a FAILED debit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from tianpay.channels.jhb import quickpay_mapping as qmapping
from tianpay.channels.jhb import wire
from tianpay.channels.jhb.channel import _unanswered
from tianpay.channels.jhb.client import Answered, JhbClient
from tianpay.channels.jhb.config import JhbConfig
from tianpay.channels.jhb.mapping import money_to_yuan
from tianpay.channels.jhb.quickpay import JhbQuickPayChannel
from tianpay.ports.channels import ChannelResult, DebitOrder, MandateAnswer, MandateApplication, Outcome

ID_TYPE_RESIDENT_ID = "0"
SUBJECT_MAX_CHARS = 128


def _utc_now() -> datetime:
    return datetime.now(UTC)


def apply_body(application: MandateApplication) -> dict[str, str]:
    holder = application.holder
    return {
        "card_no": holder.card_number,
        "acct_name": holder.name,
        "id_type": ID_TYPE_RESIDENT_ID,
        "id_no": holder.id_number,
        "bind_mob": holder.phone,
        "user_id": application.member_ref,
        "max_amount_per_debit": money_to_yuan(application.max_per_debit),
        "max_amount_per_month": money_to_yuan(application.max_per_month),
        "valid_until": f"{application.valid_until:%Y%m%d}",
        "purpose": application.purpose,
        # Our mandate id comes back in `mandate.revoke.notify`, so a revocation at the bank finds it
        # without the platform looking up (sealed) bank mandate numbers.
        "out_mandate_no": application.mandate_id,
        **({"notify_url": application.notify_url} if application.notify_url else {}),
    }


def mandate_answer(body: Mapping[str, Any], ref_field: str) -> MandateAnswer:
    code, message = wire.read_ret_code(body)
    outcome = qmapping.binding_outcome(code)
    ref = body.get(ref_field)
    if outcome is Outcome.SUCCEEDED and not (isinstance(ref, str) and ref):
        return MandateAnswer(Outcome.UNKNOWN, bank_code=code, bank_message=f"no {ref_field} in the answer")
    return MandateAnswer(outcome, bank_ref=ref if isinstance(ref, str) and ref else None, bank_code=code,
                         bank_message=message)


class JhbDirectDebitChannel(JhbQuickPayChannel):
    """JHB's online banking, refunds, quick pay and direct debit."""

    def apply_mandate(self, application: MandateApplication) -> MandateAnswer:
        return self._mandate_call(wire.Service.MANDATE_APPLY, apply_body(application), "token")

    def confirm_mandate(self, bank_token: str, sms_code: str) -> MandateAnswer:
        body = {"token": bank_token, "verify_code": sms_code}
        return self._mandate_call(wire.Service.MANDATE_CONFIRM, body, "mandate_no")

    def revoke_mandate(self, bank_mandate_no: str) -> MandateAnswer:
        return self._mandate_call(wire.Service.MANDATE_REVOKE, {"mandate_no": bank_mandate_no}, "mandate_no")

    def debit(self, order: DebitOrder) -> ChannelResult:
        body = {
            "mandate_no": order.bank_mandate_no,
            "out_trade_no": order.attempt_id,
            "amount": money_to_yuan(order.amount),
            "subject": order.subject[:SUBJECT_MAX_CHARS],
            "notify_url": order.notify_url,
        }
        call = self._client.call(wire.Service.MANDATE_DEBIT, body)
        if not isinstance(call, Answered):
            return _unanswered(call, submission=True)
        try:
            view = wire.read_trade_view(call.body)
        except wire.WireError as exc:
            return ChannelResult(Outcome.UNKNOWN, bank_message=str(exc))
        return qmapping.pay_result(view, order.attempt_id)

    def _mandate_call(self, service: wire.Service, body: Mapping[str, str], ref_field: str) -> MandateAnswer:
        call = self._client.call(service, body)
        if not isinstance(call, Answered):
            result = _unanswered(call, submission=True)
            return MandateAnswer(result.outcome, bank_code=result.bank_code, bank_message=result.bank_message)
        try:
            return mandate_answer(call.body, ref_field)
        except wire.WireError as exc:
            return MandateAnswer(Outcome.UNKNOWN, bank_message=str(exc))


def build_jhb_direct_debit_channel(
    config: JhbConfig,
    *,
    http_client: httpx.Client | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> JhbDirectDebitChannel:
    """Like build_jhb_quick_pay_channel, with direct debit."""
    owned = httpx.Client(timeout=config.timeout_s) if http_client is None else None
    http = http_client if http_client is not None else owned
    assert http is not None
    return JhbDirectDebitChannel(config, JhbClient(config, http, clock), clock, owned_http=owned)
