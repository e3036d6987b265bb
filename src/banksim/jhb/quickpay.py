"""JHB quick pay (协议支付): `bind.apply` → SMS → `bind.confirm` → `no_agree`, then `pay` with it.

Modelled on LianLian's bankcardbind / bankcardbindverfy and agreement pay (research/protocols.md
§3.1). Binding checks the four elements against the card holder's record; paying debits the card
at once with no payer step. Quick-pay orders live in `jhb_payments` beside online-banking ones, so
`pay.query`, `refund` and the notifier treat both alike (docs/banks/jhb.md §11).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from banksim.core.bank import BankContext
from banksim.core.cardholders import cardholder, elements_match, mask_phone
from banksim.core.cards import mask
from banksim.core.magic import Magic, magic_for
from banksim.core.sms import CODE_LIFETIME_S, CodeCheck
from banksim.jhb import wire
from banksim.jhb.agreements import Agreement, Agreements, BindToken
from banksim.jhb.codes import JhbError, RetCode
from banksim.jhb.notices import fail_msg
from banksim.jhb.service import QUICK_PAY_SERVICE, Answer, JhbService
from banksim.jhb.store import JhbStore, Payment, PaymentStatus

BANK_CODE = "JHB"
SMS_PURPOSE = "jhb-quick-pay-bind"
SMS_TEMPLATE = "您正在签约津海银行快捷支付，尾号{last4}的银行卡，验证码{{code}}，5分钟内有效。"

_RET_BY_STATUS = {PaymentStatus.SUCCESS: RetCode.SUCCESS, PaymentStatus.PROCESSING: RetCode.PROCESSING}


class QuickPay:
    def __init__(self, context: BankContext, store: JhbStore, agreements: Agreements, service: JhbService) -> None:
        self._context = context
        self._store = store
        self._agreements = agreements
        self._service = service

    # Binding

    def bind_apply(self, partner_id: str, request: wire.BindApplyRequest) -> Answer:
        holder = cardholder(self._context.books, BANK_CODE, request.card_no)
        if holder is None:
            raise JhbError(RetCode.CARD_INVALID)
        if not elements_match(holder, name=request.acct_name, id_number=request.id_no, phone=request.bind_mob):
            raise JhbError(RetCode.ELEMENTS_MISMATCH)
        if holder.is_frozen:
            raise JhbError(RetCode.CARD_FROZEN)
        now = self._context.clock.now()
        token = BindToken(
            token=secrets.token_hex(16),
            partner_id=partner_id,
            card_no=holder.card_no,
            bind_mob=holder.phone,
            user_id=request.user_id,
            expire_at=now + timedelta(seconds=CODE_LIFETIME_S),
            no_agree="",
        )
        self._agreements.add_bind_token(token, now)
        # The code goes to the phone the bank has on record, which the check above made equal.
        self._context.sms.issue_code(
            ref=token.sms_ref,
            phone=holder.phone,
            purpose=SMS_PURPOSE,
            template=SMS_TEMPLATE.format(last4=holder.card_no[-4:]),
        )
        return Answer(
            {
                "ret_code": RetCode.SUCCESS.value,
                "ret_msg": "验证码已发送",
                "token": token.token,
                "token_expire_time": wire.format_time(token.expire_at),
                "card_no": mask(token.card_no),
                "bind_mob": mask_phone(token.bind_mob),
            }
        )

    def bind_confirm(self, partner_id: str, request: wire.BindConfirmRequest) -> Answer:
        token = self._agreements.bind_token(request.token)
        if token is None or token.partner_id != partner_id:
            raise JhbError(RetCode.BIND_TOKEN_INVALID)
        if token.no_agree:
            # A retried confirm (the first answer was lost) gets the same agreement again.
            return Answer(self._agreement_view(self._own_agreement(partner_id, token.no_agree), "签约成功"))
        self._check_code(token, request.verify_code)
        number = self._service.new_number("JHA", "jhb_agreement")
        agreement = self._agreements.confirm(token, number, wire.format_time(self._context.clock.now()))
        return Answer(self._agreement_view(agreement, "签约成功"))

    def bind_query(self, partner_id: str, no_agree: str) -> Answer:
        return Answer(self._agreement_view(self._own_agreement(partner_id, no_agree), "查询成功"))

    def unbind(self, partner_id: str, no_agree: str) -> Answer:
        self._own_agreement(partner_id, no_agree)
        unbound = self._agreements.unbind(no_agree, wire.format_time(self._context.clock.now()))
        assert unbound is not None
        return Answer(self._agreement_view(unbound, "解约成功"))

    # Paying

    def pay(self, partner_id: str, request: wire.QuickPayRequest) -> Answer:
        magic = magic_for(request.amount_fen)
        if self._context.faults.refuses_new_order(magic):
            raise JhbError(RetCode.BANK_UNAVAILABLE)
        if magic is Magic.LOST_ANSWER_UNPROCESSED:
            return Answer({}, withhold=True)
        agreement = self._own_agreement(partner_id, request.no_agree)
        if not agreement.is_active:
            raise JhbError(RetCode.AGREEMENT_INVALID)
        now = self._context.clock.now()
        candidate = Payment(
            jhb_trade_no=self._service.new_number("JHB", "jhb_trade"),
            partner_id=partner_id,
            out_trade_no=request.out_trade_no,
            service=QUICK_PAY_SERVICE,
            amount_minor=request.amount_fen,
            subject=request.subject,
            notify_url=request.notify_url,
            return_url="",
            expire_at=now,
            # PROCESSING until the books have answered: no payer step, so it never waits to pay.
            status=PaymentStatus.PROCESSING,
            fail_code="",
            card_no=agreement.card_no,
            page_token="qp-" + secrets.token_urlsafe(24),
            session_token="",
            queries_seen=0,
            created_at=now,
            finish_time="",
        )
        stored = self._store.insert_payment(candidate)
        if stored.jhb_trade_no != candidate.jhb_trade_no:
            return Answer(self._repeat(stored, request))
        self._agreements.link_payment(stored.jhb_trade_no, agreement.no_agree)
        paid = self._settle(stored, magic)
        return Answer(self._payment_view(paid, agreement.no_agree), withhold=magic is Magic.LOST_ANSWER_PROCESSED)

    def _settle(self, payment: Payment, magic: Magic) -> Payment:
        if magic is Magic.INSUFFICIENT_FUNDS:
            return self._service.fail_payment(payment, RetCode.INSUFFICIENT_FUNDS, PaymentStatus.PROCESSING)
        if magic is Magic.OVER_LIMIT:
            return self._service.fail_payment(payment, RetCode.OVER_LIMIT, PaymentStatus.PROCESSING)
        if magic is Magic.SLOW_SUCCESS:
            # pay.query settles it on the third query, exactly as for online banking.
            return payment
        return self._service.settle_payment(payment, PaymentStatus.PROCESSING)

    def _repeat(self, stored: Payment, request: wire.QuickPayRequest) -> dict[str, str]:
        """The same `out_trade_no` again: the same order answers again, anything else is 1010."""
        no_agree = self._agreements.agreement_of_payment(stored.jhb_trade_no)
        same = (stored.service, no_agree, stored.amount_minor, stored.subject, stored.notify_url) == (
            QUICK_PAY_SERVICE,
            request.no_agree,
            request.amount_fen,
            request.subject,
            request.notify_url,
        )
        if not same:
            raise JhbError(RetCode.ORDER_DUPLICATE)
        return self._payment_view(stored, no_agree)

    # Views and checks

    def _check_code(self, token: BindToken, code: str) -> None:
        sms = self._context.sms
        check = sms.check_code(ref=token.sms_ref, code=code)
        if check is CodeCheck.OK:
            return
        # The fifth wrong code spends the last try, so it already answers "too many tries".
        if check is CodeCheck.EXHAUSTED or (check is CodeCheck.WRONG and sms.tries_left(token.sms_ref) == 0):
            raise JhbError(RetCode.SMS_TRIES_EXCEEDED)
        if check is CodeCheck.UNKNOWN:
            raise JhbError(RetCode.BIND_TOKEN_INVALID)
        raise JhbError(RetCode.SMS_WRONG)

    def _own_agreement(self, partner_id: str, no_agree: str) -> Agreement:
        agreement = self._agreements.agreement(no_agree)
        if agreement is None or agreement.partner_id != partner_id:
            raise JhbError(RetCode.AGREEMENT_INVALID)
        return agreement

    def _agreement_view(self, agreement: Agreement, ret_msg: str) -> dict[str, str]:
        return {
            "ret_code": RetCode.SUCCESS.value,
            "ret_msg": ret_msg,
            "no_agree": agreement.no_agree,
            "status": agreement.status.value,
            "card_no": mask(agreement.card_no),
            "bind_mob": mask_phone(agreement.bind_mob),
            "bank_code": BANK_CODE,
            "user_id": agreement.user_id,
            "bind_time": agreement.bind_time,
            "unbind_time": agreement.unbind_time,
        }

    def _payment_view(self, payment: Payment, no_agree: str) -> dict[str, str]:
        code = _RET_BY_STATUS.get(payment.status) or RetCode(payment.fail_code)
        return {
            "ret_code": code.value,
            "ret_msg": "支付成功" if code is RetCode.SUCCESS else fail_msg(code.value),
            "out_trade_no": payment.out_trade_no,
            "jhb_trade_no": payment.jhb_trade_no,
            "no_agree": no_agree,
            "amount": wire.format_yuan(payment.amount_minor),
            "status": payment.status.value,
            "fail_code": payment.fail_code,
            "fail_msg": fail_msg(payment.fail_code) if payment.fail_code else "",
            "finish_time": payment.finish_time,
            "card_no": mask(payment.card_no),
        }
