"""BCB batch payout (代付) behind the platform's PayoutChannel: ``100001``, ``200004`` on the batch, and
the ``300001`` bounce notice (BANKS.md "BCB"; docs/banks/bcb.md).

The bank's numbers are our own ids, so persisting a batch is enough to query it later: ``REQ_SN`` is
the batch id (``pob_…``) and each item's ``SN`` its payout id (``pyo_…``). A lost, 5xx or unsigned
answer and every intermediate code are UNKNOWN and resolved by ``query_payouts``, never by sending
again; "no such request" means NOT_SUBMITTED only 30 minutes after the batch was created.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import httpx
import structlog

from tianpay.channels.bcb import mapping, wire
from tianpay.channels.bcb.client import CONTENT_TYPE, AipgClient
from tianpay.channels.bcb.onboarding import BcbConfig
from tianpay.domain.money import Currency
from tianpay.ports.channels import BankNotification, ChannelResult, InvalidNotification, NotificationAck, Outcome
from tianpay.ports.payouts import KIND_PAYOUT_RETURNED, PayoutBatch

log = structlog.stdlib.get_logger(__name__)

# Allinpay's business code for "other payouts"; BCB checks none, but the field is part of TRANS_SUM.
BUSINESS_CODE: Final = "09900"
# BCB reads SUBMIT_TIME in Beijing time.
BEIJING: Final = timezone(timedelta(hours=8))
# research/protocols.md §6: "no such request" for 30 minutes means the batch was never accepted.
ABSENT_WINDOW: Final = timedelta(minutes=30)
MAX_NUMBER_LENGTH: Final = 40
REMARK_LENGTH: Final = 30


def req_sn_of(batch_id: str) -> str:
    """The batch's REQ_SN: the batch id itself, so a stored batch can always be queried again."""
    return _checked(batch_id)


def sn_of(payout_id: str) -> str:
    """An item's SN: the payout id itself, which is also the statement's 商户请求号 for the item."""
    return _checked(payout_id)


def _checked(number: str) -> str:
    if not number or len(number) > MAX_NUMBER_LENGTH:
        raise ValueError(f"BCB request numbers are 1 to {MAX_NUMBER_LENGTH} characters")
    return number


class BcbPayoutChannel:
    code = "BCB"

    def __init__(self, config: BcbConfig, http: httpx.Client | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._client = AipgClient(config, http)
        self._user_name = config.user_name
        self._now = clock or (lambda: datetime.now(UTC))

    def close(self) -> None:
        self._client.close()

    def submit_payouts(self, batch: PayoutBatch) -> Mapping[str, ChannelResult]:
        req_sn = req_sn_of(batch.batch_id)
        answer = self._client.call(wire.TrxCode.PAYOUT, req_sn, _payout_body(batch))
        if answer is None:
            return _everyone(batch, ChannelResult(Outcome.UNKNOWN, bank_message="no answer from BCB"))
        details = _details(answer, "RET_DETAILS/RET_DETAIL")
        results = {}
        for order in batch.orders:
            found = details.get(sn_of(order.payout_id))
            if found is None:
                results[order.payout_id] = ChannelResult(mapping.batch_outcome(answer.ret_code),
                                                         bank_code=answer.ret_code or None,
                                                         bank_message=answer.err_msg)
            else:
                code, message, amount = found
                results[order.payout_id] = mapping.payout_result(code, message, order.payout_id, amount,
                                                                 queried=False)
        log.info("bcb payout batch", req_sn=req_sn, items=len(batch.orders), ret_code=answer.ret_code)
        return results

    def query_payouts(self, batch: PayoutBatch) -> Mapping[str, ChannelResult]:
        query = wire.section("QTRANSREQ", {"QUERY_SN": req_sn_of(batch.batch_id)})
        answer = self._client.call(wire.TrxCode.QUERY, _query_req_sn(), query)
        if answer is None:
            return _everyone(batch, ChannelResult(Outcome.UNKNOWN, bank_message="no answer from BCB"))
        if answer.ret_code == mapping.NO_SUCH_REQUEST:
            # Only a long silence proves the batch was never accepted; before that it may be on its way.
            absent = self._now() - batch.created_at >= ABSENT_WINDOW
            outcome = Outcome.NOT_SUBMITTED if absent else Outcome.UNKNOWN
            return _everyone(batch, ChannelResult(outcome, bank_code=answer.ret_code, bank_message=answer.err_msg))
        if answer.ret_code not in mapping.SUCCESS:
            return _everyone(batch, ChannelResult(Outcome.UNKNOWN, bank_code=answer.ret_code or None,
                                                  bank_message=answer.err_msg))
        details = _details(answer, "QTRANSRSP/QTDETAIL")
        results = {}
        for order in batch.orders:
            found = details.get(sn_of(order.payout_id))
            if found is None:
                results[order.payout_id] = ChannelResult(Outcome.UNKNOWN, bank_message="item not in BCB's answer")
            else:
                code, message, amount = found
                results[order.payout_id] = mapping.payout_result(code, message, order.payout_id, amount,
                                                                 queried=True)
        return results

    def parse_notification(self, body: bytes, content_type: str) -> BankNotification:
        """A ``300001`` bounce: the payout's money is back on the reserve (the result is the return's)."""
        root = self._client.verified(body)
        if root is None:
            raise InvalidNotification("not an AIPG document signed by BCB")
        if wire.text(root, "INFO/TRX_CODE") != wire.TrxCode.BOUNCE.value:
            raise InvalidNotification("BCB notifies payouts with TRX_CODE 300001 only")
        if wire.text(root, "INFO/USER_NAME") != self._user_name:
            raise InvalidNotification("the notice is addressed to another BCB partner")
        payout_id = wire.text(root, "BODY/RETURNTRANS/SN")
        if not payout_id:
            raise InvalidNotification("RETURNTRANS/SN is missing")
        result = ChannelResult(
            Outcome.SUCCEEDED,
            bank_reference=wire.text(root, "BODY/RETURNTRANS/RETURN_SN") or None,
            amount=mapping.amount_of(wire.text(root, "BODY/RETURNTRANS/AMOUNT")),
            bank_code=wire.text(root, "BODY/RETURNTRANS/RETURN_CODE") or None,
            bank_message=wire.text(root, "BODY/RETURNTRANS/RETURN_MSG"),
        )
        log.info("bcb bounce notice", payout_id=payout_id, return_code=result.bank_code)
        return BankNotification(kind=KIND_PAYOUT_RETURNED, platform_reference=payout_id, result=result)

    def notification_ack(self, accepted: bool) -> NotificationAck:
        """A signed AIPG answer: RET_CODE ``0000`` stops BCB's retries; anything else makes it retry."""
        code, message = ("0000", "处理成功") if accepted else ("1001", "未能处理，请重发")
        document = wire.document(wire.TrxCode.BOUNCE, self._user_name, "", ET.Element("BODY"), RET_CODE=code,
                                 ERR_MSG=message)
        return NotificationAck(200 if accepted else 400, self._client.sign(document), CONTENT_TYPE)


def _payout_body(batch: PayoutBatch) -> ET.Element:
    if any(order.amount.currency is not Currency.CNY or order.amount.minor <= 0 for order in batch.orders):
        raise ValueError("BCB pays out positive CNY amounts only")
    if not batch.orders:
        raise ValueError("a batch holds at least one payout")
    summary = {
        "BUSINESS_CODE": BUSINESS_CODE,
        "SUBMIT_TIME": f"{batch.created_at.astimezone(BEIJING):%Y%m%d%H%M%S}",
        "TOTAL_ITEM": str(len(batch.orders)),
        "TOTAL_SUM": str(sum(order.amount.minor for order in batch.orders)),
    }
    if batch.notify_url:
        summary["NOTIFY_URL"] = batch.notify_url
    details = [
        {"SN": sn_of(order.payout_id), "ACCOUNT_NO": order.account_no, "ACCOUNT_NAME": order.account_name,
         "BANK_CODE": order.account_bank, "AMOUNT": str(order.amount.minor), "REMARK": order.purpose[:REMARK_LENGTH]}
        for order in batch.orders
    ]
    return wire.payout_body(summary, details)


def _details(answer: wire.Answer, path: str) -> dict[str, tuple[str, str, str]]:
    return {
        wire.text(detail, "SN"): (wire.text(detail, "RET_CODE"), wire.text(detail, "ERR_MSG"),
                                  wire.text(detail, "AMOUNT"))
        for detail in answer.body.iterfind(path)
    }


def _everyone(batch: PayoutBatch, result: ChannelResult) -> dict[str, ChannelResult]:
    return {order.payout_id: result for order in batch.orders}


def _query_req_sn() -> str:
    return "TP" + secrets.token_hex(12)
