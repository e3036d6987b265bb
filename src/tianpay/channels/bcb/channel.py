"""BCB direct debit behind the platform's DirectDebitChannel: mandates (``100010``/``100011``/
``100012``, docs/banks/bcb.md), ``100002`` debit and ``200004`` query by ``REQ_SN`` (BANKS.md "BCB").

``100002`` names the account and its holder, which the port's DebitOrder does not carry: the
channel's mandate reference (sealed by the platform like every bank reference) is therefore
``MANDATE_NO``, account number and name joined by a unit separator, and so is the apply token.
``REQ_SN`` of a debit is the attempt id, generated once and persisted before the call, so a lost
answer is resolved by querying that ``REQ_SN``, never by a second debit. A timeout is UNKNOWN.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

import httpx

from tianpay.channels.bcb import mapping, wire
from tianpay.channels.bcb.client import AipgClient
from tianpay.channels.bcb.onboarding import BcbConfig
from tianpay.ports.channels import ChannelResult, DebitOrder, MandateAnswer, MandateApplication, Outcome

ID_TYPE_RESIDENT_ID = "0"
# Joins MANDATE_NO (or the apply token), account number and name in the sealed reference.
SEPARATOR = "\x1f"


class BcbDirectDebitChannel:
    code = "BCB"

    def __init__(self, config: BcbConfig, http: httpx.Client | None = None) -> None:
        self._config = config
        self._client = AipgClient(config, http)

    def close(self) -> None:
        self._client.close()

    # Mandates

    def apply_mandate(self, application: MandateApplication) -> MandateAnswer:
        holder = application.holder
        fields = {
            "ACCOUNT_NO": holder.card_number, "ACCOUNT_NAME": holder.name, "ID_TYPE": ID_TYPE_RESIDENT_ID,
            "ID": holder.id_number, "TEL": holder.phone, "MAX_AMOUNT": str(application.max_per_debit.minor),
            "MAX_MONTH_AMOUNT": str(application.max_per_month.minor),
            "END_DATE": f"{application.valid_until:%Y%m%d}", "PURPOSE": application.purpose,
        }
        answer = self._mandate_call(wire.TrxCode.MANDATE_APPLY, fields, "TOKEN")
        return _with_account(answer, holder.card_number, holder.name)

    def confirm_mandate(self, bank_token: str, sms_code: str) -> MandateAnswer:
        token, account_no, name = _split(bank_token)
        answer = self._mandate_call(wire.TrxCode.MANDATE_CONFIRM, {"TOKEN": token, "VERIFY_CODE": sms_code},
                                    "MANDATE_NO")
        return _with_account(answer, account_no, name)

    def revoke_mandate(self, bank_mandate_no: str) -> MandateAnswer:
        mandate_no, _, _ = _split(bank_mandate_no)
        return self._mandate_call(wire.TrxCode.MANDATE_REVOKE, {"MANDATE_NO": mandate_no}, "MANDATE_NO")

    # Debits

    def debit(self, order: DebitOrder) -> ChannelResult:
        mandate_no, account_no, account_name = _split(order.bank_mandate_no)
        fields = {"MANDATE_NO": mandate_no, "SN": "0001", "ACCOUNT_NO": account_no,
                  "ACCOUNT_NAME": account_name, "AMOUNT": str(order.amount.minor), "SUMMARY": order.subject[:30]}
        answer = self._call(wire.TrxCode.DEBIT, order.attempt_id, "TRANS", fields)
        if answer is None:
            return ChannelResult(Outcome.UNKNOWN, bank_message="no answer from BCB")
        code = wire.text(answer.body, "TRANSRET/RET_CODE") or answer.ret_code
        return mapping.debit_result(code, answer.err_msg, order.attempt_id, wire.text(answer.body, "TRANSRET/AMOUNT"))

    def query_payment(self, attempt_id: str, created_at: datetime) -> ChannelResult:
        answer = self._call(wire.TrxCode.QUERY, _req_sn(), "QTRANSREQ", {"QUERY_SN": attempt_id})
        if answer is None:
            return ChannelResult(Outcome.UNKNOWN, bank_message="no answer from BCB")
        detail = wire.text(answer.body, "QTRANSRSP/QTDETAIL/RET_CODE")
        message = wire.text(answer.body, "QTRANSRSP/QTDETAIL/ERR_MSG") or answer.err_msg
        amount = wire.text(answer.body, "QTRANSRSP/QTDETAIL/AMOUNT")
        return mapping.query_result(answer.ret_code, detail, message, attempt_id, amount)

    # The wire

    def _mandate_call(self, trx: wire.TrxCode, fields: Mapping[str, str], ref: str) -> MandateAnswer:
        answer = self._call(trx, _req_sn(), "MANDATE_REQ", fields)
        if answer is None:
            return MandateAnswer(Outcome.UNKNOWN, bank_message="no answer from BCB")
        outcome = mapping.outcome_of(answer.ret_code)
        value = wire.text(answer.body, f"MANDATE_RSP/{ref}")
        if outcome is Outcome.SUCCEEDED and not value:
            return MandateAnswer(Outcome.UNKNOWN, bank_code=answer.ret_code, bank_message=f"no {ref} in the answer")
        return MandateAnswer(outcome, bank_ref=value or None, bank_code=answer.ret_code, bank_message=answer.err_msg)

    def _call(self, trx: wire.TrxCode, req_sn: str, section: str, fields: Mapping[str, str]) -> wire.Answer | None:
        return self._client.call(trx, req_sn, wire.section(section, fields))

def _req_sn() -> str:
    return "TP" + secrets.token_hex(12)


def _with_account(answer: MandateAnswer, account_no: str, name: str) -> MandateAnswer:
    if answer.bank_ref is None:
        return answer
    return replace(answer, bank_ref=SEPARATOR.join((answer.bank_ref, account_no, name)))


def _split(reference: str) -> tuple[str, str, str]:
    parts = reference.split(SEPARATOR)
    if len(parts) != 3:
        raise ValueError("not a BCB mandate reference")
    return parts[0], parts[1], parts[2]
