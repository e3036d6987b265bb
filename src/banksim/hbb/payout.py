"""HBB payout (代付, txnType 12, bizType 000401) on `backTransReq.do`: reserve → a payee's account.

The payee's account number arrives encrypted under HBB's encryption certificate (as in card
binding, 79) and the payee's name in `customerInfo` (`{customerNm=…}`). An HBB account is paid in
these books; another simulated bank's account through the interbank clearing. The payout is an
HBB order like a refund (enters `processing`, then succeeds or fails), so the query (txnType 00 by
orderId + txnTime) answers it and a success is notified to `backUrl`. Codes: docs/banks/hbb.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from banksim.core.books import AccountKind, AccountStatus
from banksim.core.cards import bank_of
from banksim.core.magic import Magic, magic_for
from banksim.hbb import wire
from banksim.hbb.gateway import AcpError, AnswerWithheld, Gateway, check_common
from banksim.hbb.orders import Order, OrderEvent, OrderStatus
from banksim.hbb.quickpay import _card_number, _customer_info
from banksim.hbb.wire import RespCode, TxnType

BIZ_TYPE_PAYOUT = "000401"
# The payee's name does not match the holder of an HBB account (docs/banks/hbb.md "Payout").
NAME_MISMATCH = RespCode.NAME_MISMATCH
_MAGIC_DECLINES: dict[Magic, RespCode] = {
    Magic.INSUFFICIENT_FUNDS: RespCode.INSUFFICIENT_FUNDS,
    Magic.OVER_LIMIT: RespCode.OVER_LIMIT,
}


def payout(gateway: Gateway, fields: Mapping[str, str]) -> dict[str, str]:
    """txnType 12: pay `txnAmt` from the platform's reserve to the payee; magic amounts apply."""
    check_common(fields)
    wire.expect(fields, "txnType", TxnType.PAYOUT)
    wire.expect(fields, "txnSubType", "00")
    wire.expect(fields, "bizType", BIZ_TYPE_PAYOUT)
    # backUrl is optional for a payout: without one HBB sends no notification and the platform
    # learns the result from the answer or a query.
    if fields.get("backUrl"):
        wire.check_url(fields["backUrl"], "backUrl")
    amount_minor = wire.parse_amount(fields["txnAmt"])
    acc_no = _card_number(gateway, fields)
    name = _customer_info(fields, "customerNm")["customerNm"].strip()
    magic = magic_for(amount_minor)
    if magic is Magic.LOST_ANSWER_UNPROCESSED:
        raise AnswerWithheld
    if gateway.context.faults.refuses_new_order(magic):
        return gateway.answer(wire.echo(fields), RespCode.UNAVAILABLE)
    refusal = _payee_refusal(gateway, acc_no, name)
    order = _insert(gateway, fields, amount_minor, magic, acc_no)
    order = _settle(gateway, order, refusal)
    if magic is Magic.LOST_ANSWER_PROCESSED and order.status is OrderStatus.SUCCEEDED:
        raise AnswerWithheld
    return gateway.order_answer(fields, order)


def _payee_refusal(gateway: Gateway, acc_no: str, name: str) -> RespCode | None:
    """Why the payee cannot be paid, known before any money moves; None when it can."""
    payee_bank = bank_of(acc_no)
    if payee_bank is None:
        return RespCode.INVALID_CARD
    if payee_bank == gateway.context.code:
        account = gateway.context.books.account(acc_no)
    else:
        account = gateway.context.clearing.account(payee_bank, acc_no)
    if account is None or account.status is AccountStatus.CLOSED or account.kind is AccountKind.CLEARING:
        return RespCode.INVALID_CARD
    # HBB checks the name only on its own accounts; another bank's name check would happen there
    # and come back as a return, which the simulated clearing does not model.
    if payee_bank == gateway.context.code and account.holder_name != name:
        return NAME_MISMATCH
    return None


def _insert(gateway: Gateway, fields: Mapping[str, str], amount_minor: int, magic: Magic, acc_no: str) -> Order:
    new = gateway._new_order(fields, amount_minor, magic, OrderStatus.PROCESSING, "", None, "")
    if gateway.orders.exists(new.mer_id, new.order_id, new.txn_time):
        raise AcpError(RespCode.DUPLICATE)
    with gateway.context.books.tx() as conn:
        gateway._insert_new(conn, new)
        # The payee's account is kept with the order, so a payout booked later (94) pays the same one.
        conn.execute("UPDATE hbb_orders SET acc_no = ? WHERE query_id = ?", (acc_no, new.query_id))
    return gateway._must(new.query_id)


def _settle(gateway: Gateway, order: Order, refusal: RespCode | None) -> Order:
    if refusal is not None:
        return gateway._fail_quietly(order, refusal)
    if order.magic in _MAGIC_DECLINES:
        return gateway._fail_quietly(order, _MAGIC_DECLINES[order.magic])
    if order.magic is Magic.SLOW_SUCCESS:
        return order
    code = gateway._book(order)
    if code is not RespCode.SUCCESS:
        return gateway._fail_quietly(order, code)
    return gateway._finish(order, OrderEvent.RESOLVED_PAID, code)

