"""HBB's gateway use cases: online-banking consume, query and refund, as plain methods.

The HTTP layer (`app.py`) parses forms and renders pages; this module verifies signatures,
applies the field rules of BANKS.md "HBB", moves money in the books, and queues the signed
notifications. Magic amounts (banksim.core.magic) are applied here, per interface, as
docs/banks/hbb.md describes.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from banksim.core.bank import BankContext
from banksim.core.books import Declined, DeclineReason
from banksim.core.cards import bank_of, is_well_formed, mask
from banksim.core.clearing import ClearingStatus
from banksim.core.magic import QUERIES_BEFORE_SUCCESS, Magic, magic_for, statement_date_for
from banksim.core.partners import PartnerKey
from banksim.hbb import signing, wire
from banksim.hbb.orders import DuplicateOrder, NewOrder, Order, OrderEvent, Orders, OrderStatus
from banksim.hbb.pki import HbbKeys
from banksim.hbb.wire import FormatError, RespCode, TxnType

DEFAULT_PAY_TIMEOUT = timedelta(minutes=15)
LOGIN_TRIES = 3
PARTNER_DEFAULT_NAME = "天付支付"

_DECLINE_CODES: dict[DeclineReason, RespCode] = {
    DeclineReason.INSUFFICIENT_FUNDS: RespCode.INSUFFICIENT_FUNDS,
    DeclineReason.OVER_LIMIT: RespCode.OVER_LIMIT,
    DeclineReason.ACCOUNT_FROZEN: RespCode.CARD_FROZEN,
    DeclineReason.NO_SUCH_ACCOUNT: RespCode.INVALID_CARD,
    DeclineReason.ACCOUNT_CLOSED: RespCode.INVALID_CARD,
}
_MAGIC_DECLINES: dict[Magic, RespCode] = {
    Magic.INSUFFICIENT_FUNDS: RespCode.INSUFFICIENT_FUNDS,
    Magic.OVER_LIMIT: RespCode.OVER_LIMIT,
}


class AcpError(Exception):
    """A request refused with `code`; `post_back` says whether the browser returns to frontUrl."""

    def __init__(self, code: RespCode, detail: str = "", *, post_back: bool = False) -> None:
        super().__init__(f"{code.value} {detail}".strip())
        self.code = code
        self.detail = detail or wire.message(code)
        self.post_back = post_back


class AnswerWithheld(Exception):
    """Magic 96/97: the synchronous answer must never reach the client."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    order: Order
    error: str = ""


class Gateway:
    def __init__(self, context: BankContext, keys: HbbKeys) -> None:
        self.context = context
        self.keys = keys
        self.orders = Orders(context.books)

    # Signing

    def sign(self, fields: Mapping[str, str]) -> dict[str, str]:
        """Add HBB's signing fields (certId, signPubKeyCert, signature) to an outgoing message."""
        signed = {
            "version": wire.VERSION,
            "encoding": wire.ENCODING,
            "signMethod": wire.SIGN_METHOD_RSA,
            **fields,
            "certId": self.keys.signing_cert_id,
            # CRLF line endings: a browser posting the front result normalises every line break
            # to CRLF, so this is the only form that survives the round trip unchanged.
            "signPubKeyCert": self.keys.signing_cert_pem.replace("\r\n", "\n").replace("\n", "\r\n"),
        }
        signed["signature"] = signing.sign(signed, self.keys.signing_key)
        return signed

    def verify(self, fields: Mapping[str, str]) -> str:
        """Check the platform's signature; returns its merId. Raises AcpError 30 or 11."""
        wire.require(fields, "merId", "certId", "signature")
        wire.expect(fields, "signMethod", wire.SIGN_METHOD_RSA)
        key = self.context.partners.key_of(fields["merId"], fields["certId"])
        if key is None:
            raise AcpError(RespCode.SIGNATURE, "unknown merId or certId")
        if not signing.verify(fields, _public_key(key)):
            raise AcpError(RespCode.SIGNATURE)
        return fields["merId"]

    # Online banking (frontTransReq.do, txnType 01, bizType 000201)

    def accept_consume(self, fields: Mapping[str, str]) -> Order:
        """Record a verified online-banking order and open its payer session."""
        check_common(fields)
        wire.expect(fields, "txnType", TxnType.CONSUME)
        wire.expect(fields, "txnSubType", "01")
        wire.expect(fields, "bizType", wire.BizType.ONLINE_BANKING)
        wire.require(fields, "frontUrl", "backUrl")
        wire.check_url(fields["frontUrl"], "frontUrl")
        wire.check_url(fields["backUrl"], "backUrl")
        amount_minor = wire.parse_amount(fields["txnAmt"])
        pay_timeout = self._pay_timeout(fields)
        magic = magic_for(amount_minor)
        if magic is Magic.LOST_ANSWER_UNPROCESSED:
            raise AnswerWithheld
        if self.context.faults.refuses_new_order(magic):
            raise AcpError(RespCode.UNAVAILABLE, post_back=True)
        order = self._insert(fields, amount_minor, magic, pay_timeout=pay_timeout, session=secrets.token_urlsafe(24))
        return self.expire_if_due(order)

    def login(self, session: str, card_no: str, password: str) -> LoginResult:
        order = self._open_session(session)
        if order.status is not OrderStatus.AWAITING_PAYER:
            return LoginResult(order)
        card_no = card_no.replace(" ", "")
        account = self.context.books.account(card_no) if is_well_formed(card_no) else None
        if account is None or bank_of(card_no) != self.context.code or account.kind.value != "card":
            return LoginResult(order, f"{RespCode.INVALID_CARD.value} {wire.message(RespCode.INVALID_CARD)}")
        if not self.context.books.check_login(card_no, password):
            return self._wrong_password(order)
        moved = self.orders.apply(order.query_id, OrderEvent.LOGGED_IN, self.context.clock.now(), acc_no=card_no)
        return LoginResult(moved or self._reload(order))

    def confirm(self, session: str) -> Order:
        """The payer confirmed: debit the card, credit the reserve, notify (magic permitting)."""
        order = self._open_session(session)
        if order.status is not OrderStatus.AUTHENTICATED:
            return order
        return self.settle_authenticated(order)

    def settle_authenticated(self, order: Order) -> Order:
        """Pay an order whose payer is known (pages or quick-pay token); magic amounts apply here."""
        if order.magic in _MAGIC_DECLINES:
            return self._finish(order, OrderEvent.DECLINED, _MAGIC_DECLINES[order.magic])
        if order.magic is Magic.SLOW_SUCCESS:
            deferred = self.orders.apply(order.query_id, OrderEvent.DEFERRED, self.context.clock.now())
            return deferred or self._reload(order)
        code = self._book(order)
        event = OrderEvent.PAID if code is RespCode.SUCCESS else OrderEvent.DECLINED
        finished = self._finish(order, event, code)
        if order.magic is Magic.LOST_ANSWER_PROCESSED and code is RespCode.SUCCESS:
            raise AnswerWithheld
        return finished

    def open_token_order(self, fields: Mapping[str, str], amount_minor: int, magic: Magic, acc_no: str) -> Order:
        """Record a quick-pay consume; its payer is known by token, so it skips the payer pages.

        It enters `awaiting_payer` like every consume and moves to `authenticated` at once, so
        the lifecycle table and the settling code stay the ones online banking uses.
        """
        order = self._insert(fields, amount_minor, magic, pay_timeout="", session=None)
        moved = self.orders.apply(order.query_id, OrderEvent.LOGGED_IN, self.context.clock.now(), acc_no=acc_no)
        return moved or self._reload(order)

    def order_answer(self, fields: Mapping[str, str], order: Order) -> dict[str, str]:
        """The signed synchronous answer describing `order` (refunds and quick-pay consumes)."""
        return self.answer({**wire.echo(fields), **self._order_fields(order)}, _reported_code(order))

    def order_for_session(self, session: str) -> Order:
        return self._open_session(session)

    def merchant_name(self, order: Order) -> str:
        partner = self.merchant_name_for(order.mer_id)
        return f"{partner} · {order.mer_abbr}" if order.mer_abbr else partner

    def merchant_name_for(self, mer_id: str) -> str:
        return self.context.partners.name(mer_id) or PARTNER_DEFAULT_NAME

    # Query (queryTrans.do, txnType 00)

    def query(self, fields: Mapping[str, str]) -> dict[str, str]:
        mer_id = self.verify(fields)
        wire.require(fields, "orderId", "txnTime")
        wire.expect(fields, "txnType", TxnType.QUERY)
        wire.parse_time(fields["txnTime"], "txnTime")
        order = self.orders.by_order(mer_id, fields["orderId"], fields["txnTime"])
        if order is None:
            return self.answer(fields, RespCode.NO_SUCH_ORDER)
        order = self._advance_on_query(self.expire_if_due(order))
        orig = _reported_code(order)
        answer = {
            **wire.echo(fields),
            **self._order_fields(order),
            "origRespCode": orig.value,
            "origRespMsg": wire.message(orig),
        }
        return self.answer(answer, RespCode.SUCCESS)

    # Refund (backTransReq.do, txnType 04)

    def refund(self, fields: Mapping[str, str]) -> dict[str, str]:
        check_common(fields)
        wire.expect(fields, "txnType", TxnType.REFUND)
        wire.require(fields, "origQryId", "backUrl")
        wire.check_url(fields["backUrl"], "backUrl")
        if not wire.QUERY_ID.match(fields["origQryId"]):
            raise FormatError("origQryId must be 21 digits")
        amount_minor = wire.parse_amount(fields["txnAmt"])
        magic = magic_for(amount_minor)
        if magic is Magic.LOST_ANSWER_UNPROCESSED:
            raise AnswerWithheld
        if magic is Magic.REFUSED:
            return self.answer(fields, RespCode.UNAVAILABLE)
        original = self._refundable_original(fields)
        order = self._insert_refund(fields, amount_minor, magic, original)
        order = self._settle_refund(order)
        if magic is Magic.LOST_ANSWER_PROCESSED:
            raise AnswerWithheld
        return self.order_answer(fields, order)

    # Answers and notifications

    def answer(self, fields: Mapping[str, str], code: RespCode, detail: str = "") -> dict[str, str]:
        body = {**wire.echo(fields), **{k: v for k, v in fields.items() if k in _ANSWER_KEYS}}
        body["respCode"] = code.value
        body["respMsg"] = detail or wire.message(code)
        return self.sign(body)

    def result(self, order: Order) -> dict[str, str]:
        """The signed result of an order, as notified to backUrl and posted to frontUrl."""
        code = _reported_code(order)
        fields = {**self._order_fields(order), "respCode": code.value, "respMsg": wire.message(code)}
        if order.req_reserved:
            fields["reqReserved"] = order.req_reserved
        return self.sign(fields)

    def expire_if_due(self, order: Order) -> Order:
        if order.status not in (OrderStatus.AWAITING_PAYER, OrderStatus.AUTHENTICATED) or not order.pay_timeout:
            return order
        if self.context.clock.now() <= wire.parse_time(order.pay_timeout, "payTimeout"):
            return order
        return self._finish(order, OrderEvent.EXPIRED, RespCode.PAY_TIMEOUT)

    def notify(self, order: Order) -> None:
        if not order.back_url:
            return
        body = wire.encode_form(self.result(order))
        notifier = self.context.notifier
        event_ref = f"{order.query_id}:{order.resp_code}"
        suppressed = order.magic is Magic.NO_NOTIFICATION
        notifier.enqueue(
            event_ref=event_ref,
            url=order.back_url,
            body=body,
            content_type=wire.FORM_CONTENT_TYPE,
            suppressed=suppressed,
        )
        if order.magic is Magic.DOUBLE_NOTIFICATION:
            notifier.enqueue(
                event_ref=event_ref,
                url=order.back_url,
                body=body,
                content_type=wire.FORM_CONTENT_TYPE,
                delay_s=notifier.policy.first_retry_s,
            )

    # Internals

    def _pay_timeout(self, fields: Mapping[str, str]) -> str:
        if fields.get("payTimeout"):
            wire.parse_time(fields["payTimeout"], "payTimeout")
            return fields["payTimeout"]
        # ACP's SDK defaults the order's life to 15 minutes; so does HBB when none is sent.
        return wire.beijing_stamp(self.context.clock.now() + DEFAULT_PAY_TIMEOUT)

    def _new_ids(self) -> tuple[str, str, str]:
        seq = self.context.books.next_sequence("hbb_query_id")
        local = self.context.clock.local_now()
        return f"{local:%y%m%d%H%M%S}{seq % 10**9:09d}", f"{seq % 10**6:06d}", f"{local:%m%d%H%M%S}"

    def _insert(
        self, fields: Mapping[str, str], amount_minor: int, magic: Magic, *, pay_timeout: str, session: str | None
    ) -> Order:
        new = self._new_order(fields, amount_minor, magic, OrderStatus.AWAITING_PAYER, pay_timeout, session, "")
        if self.orders.exists(new.mer_id, new.order_id, new.txn_time):
            raise AcpError(RespCode.DUPLICATE)
        with self.context.books.tx() as conn:
            self._insert_new(conn, new)
        return self._must(new.query_id)

    def _new_order(
        self,
        fields: Mapping[str, str],
        amount_minor: int,
        magic: Magic,
        status: OrderStatus,
        pay_timeout: str,
        session: str | None,
        orig_query_id: str,
    ) -> NewOrder:
        query_id, trace_no, trace_time = self._new_ids()
        return NewOrder(
            query_id=query_id,
            mer_id=fields["merId"],
            order_id=fields["orderId"],
            txn_time=fields["txnTime"],
            txn_type=fields["txnType"],
            txn_sub_type=fields.get("txnSubType", "00"),
            biz_type=fields["bizType"],
            access_type=fields["accessType"],
            channel_type=fields["channelType"],
            amount_minor=amount_minor,
            currency_code=fields["currencyCode"],
            front_url=fields.get("frontUrl", ""),
            back_url=fields.get("backUrl", ""),
            pay_timeout=pay_timeout,
            orig_query_id=orig_query_id,
            status=status,
            resp_code="",
            trace_no=trace_no,
            trace_time=trace_time,
            session=session,
            magic=magic,
            req_reserved=fields.get("reqReserved", ""),
            mer_abbr=fields.get("merAbbr", ""),
        )

    def _insert_new(self, conn: sqlite3.Connection, new: NewOrder) -> None:
        try:
            self.orders.insert(conn, new, self.context.clock.now())
        except DuplicateOrder:
            raise AcpError(RespCode.DUPLICATE) from None

    def _open_session(self, session: str) -> Order:
        order = self.orders.by_session(session)
        if order is None:
            raise AcpError(RespCode.NO_SUCH_ORDER, "支付会话不存在或已失效")
        return self.expire_if_due(order)

    def _wrong_password(self, order: Order) -> LoginResult:
        failures = self.orders.count_login_failure(order.query_id)
        if failures >= LOGIN_TRIES:
            return LoginResult(self._finish(order, OrderEvent.LOCKED_OUT, RespCode.WRONG_PASSWORD))
        left = LOGIN_TRIES - failures
        return LoginResult(order, f"登录密码错误，还可尝试 {left} 次")

    def _finish(self, order: Order, event: OrderEvent, code: RespCode) -> Order:
        """Apply a final event and notify its result (once, whoever wins the race)."""
        at = self.context.clock.now()
        settle = statement_date_for(order.magic, self.context.clock.business_date())
        moved = self.orders.apply(
            order.query_id,
            event,
            at,
            resp_code=code.value,
            settle_date=settle if code is RespCode.SUCCESS else None,
        )
        if moved is None:
            return self._reload(order)
        self.notify(moved)
        return moved

    def _book(self, order: Order) -> RespCode:
        """Move the money for a consume (card → reserve) or a refund (reserve → card)."""
        if order.txn_type == TxnType.PAYOUT:
            return self._book_payout(order)
        reserve = self.context.profile.reserve_acc_no
        is_refund = order.txn_type == TxnType.REFUND
        card = self._refund_card(order) if is_refund else order.acc_no
        debit, credit = (reserve, card) if is_refund else (card, reserve)
        try:
            self.context.books.transfer(
                bank_ref=order.query_id,
                kind="refund" if is_refund else "consume",
                debit_acc=debit,
                credit_acc=credit,
                amount_minor=order.amount_minor,
                at=self.context.clock.now(),
                statement_date=statement_date_for(order.magic, self.context.clock.business_date()),
                enforce_limit=not is_refund,
                memo=f"{order.mer_id}/{order.order_id}",
            )
        except Declined as declined:
            return _DECLINE_CODES[declined.reason]
        return RespCode.SUCCESS

    def _book_payout(self, order: Order) -> RespCode:
        """Move a payout (reserve → payee): in these books for an HBB account, else through clearing.

        Both ways are idempotent on the order's queryId, so a payout booked late (magic 94, on a
        query) can never move twice. A clearing transfer the receiving bank sends back (the
        account vanished after the request was checked) fails the payout as "no such account".
        """
        reserve = self.context.profile.reserve_acc_no
        statement_date = statement_date_for(order.magic, self.context.clock.business_date())
        payee_bank = bank_of(order.acc_no)
        if payee_bank == self.context.code:
            try:
                self.context.books.transfer(
                    bank_ref=order.query_id,
                    kind="payout",
                    debit_acc=reserve,
                    credit_acc=order.acc_no,
                    amount_minor=order.amount_minor,
                    at=self.context.clock.now(),
                    statement_date=statement_date,
                    memo=f"{order.mer_id}/{order.order_id}",
                )
            except Declined as declined:
                return _DECLINE_CODES[declined.reason]
            return RespCode.SUCCESS
        if payee_bank is None:
            return RespCode.INVALID_CARD
        moved = self.context.clearing.transfer(
            clearing_ref=order.query_id,
            from_bank=self.context.code,
            from_acc=reserve,
            to_bank=payee_bank,
            to_acc=order.acc_no,
            amount_minor=order.amount_minor,
            memo=f"{order.mer_id}/{order.order_id}",
        )
        if moved.status is ClearingStatus.SETTLED:
            return RespCode.SUCCESS
        if moved.status is ClearingStatus.REJECTED and moved.reason:
            return _DECLINE_CODES.get(DeclineReason(moved.reason), RespCode.INSUFFICIENT_FUNDS)
        return RespCode.INVALID_CARD

    def _refund_card(self, order: Order) -> str:
        original = self.orders.by_query_id(order.orig_query_id)
        assert original is not None
        return original.acc_no

    def _advance_on_query(self, order: Order) -> Order:
        """Magic 94: the first queries see "processing", the next one finds it done."""
        if order.status is not OrderStatus.PROCESSING or order.magic is not Magic.SLOW_SUCCESS:
            return order
        if self.orders.count_query(order.query_id) <= QUERIES_BEFORE_SUCCESS:
            return order
        code = self._book(order)
        event = OrderEvent.RESOLVED_PAID if code is RespCode.SUCCESS else OrderEvent.RESOLVED_DECLINED
        return self._finish(order, event, code)

    def _refundable_original(self, fields: Mapping[str, str]) -> Order:
        original = self.orders.by_query_id(fields["origQryId"])
        if (
            original is None
            or original.mer_id != fields["merId"]
            or original.txn_type != TxnType.CONSUME
            or original.status is not OrderStatus.SUCCEEDED
        ):
            raise AcpError(RespCode.ORIGINAL_INVALID)
        return original

    def _insert_refund(self, fields: Mapping[str, str], amount_minor: int, magic: Magic, original: Order) -> Order:
        status = OrderStatus.PROCESSING
        new = self._new_order(fields, amount_minor, magic, status, "", None, original.query_id)
        # The refundable check and the insert share one transaction, so two concurrent refunds
        # can never together exceed the original amount.
        with self.context.books.tx() as conn:
            if self.orders.refunded_minor(conn, original.query_id) + amount_minor > original.amount_minor:
                raise AcpError(RespCode.REFUND_EXCEEDS)
            self._insert_new(conn, new)
        return self._must(new.query_id)

    def _settle_refund(self, order: Order) -> Order:
        if order.magic in _MAGIC_DECLINES:
            return self._fail_quietly(order, _MAGIC_DECLINES[order.magic])
        if order.magic is Magic.SLOW_SUCCESS:
            return order
        code = self._book(order)
        if code is not RespCode.SUCCESS:
            return self._fail_quietly(order, code)
        return self._finish(order, OrderEvent.RESOLVED_PAID, code)

    def _fail_quietly(self, order: Order, code: RespCode) -> Order:
        # A refund refused in the synchronous answer is final there; no notification follows.
        moved = self.orders.apply(
            order.query_id, OrderEvent.RESOLVED_DECLINED, self.context.clock.now(), resp_code=code.value
        )
        return moved or self._reload(order)

    def _order_fields(self, order: Order) -> dict[str, str]:
        fields = {
            "txnType": order.txn_type,
            "txnSubType": order.txn_sub_type,
            "bizType": order.biz_type,
            "accessType": order.access_type,
            "channelType": order.channel_type,
            "merId": order.mer_id,
            "orderId": order.order_id,
            "txnTime": order.txn_time,
            "txnAmt": str(order.amount_minor),
            "currencyCode": order.currency_code,
            "queryId": order.query_id,
            "traceNo": order.trace_no,
            "traceTime": order.trace_time,
        }
        if order.orig_query_id:
            fields["origQryId"] = order.orig_query_id
        card = self._refund_card(order) if order.orig_query_id else order.acc_no
        if card:
            fields["accNo"] = mask(card)
            fields["payCardType"] = "01"
        if order.status is OrderStatus.SUCCEEDED:
            fields["settleDate"] = order.settle_date
            fields["settleAmt"] = str(order.amount_minor)
            fields["settleCurrencyCode"] = order.currency_code
        return fields

    def _reload(self, order: Order) -> Order:
        return self._must(order.query_id)

    def _must(self, query_id: str) -> Order:
        found = self.orders.by_query_id(query_id)
        assert found is not None
        return found


_ANSWER_KEYS = frozenset(
    {
        "queryId",
        "traceNo",
        "traceTime",
        "settleDate",
        "settleAmt",
        "settleCurrencyCode",
        "accNo",
        "payCardType",
        "origRespCode",
        "origRespMsg",
    }
)


def check_common(fields: Mapping[str, str]) -> None:
    wire.require(
        fields,
        "version",
        "encoding",
        "txnType",
        "bizType",
        "channelType",
        "accessType",
        "merId",
        "orderId",
        "txnTime",
        "txnAmt",
        "currencyCode",
    )
    wire.expect(fields, "version", wire.VERSION)
    if fields["encoding"].upper() != wire.ENCODING:
        raise FormatError("encoding must be UTF-8")
    wire.expect(fields, "channelType", "07", "08")
    wire.expect(fields, "accessType", "0")
    wire.expect(fields, "currencyCode", wire.CURRENCY_CNY)
    if not wire.ORDER_ID.match(fields["orderId"]):
        raise FormatError("orderId must be 8–40 letters or digits")
    wire.parse_time(fields["txnTime"], "txnTime")


def _reported_code(order: Order) -> RespCode:
    if order.status in (OrderStatus.SUCCEEDED, OrderStatus.FAILED):
        return RespCode(order.resp_code)
    return RespCode.PROCESSING


def _public_key(key: PartnerKey) -> rsa.RSAPublicKey:
    public: PublicKeyTypes
    if key.certificate_pem:
        public = x509.load_pem_x509_certificate(key.certificate_pem.encode()).public_key()
    else:
        public = serialization.load_pem_public_key(key.public_key_pem.encode())
    if not isinstance(public, rsa.RSAPublicKey):
        raise AcpError(RespCode.SIGNATURE, "the registered key is not RSA")
    return public


def key_id_for(public_key_pem: str | None, certificate_pem: str | None) -> tuple[str, str]:
    """HBB's name for a partner key and its public key PEM.

    A certificate is named by its serial in decimal (as ACP names certificates); a bare public
    key by the first 8 bytes of SHA-256 over its DER SubjectPublicKeyInfo, read as a decimal
    number, so either way `certId` is all digits.
    """
    public: PublicKeyTypes
    if certificate_pem:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        public = cert.public_key()
        key_id = str(cert.serial_number)
    elif public_key_pem:
        public = serialization.load_pem_public_key(public_key_pem.encode())
        key_id = ""
    else:
        raise ValueError("send public_key_pem or certificate_pem")
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < 2048:
        raise ValueError("HBB accepts RSA keys of at least 2048 bits")
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not key_id:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(der)
        key_id = str(int.from_bytes(digest.finalize()[:8], "big"))
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key_id, pem.decode("ascii")
