"""JHB's asynchronous notifications: sealed envelopes POSTed to the partner's `notify_url`.

A notification is the same envelope as an answer, signed by JHB, with `head.service` set to
`ebank.pay.notify`, `pay.notify`, `refund.notify` or
`mandate.revoke.notify` and `head.req_no` fixed per event (every
retry and every duplicate carries the same one). The receiver must answer HTTP 200 with `{"ret_code": "0000"}`;
anything else is retried on JHB's schedule (docs/banks/jhb.md, "Notifications").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from banksim.core.bank import BankContext
from banksim.core.magic import Magic, magic_for
from banksim.jhb import envelope, wire
from banksim.jhb.codes import RET_MSG, RetCode
from banksim.jhb.keyring import Keyring
from banksim.jhb.store import Payment, Refund

CONTENT_TYPE = "application/json; charset=utf-8"
# Magic 99 sends its second notification this long after the first (before the world's scale).
DUPLICATE_DELAY_S = 30.0
# After the immediate first attempt JHB retries after 15 s, 15 s, 30 s, 3 min, 10 min, 20 min,
# 30 min, 30 min, 30 min, 1 h, 3 h, 3 h, 3 h, 6 h and 6 h: the rhythm Chinese payment notifiers
# publish (about 24 h, 16 attempts in all). The world's notify scale compresses it in tests.
RETRY_DELAYS_S: tuple[float, ...] = (
    15.0,
    15.0,
    30.0,
    180.0,
    600.0,
    1200.0,
    1800.0,
    1800.0,
    1800.0,
    3600.0,
    10800.0,
    10800.0,
    10800.0,
    21600.0,
    21600.0,
)


def acknowledges(status_code: int, content: bytes) -> bool:
    """Only `{"ret_code": "0000"}` with HTTP 200 stops the retries; a bare `ok` does not."""
    if status_code != 200:
        return False
    try:
        answer = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(answer, dict) and answer.get("ret_code") == RetCode.SUCCESS.value


def fail_msg(code: str) -> str:
    try:
        return RET_MSG[RetCode(code)]
    except ValueError:
        return ""


def payment_notice_body(payment: Payment) -> dict[str, str]:
    return {
        "out_trade_no": payment.out_trade_no,
        "jhb_trade_no": payment.jhb_trade_no,
        "amount": wire.format_yuan(payment.amount_minor),
        "status": payment.status.value,
        "fail_code": payment.fail_code,
        "fail_msg": fail_msg(payment.fail_code) if payment.fail_code else "",
        "finish_time": payment.finish_time,
    }


def refund_notice_body(refund: Refund, payment: Payment) -> dict[str, str]:
    return {
        "out_refund_no": refund.out_refund_no,
        "jhb_refund_no": refund.jhb_refund_no,
        "orig_out_trade_no": payment.out_trade_no,
        "jhb_trade_no": payment.jhb_trade_no,
        "amount": wire.format_yuan(refund.amount_minor),
        "status": refund.status.value,
        "fail_code": refund.fail_code,
        "fail_msg": fail_msg(refund.fail_code) if refund.fail_code else "",
        "finish_time": refund.finish_time,
    }


class Notices:
    def __init__(self, context: BankContext, keyring: Keyring) -> None:
        self._context = context
        self._keyring = keyring

    def payment_finished(self, payment: Payment) -> None:
        self._send(
            partner_id=payment.partner_id,
            # `ebank.pay.notify` or `pay.notify` (quick pay): the service that created the order.
            service=f"{payment.service}.notify",
            event_ref=f"N{payment.jhb_trade_no}",
            url=payment.notify_url,
            body=payment_notice_body(payment),
            magic=magic_for(payment.amount_minor),
        )

    def refund_finished(self, refund: Refund, payment: Payment) -> None:
        if not refund.notify_url:
            return
        self._send(
            partner_id=refund.partner_id,
            service="refund.notify",
            event_ref=f"N{refund.jhb_refund_no}",
            url=refund.notify_url,
            body=refund_notice_body(refund, payment),
            magic=magic_for(refund.amount_minor),
        )

    def mandate_revoked(self, *, partner_id: str, url: str, body: Mapping[str, str]) -> None:
        """`mandate.revoke.notify`: the payer revoked a mandate in JHB's app (docs/banks/jhb.md)."""
        self._send(
            partner_id=partner_id,
            service="mandate.revoke.notify",
            # One event per mandate: a mandate is revoked once, so retries carry the same req_no.
            event_ref=f"NR{body['mandate_no']}",
            url=url,
            body=body,
            magic=Magic.NONE,
        )

    def _send(
        self, *, partner_id: str, service: str, event_ref: str, url: str, body: Mapping[str, Any], magic: Magic
    ) -> None:
        data_key = self._keyring.notification_key(partner_id)
        head = envelope.Head(
            version=envelope.ENVELOPE_VERSION,
            partner_id=partner_id,
            service=service,
            req_no=event_ref,
            req_time=wire.format_time(self._context.clock.now()),
            key_id=data_key.key_id,
        )
        sealed = envelope.seal(head, body, data_key.key, self._keyring.signing_key)
        payload = json.dumps(sealed, ensure_ascii=False).encode()
        notifier = self._context.notifier
        # Magic 98 is recorded as suppressed so /_sim/state shows the notification that never left.
        notifier.enqueue(
            event_ref=event_ref,
            url=url,
            body=payload,
            content_type=CONTENT_TYPE,
            suppressed=magic is Magic.NO_NOTIFICATION,
        )
        if magic is Magic.DOUBLE_NOTIFICATION:
            notifier.enqueue(
                event_ref=event_ref,
                url=url,
                body=payload,
                content_type=CONTENT_TYPE,
                delay_s=DUPLICATE_DELAY_S * self._context.config.notify_scale,
            )
