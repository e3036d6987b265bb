"""HBB quick pay (认证支付, bizType 000301): SMS (77), bind (79), token query (78), unbind (74)
and consume by token (01), as `backTransReq.do` handlers.

Each handler takes the verified request fields and returns the signed answer, or raises
`AcpError`/`FormatError` for `app._server_call` to answer. Field rules and codes are in
docs/banks/hbb.md "Quick pay"; the consume reuses the online-banking order lifecycle.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from banksim.core.cardholders import Cardholder, cardholder, elements_match
from banksim.core.cards import mask
from banksim.core.magic import Magic, magic_for
from banksim.core.sms import CodeCheck
from banksim.hbb import wire
from banksim.hbb.gateway import AcpError, AnswerWithheld, Gateway, check_common
from banksim.hbb.tokens import BindRequest, CardToken, OrderIdTaken, Tokens, sms_ref
from banksim.hbb.wire import BizType, FormatError, RespCode, TxnType

TOKEN = re.compile(r"^HT[0-9A-F]{24}$")
SMS_PURPOSE = "hbb-quick-pay-bind"
SMS_TEMPLATE = "您正在开通快捷支付，尾号{last4}的银行卡，验证码{{code}}，5分钟内有效。"
CERTIF_TP_ID_CARD = "01"
PAY_CARD_TYPE_DEBIT = "01"
# ACP's open-card SMS is txnSubType 02; 00 is accepted too because some SDK demos send it.
SMS_SUB_TYPES = ("02", "00")


def send_sms(gateway: Gateway, fields: Mapping[str, str]) -> dict[str, str]:
    """txnType 77: text a bind code to the card's reserved phone, if the phone sent matches it."""
    _check_bind_common(fields, TxnType.SEND_SMS, *SMS_SUB_TYPES)
    card_no = _card_number(gateway, fields)
    phone = _customer_info(fields, "phoneNo")["phoneNo"]
    holder = _holder(gateway, card_no)
    if holder.phone != phone.strip():
        raise AcpError(RespCode.ELEMENTS_MISMATCH)
    if holder.is_frozen:
        raise AcpError(RespCode.CARD_FROZEN)
    mer_id, order_id, txn_time = fields["merId"], fields["orderId"], fields["txnTime"]
    now = gateway.context.clock.now()
    try:
        Tokens(gateway.context.books).record_sms_request(mer_id, order_id, txn_time, card_no, now)
    except OrderIdTaken:
        raise AcpError(RespCode.DUPLICATE) from None
    gateway.context.sms.issue_code(
        ref=sms_ref(mer_id, order_id, txn_time),
        phone=holder.phone,
        purpose=SMS_PURPOSE,
        template=SMS_TEMPLATE.format(last4=card_no[-4:]),
    )
    return gateway.answer(wire.echo(fields), RespCode.SUCCESS)


def bind(gateway: Gateway, fields: Mapping[str, str]) -> dict[str, str]:
    """txnType 79: check the four elements and the SMS code, then issue (or return) the token."""
    _check_bind_common(fields, TxnType.BIND, "00")
    card_no = _card_number(gateway, fields)
    info = _customer_info(fields, "certifTp", "certifId", "customerNm", "phoneNo", "smsCode")
    if info["certifTp"] != CERTIF_TP_ID_CARD:
        raise FormatError("customerInfo certifTp must be 01 (resident ID card)")
    holder = _holder(gateway, card_no)
    if not elements_match(holder, name=info["customerNm"], id_number=info["certifId"], phone=info["phoneNo"]):
        raise AcpError(RespCode.ELEMENTS_MISMATCH)
    if holder.is_frozen:
        raise AcpError(RespCode.CARD_FROZEN)
    tokens = Tokens(gateway.context.books)
    request = tokens.bind_request(fields["merId"], fields["orderId"], fields["txnTime"])
    if request is None or request.acc_no != card_no:
        raise AcpError(RespCode.SMS_CODE, "未发送开通短信或卡号与短信交易不一致")
    if not request.token:
        _check_sms_code(gateway, request, info["smsCode"])
    token = tokens.bind(request, gateway.context.clock.now())
    return _token_answer(gateway, fields, token)


def token_query(gateway: Gateway, fields: Mapping[str, str]) -> dict[str, str]:
    """txnType 78: the status of one of this merchant's tokens."""
    _check_bind_common(fields, TxnType.TOKEN_QUERY, "00")
    token = _own_token(gateway, fields)
    return _token_answer(gateway, fields, token)


def unbind(gateway: Gateway, fields: Mapping[str, str]) -> dict[str, str]:
    """txnType 74: retire a token; unbinding twice answers success twice."""
    _check_bind_common(fields, TxnType.UNBIND, "00", "01")
    token = _own_token(gateway, fields)
    unbound = Tokens(gateway.context.books).unbind(token.token, gateway.context.clock.now())
    assert unbound is not None
    return _token_answer(gateway, fields, unbound)


def consume(gateway: Gateway, fields: Mapping[str, str]) -> dict[str, str]:
    """txnType 01 with bizType 000301: debit the token's card at once; no payer step, no SMS."""
    check_common(fields)
    wire.expect(fields, "txnType", TxnType.CONSUME)
    wire.expect(fields, "txnSubType", "01")
    wire.expect(fields, "bizType", BizType.QUICK_PAY)
    wire.require(fields, "backUrl", "token")
    wire.check_url(fields["backUrl"], "backUrl")
    amount_minor = wire.parse_amount(fields["txnAmt"])
    magic = magic_for(amount_minor)
    if magic is Magic.LOST_ANSWER_UNPROCESSED:
        raise AnswerWithheld
    if gateway.context.faults.refuses_new_order(magic):
        return gateway.answer(wire.echo(fields), RespCode.UNAVAILABLE)
    token = _own_token(gateway, fields)
    if not token.is_active:
        raise AcpError(RespCode.TOKEN_INVALID)
    order = gateway.open_token_order(fields, amount_minor, magic, token.acc_no)
    # settle_authenticated raises AnswerWithheld for magic 96 once the money has moved.
    order = gateway.settle_authenticated(order)
    return gateway.order_answer(fields, order)


# Internals


def _check_bind_common(fields: Mapping[str, str], txn_type: TxnType, *sub_types: str) -> None:
    """The fields every 77/78/79/74 needs; no amount, because no money moves."""
    wire.require(
        fields,
        "version",
        "encoding",
        "txnType",
        "txnSubType",
        "bizType",
        "channelType",
        "accessType",
        "merId",
        "orderId",
        "txnTime",
    )
    wire.expect(fields, "version", wire.VERSION)
    if fields["encoding"].upper() != wire.ENCODING:
        raise FormatError("encoding must be UTF-8")
    wire.expect(fields, "txnType", txn_type)
    wire.expect(fields, "txnSubType", *sub_types)
    wire.expect(fields, "bizType", BizType.QUICK_PAY)
    wire.expect(fields, "channelType", "07", "08")
    wire.expect(fields, "accessType", "0")
    if not wire.ORDER_ID.match(fields["orderId"]):
        raise FormatError("orderId must be 8–40 letters or digits")
    wire.parse_time(fields["txnTime"], "txnTime")


def _card_number(gateway: Gateway, fields: Mapping[str, str]) -> str:
    """Decrypt `accNo` (RSA PKCS#1 v1.5 under HBB's encryption certificate, base64)."""
    wire.require(fields, "accNo", "encryptCertId")
    if fields["encryptCertId"] != gateway.keys.encryption_cert_id:
        raise FormatError("encryptCertId does not name HBB's encryption certificate")
    try:
        plain = gateway.keys.decrypt(base64.b64decode(fields["accNo"], validate=True))
        return plain.decode("ascii").strip()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise FormatError("accNo is not decryptable under HBB's encryption certificate") from None


def _customer_info(fields: Mapping[str, str], *names: str) -> dict[str, str]:
    """Read `customerInfo`: base64 of `{k=v&k=v}` (not encrypted, BANKS.md "HBB")."""
    wire.require(fields, "customerInfo")
    try:
        text = base64.b64decode(fields["customerInfo"], validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise FormatError("customerInfo must be base64 of UTF-8 text") from None
    if not (text.startswith("{") and text.endswith("}")):
        raise FormatError("customerInfo must be {k=v&k=v}")
    info: dict[str, str] = {}
    for pair in text[1:-1].split("&"):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FormatError("customerInfo must be {k=v&k=v}")
        info[key] = value
    missing = [name for name in names if not info.get(name)]
    if missing:
        raise FormatError(f"customerInfo lacks {', '.join(missing)}")
    return info


def _holder(gateway: Gateway, card_no: str) -> Cardholder:
    holder = cardholder(gateway.context.books, gateway.context.code, card_no)
    if holder is None:
        raise AcpError(RespCode.INVALID_CARD)
    return holder


def _check_sms_code(gateway: Gateway, request: BindRequest, code: str) -> None:
    sms = gateway.context.sms
    check = sms.check_code(ref=request.sms_ref, code=code)
    if check is CodeCheck.OK:
        return
    # The fifth wrong code already spends the last try, so it answers "too many" rather than
    # leaving the caller to find out on a sixth attempt.
    if check is CodeCheck.EXHAUSTED or (check is CodeCheck.WRONG and sms.tries_left(request.sms_ref) == 0):
        raise AcpError(RespCode.SMS_TRIES_EXCEEDED)
    raise AcpError(RespCode.SMS_CODE)


def _own_token(gateway: Gateway, fields: Mapping[str, str]) -> CardToken:
    wire.require(fields, "token")
    found = Tokens(gateway.context.books).token(fields["token"]) if TOKEN.match(fields["token"]) else None
    if found is None or found.mer_id != fields["merId"]:
        raise AcpError(RespCode.TOKEN_INVALID)
    return found


def _token_answer(gateway: Gateway, fields: Mapping[str, str], token: CardToken) -> dict[str, str]:
    body = {
        **wire.echo(fields),
        "token": token.token,
        "tokenStatus": token.status.wire_code,
        "accNo": mask(token.acc_no),
        "payCardType": PAY_CARD_TYPE_DEBIT,
        "respCode": RespCode.SUCCESS.value,
        "respMsg": wire.message(RespCode.SUCCESS),
    }
    return gateway.sign(body)
