"""JHB's business rules for online banking: create the order, let the payer pay, query, refund.

One synchronous class over the store and the core books; the HTTP layer (`app.py`) opens
envelopes and pages and calls these. Magic amounts (BANKS.md) are decided here: declines and
"bank unavailable" before anything moves, 94 settled by the third query, 96/97 flagged for the
HTTP layer to withhold the answer, 98/99 handled by `Notices`, 93 booked on tomorrow's statement.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from banksim.core.bank import BankContext
from banksim.core.books import Declined, DeclineReason
from banksim.core.cards import bank_of, mask
from banksim.core.magic import QUERIES_BEFORE_SUCCESS, Magic, magic_for, statement_date_for
from banksim.jhb import wire
from banksim.jhb.codes import JhbError, RetCode
from banksim.jhb.notices import Notices, fail_msg
from banksim.jhb.store import (
    JhbStore,
    Payment,
    PaymentStatus,
    Refund,
    RefundExceedsPayment,
    RefundStatus,
)

log = logging.getLogger("banksim.jhb")

# An order the partner gives no `expire_time` stays payable this long.
DEFAULT_ORDER_LIFETIME = timedelta(minutes=30)
EBANK_SERVICE = "ebank.pay"
QUICK_PAY_SERVICE = "pay"
MANDATE_DEBIT_SERVICE = "mandate.debit"
# The books' transfer kind for each way of paying, so a statement can tell them apart.
TRANSFER_KINDS = {
    EBANK_SERVICE: "jhb_ebank_pay",
    QUICK_PAY_SERVICE: "jhb_quick_pay",
    MANDATE_DEBIT_SERVICE: "jhb_mandate_debit",
}

DECLINE_CODES: dict[DeclineReason, RetCode] = {
    DeclineReason.INSUFFICIENT_FUNDS: RetCode.INSUFFICIENT_FUNDS,
    DeclineReason.OVER_LIMIT: RetCode.OVER_LIMIT,
    DeclineReason.ACCOUNT_FROZEN: RetCode.CARD_FROZEN,
    DeclineReason.ACCOUNT_CLOSED: RetCode.CARD_INVALID,
    DeclineReason.NO_SUCH_ACCOUNT: RetCode.CARD_INVALID,
}
MAGIC_DECLINES: dict[Magic, RetCode] = {
    Magic.INSUFFICIENT_FUNDS: RetCode.INSUFFICIENT_FUNDS,
    Magic.OVER_LIMIT: RetCode.OVER_LIMIT,
}


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer body plus whether the HTTP layer must withhold it (magic 96 and 97)."""

    body: dict[str, str]
    withhold: bool = False


class PageError(Exception):
    """Something the payer must see on JHB's pages (wrong password, order closed, …)."""


class JhbService:
    def __init__(self, context: BankContext, store: JhbStore, notices: Notices) -> None:
        self._context = context
        self._store = store
        self._notices = notices

    # ebank.pay

    def ebank_pay(self, partner_id: str, request: wire.EbankPayRequest, pages_base_url: str) -> Answer:
        magic = magic_for(request.amount_fen)
        if self._context.faults.refuses_new_order(magic):
            raise JhbError(RetCode.BANK_UNAVAILABLE)
        if magic is Magic.LOST_ANSWER_UNPROCESSED:
            return Answer({}, withhold=True)
        now = self._context.clock.now()
        expire_at = request.expire_at or now + DEFAULT_ORDER_LIFETIME
        if expire_at <= now:
            raise JhbError(RetCode.MESSAGE_MALFORMED, "expire_time has already passed")
        candidate = Payment(
            jhb_trade_no=self.new_number("JHB", "jhb_trade"),
            partner_id=partner_id,
            out_trade_no=request.out_trade_no,
            service=EBANK_SERVICE,
            amount_minor=request.amount_fen,
            subject=request.subject,
            notify_url=request.notify_url,
            return_url=request.return_url,
            expire_at=expire_at,
            status=PaymentStatus.WAIT_PAY,
            fail_code="",
            card_no="",
            page_token=secrets.token_urlsafe(24),
            session_token="",
            queries_seen=0,
            created_at=now,
            finish_time="",
        )
        stored = self._store.insert_payment(candidate)
        if stored.jhb_trade_no != candidate.jhb_trade_no and not _same_order(stored, request):
            raise JhbError(RetCode.ORDER_DUPLICATE)
        if stored.status is not PaymentStatus.WAIT_PAY:
            # A resubmission of an order that is already paid or closed gets no new page.
            raise JhbError(RetCode.ORDER_DUPLICATE, f"out_trade_no is already {stored.status.value}")
        body = {
            "ret_code": RetCode.SUCCESS.value,
            "ret_msg": "下单成功",
            "out_trade_no": stored.out_trade_no,
            "jhb_trade_no": stored.jhb_trade_no,
            "amount": wire.format_yuan(stored.amount_minor),
            "redirect_url": f"{pages_base_url.rstrip('/')}/ebank/pay?token={stored.page_token}",
            "expire_time": wire.format_time(stored.expire_at),
        }
        return Answer(body, withhold=magic is Magic.LOST_ANSWER_PROCESSED)

    # pay.query

    def pay_query(self, partner_id: str, ref: wire.TradeRef) -> Answer:
        payment = self._find_payment(partner_id, ref)
        payment = self._close_if_expired(payment)
        # Magic 94: the first QUERIES_BEFORE_SUCCESS queries see PROCESSING, the next one settles.
        if (
            payment.status is PaymentStatus.PROCESSING
            and self._store.count_payment_query(payment.jhb_trade_no) > QUERIES_BEFORE_SUCCESS
        ):
            payment = self.settle_payment(payment, PaymentStatus.PROCESSING)
        return Answer(self._payment_view(payment))

    def _payment_view(self, payment: Payment) -> dict[str, str]:
        return {
            "ret_code": RetCode.SUCCESS.value,
            "ret_msg": "查询成功",
            "out_trade_no": payment.out_trade_no,
            "jhb_trade_no": payment.jhb_trade_no,
            "amount": wire.format_yuan(payment.amount_minor),
            "status": payment.status.value,
            "fail_code": payment.fail_code,
            "fail_msg": fail_msg(payment.fail_code) if payment.fail_code else "",
            "finish_time": payment.finish_time,
            "refunded_amount": wire.format_yuan(self._store.refunded_minor(payment.jhb_trade_no)),
        }

    def _find_payment(self, partner_id: str, ref: wire.TradeRef) -> Payment:
        if ref.jhb_trade_no:
            found = self._store.payment(ref.jhb_trade_no)
            if found is not None and found.partner_id != partner_id:
                found = None
            if found is not None and ref.out_trade_no and found.out_trade_no != ref.out_trade_no:
                found = None
        else:
            found = self._store.payment_by_out_no(partner_id, ref.out_trade_no)
        if found is None:
            raise JhbError(RetCode.ORDER_NOT_FOUND)
        return found

    def _close_if_expired(self, payment: Payment) -> Payment:
        if payment.status is not PaymentStatus.WAIT_PAY or self._context.clock.now() < payment.expire_at:
            return payment
        self._store.update_payment(
            payment.jhb_trade_no,
            PaymentStatus.WAIT_PAY,
            status=PaymentStatus.CLOSED,
            fail_code=RetCode.ORDER_CLOSED.value,
            finish_time=wire.format_time(payment.expire_at),
        )
        return self._reload(payment)

    # The payer's pages

    def payment_for_page(self, page_token: str) -> Payment:
        payment = self._store.payment_by_page_token(page_token) if page_token else None
        # Quick-pay orders have no payer pages; their internal page tokens never open one.
        if payment is None or payment.service != EBANK_SERVICE:
            raise PageError("订单不存在或链接无效")
        return self._close_if_expired(payment)

    def login(self, page_token: str, card_no: str, password: str) -> str:
        """Check the payer's card and online-banking password; returns a new session token."""
        payment = self._payable(page_token)
        card_no = card_no.strip().replace(" ", "")
        if bank_of(card_no) != "JHB":
            raise PageError("请使用津海银行借记卡登录")
        if not self._context.books.check_login(card_no, password):
            log.info("ebank login refused for card %s", mask(card_no))
            raise PageError("卡号或登录密码错误")
        session_token = secrets.token_urlsafe(24)
        if not self._store.update_payment(
            payment.jhb_trade_no, PaymentStatus.WAIT_PAY, card_no=card_no, session_token=session_token
        ):
            raise PageError("订单状态已变化，请返回商户查看")
        return session_token

    def confirm(self, page_token: str, session_token: str) -> Payment:
        """The payer pressed 确认支付: debit the card, credit the reserve, notify the partner."""
        payment = self._payable(page_token)
        if not session_token or not secrets.compare_digest(payment.session_token, session_token):
            raise PageError("登录已失效，请重新登录")
        magic = magic_for(payment.amount_minor)
        declined = MAGIC_DECLINES.get(magic)
        if declined is not None:
            return self.fail_payment(payment, declined)
        if magic is Magic.SLOW_SUCCESS:
            self._store.update_payment(payment.jhb_trade_no, PaymentStatus.WAIT_PAY, status=PaymentStatus.PROCESSING)
            return self._reload(payment)
        return self.settle_payment(payment, PaymentStatus.WAIT_PAY)

    def _payable(self, page_token: str) -> Payment:
        payment = self.payment_for_page(page_token)
        if payment.status is PaymentStatus.CLOSED:
            raise PageError("订单已超时关闭，请返回商户重新下单")
        if payment.status is not PaymentStatus.WAIT_PAY:
            raise PageError("订单已处理，请返回商户查看结果")
        return payment

    def settle_payment(self, payment: Payment, expected: PaymentStatus) -> Payment:
        """Move the money for a payment in `expected` state and record the outcome (once)."""
        now = self._context.clock.now()
        reserve = self._reserve_of(payment.partner_id)
        try:
            self._context.books.transfer(
                bank_ref=payment.jhb_trade_no,
                kind=TRANSFER_KINDS[payment.service],
                debit_acc=payment.card_no,
                credit_acc=reserve,
                amount_minor=payment.amount_minor,
                at=now,
                statement_date=statement_date_for(magic_for(payment.amount_minor), self._context.clock.business_date()),
                enforce_limit=True,
                memo=f"{payment.partner_id} {payment.out_trade_no}",
            )
        except Declined as declined:
            return self.fail_payment(payment, DECLINE_CODES[declined.reason], expected)
        if self._store.update_payment(
            payment.jhb_trade_no, expected, status=PaymentStatus.SUCCESS, finish_time=wire.format_time(now)
        ):
            settled = self._reload(payment)
            self._notices.payment_finished(settled)
            return settled
        return self._reload(payment)

    def fail_payment(
        self, payment: Payment, code: RetCode, expected: PaymentStatus = PaymentStatus.WAIT_PAY
    ) -> Payment:
        now = self._context.clock.now()
        if self._store.update_payment(
            payment.jhb_trade_no,
            expected,
            status=PaymentStatus.FAILED,
            fail_code=code.value,
            finish_time=wire.format_time(now),
        ):
            failed = self._reload(payment)
            self._notices.payment_finished(failed)
            return failed
        return self._reload(payment)

    def _reload(self, payment: Payment) -> Payment:
        fresh = self._store.payment(payment.jhb_trade_no)
        assert fresh is not None
        return fresh

    # refund

    def refund(self, partner_id: str, request: wire.RefundRequest) -> Answer:
        magic = magic_for(request.amount_fen)
        if magic is Magic.REFUSED:
            raise JhbError(RetCode.BANK_UNAVAILABLE)
        if magic is Magic.LOST_ANSWER_UNPROCESSED:
            return Answer({}, withhold=True)
        payment = self._find_payment(partner_id, request.original)
        existing = self._store.refund_by_out_no(partner_id, request.out_refund_no)
        if existing is not None:
            return self._repeat_refund(existing, payment, request)
        if payment.status is not PaymentStatus.SUCCESS:
            raise JhbError(RetCode.ORIGINAL_NOT_PAID)
        candidate = Refund(
            jhb_refund_no=self.new_number("JHR", "jhb_refund"),
            partner_id=partner_id,
            out_refund_no=request.out_refund_no,
            jhb_trade_no=payment.jhb_trade_no,
            amount_minor=request.amount_fen,
            reason=request.reason,
            notify_url=request.notify_url,
            status=RefundStatus.PROCESSING,
            fail_code="",
            queries_seen=0,
            created_at=self._context.clock.now(),
            finish_time="",
        )
        try:
            refund, created = self._store.insert_refund_within(candidate, payment.amount_minor)
        except RefundExceedsPayment as exceeded:
            raise JhbError(
                RetCode.REFUND_EXCEEDS_PAYMENT, f"可退金额仅剩 {wire.format_yuan(exceeded.refundable_minor)} 元"
            ) from exceeded
        if not created:
            return self._repeat_refund(refund, payment, request)
        declined = MAGIC_DECLINES.get(magic)
        if declined is not None:
            refund = self._fail_refund(refund, payment, declined)
        elif magic is not Magic.SLOW_SUCCESS:
            refund = self._settle_refund(refund, payment)
        return Answer(self._refund_view(refund, payment), withhold=magic is Magic.LOST_ANSWER_PROCESSED)

    def _repeat_refund(self, refund: Refund, payment: Payment, request: wire.RefundRequest) -> Answer:
        """The same `out_refund_no` again: the same refund answers again, anything else is a duplicate."""
        if refund.jhb_trade_no != payment.jhb_trade_no or refund.amount_minor != request.amount_fen:
            raise JhbError(RetCode.REFUND_DUPLICATE)
        return Answer(self._refund_view(refund, payment))

    def refund_query(self, partner_id: str, ref: wire.RefundRef) -> Answer:
        refund = self._find_refund(partner_id, ref)
        payment = self._store.payment(refund.jhb_trade_no)
        assert payment is not None
        if (
            refund.status is RefundStatus.PROCESSING
            and self._store.count_refund_query(refund.jhb_refund_no) > QUERIES_BEFORE_SUCCESS
        ):
            refund = self._settle_refund(refund, payment)
        view = self._refund_view(refund, payment)
        # A query that found the refund succeeded as a query, whatever state the refund is in.
        view["ret_code"], view["ret_msg"] = RetCode.SUCCESS.value, "查询成功"
        return Answer(view)

    def _find_refund(self, partner_id: str, ref: wire.RefundRef) -> Refund:
        if ref.jhb_refund_no:
            found = self._store.refund(ref.jhb_refund_no)
            if found is not None and (
                found.partner_id != partner_id or (ref.out_refund_no and found.out_refund_no != ref.out_refund_no)
            ):
                found = None
        else:
            found = self._store.refund_by_out_no(partner_id, ref.out_refund_no)
        if found is None:
            raise JhbError(RetCode.ORDER_NOT_FOUND, "退款单不存在")
        return found

    def _settle_refund(self, refund: Refund, payment: Payment) -> Refund:
        now = self._context.clock.now()
        try:
            self._context.books.transfer(
                bank_ref=refund.jhb_refund_no,
                kind="jhb_refund",
                debit_acc=self._reserve_of(refund.partner_id),
                credit_acc=payment.card_no,
                amount_minor=refund.amount_minor,
                at=now,
                statement_date=statement_date_for(magic_for(refund.amount_minor), self._context.clock.business_date()),
                memo=f"{refund.partner_id} {refund.out_refund_no}",
            )
        except Declined as declined:
            return self._fail_refund(refund, payment, DECLINE_CODES[declined.reason])
        if self._store.update_refund(
            refund.jhb_refund_no,
            RefundStatus.PROCESSING,
            status=RefundStatus.SUCCESS,
            finish_time=wire.format_time(now),
        ):
            settled = self._reload_refund(refund)
            self._notices.refund_finished(settled, payment)
            return settled
        return self._reload_refund(refund)

    def _fail_refund(self, refund: Refund, payment: Payment, code: RetCode) -> Refund:
        if self._store.update_refund(
            refund.jhb_refund_no,
            RefundStatus.PROCESSING,
            status=RefundStatus.FAILED,
            fail_code=code.value,
            finish_time=wire.format_time(self._context.clock.now()),
        ):
            failed = self._reload_refund(refund)
            self._notices.refund_finished(failed, payment)
            return failed
        return self._reload_refund(refund)

    def _refund_view(self, refund: Refund, payment: Payment) -> dict[str, str]:
        code = {
            RefundStatus.SUCCESS: RetCode.SUCCESS,
            RefundStatus.PROCESSING: RetCode.PROCESSING,
        }.get(refund.status) or RetCode(refund.fail_code)
        return {
            "ret_code": code.value,
            "ret_msg": "退款成功" if code is RetCode.SUCCESS else fail_msg(code.value),
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

    def _reload_refund(self, refund: Refund) -> Refund:
        fresh = self._store.refund(refund.jhb_refund_no)
        assert fresh is not None
        return fresh

    # Helpers

    def _reserve_of(self, partner_id: str) -> str:
        return self._store.reserve_acc_no(partner_id) or self._context.profile.reserve_acc_no

    def new_number(self, prefix: str, sequence: str) -> str:
        """JHB's own numbers: prefix, business date, 10-digit sequence (21 characters)."""
        number = self._context.books.next_sequence(sequence)
        return f"{prefix}{self._context.clock.business_date():%Y%m%d}{number:010d}"


def _same_order(stored: Payment, request: wire.EbankPayRequest) -> bool:
    return (stored.amount_minor, stored.subject, stored.notify_url, stored.return_url) == (
        request.amount_fen,
        request.subject,
        request.notify_url,
        request.return_url,
    )
