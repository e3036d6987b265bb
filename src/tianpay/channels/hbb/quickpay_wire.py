"""HBB's quick-pay messages (认证支付, BANKS.md "HBB"): send SMS (77), bind (79), consume by token.

Field names are ACP's own. ``customerInfo`` is base64 of ``{certifTp=01&certifId=…&customerNm=…&
phoneNo=…&smsCode=…}`` and ``accNo`` travels RSA-encrypted (PKCS#1 v1.5) under HBB's encryption
certificate, named by ``encryptCertId`` (research/protocols.md §2.3). The common ACP fields and
``request_fields`` are wire.py's (``AcpRequest``), shared with online banking. Nothing here does I/O.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tianpay.channels.hbb.signing import cert_id
from tianpay.channels.hbb.wire import (
    CURRENCY_CNY,
    AcpRequest,
    BizType,
    TxnSubType,
    TxnType,
    WireError,
)

CERTIF_TYPE_ID_CARD: Final = "01"
# ACP's 开通短信 sub-type for a 77 (docs/banks/hbb.md "Quick pay"; HBB also accepts 00).
TXN_SUB_TYPE_OPEN_SMS: Final = "02"
TXN_TYPE_UNBIND: Final = "74"


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsRequest(AcpRequest):
    """``txnType=77``: HBB texts a code to the card's reserved phone; the bind must reuse orderId/txnTime."""

    accNo: str
    customerInfo: str
    encryptCertId: str
    txnType: str = TxnType.SEND_SMS.value
    txnSubType: str = TXN_SUB_TYPE_OPEN_SMS
    bizType: str = BizType.QUICK_PAY.value


@dataclass(frozen=True, slots=True, kw_only=True)
class BindRequest(AcpRequest):
    """``txnType=79``: the four elements and the SMS code; HBB answers with the card's ``token``."""

    accNo: str
    customerInfo: str
    encryptCertId: str
    txnType: str = TxnType.BIND.value
    txnSubType: str = TxnSubType.DEFAULT.value
    bizType: str = BizType.QUICK_PAY.value


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenConsumeRequest(AcpRequest):
    """``txnType=01``, ``bizType=000301``: a consume by ``token`` on ``backTransReq.do``, no payer step."""

    txnAmt: str
    token: str
    backUrl: str
    txnType: str = TxnType.CONSUME.value
    txnSubType: str = TxnSubType.CONSUME.value
    bizType: str = BizType.QUICK_PAY.value
    currencyCode: str = CURRENCY_CNY


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindRequest(AcpRequest):
    """``txnType=74`` (删除 token): HBB forgets the card token; unbinding twice answers 00 again."""

    token: str
    txnType: str = TXN_TYPE_UNBIND
    txnSubType: str = TxnSubType.DEFAULT.value
    bizType: str = BizType.QUICK_PAY.value


def sms_customer_info(*, phone: str) -> str:
    """A 77's ``customerInfo``: HBB reads only ``phoneNo`` there (docs/banks/hbb.md "Quick pay")."""
    return _braced({"phoneNo": phone})


def customer_info(*, id_number: str, name: str, phone: str, sms_code: str) -> str:
    """A 79's ``customerInfo``: all four keys of BANKS.md plus the code the payer typed."""
    return _braced(
        {
            "certifTp": CERTIF_TYPE_ID_CARD,
            "certifId": id_number,
            "customerNm": name,
            "phoneNo": phone,
            "smsCode": sms_code,
        }
    )


def _braced(fields: dict[str, str]) -> str:
    """base64 of the braced ``{k=v&k=v}`` block, raw UTF-8 values (BANKS.md "HBB")."""
    inner = "&".join(f"{key}={value}" for key, value in fields.items() if value)
    return base64.b64encode(("{" + inner + "}").encode("utf-8")).decode("ascii")


class AccountEncryptor:
    """Encrypts card numbers for HBB under its encryption certificate (keyEncipherment, RSA)."""

    __slots__ = ("_key", "cert_id")

    def __init__(self, certificate: x509.Certificate) -> None:
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("HBB's encryption certificate does not hold an RSA key")
        self._key = key
        self.cert_id = cert_id(certificate)

    def __repr__(self) -> str:
        return f"AccountEncryptor(cert_id={self.cert_id!r})"

    def encrypt(self, plaintext: str) -> str:
        """base64 of RSA PKCS#1 v1.5 over the UTF-8 text (ACP's ``accNo`` encryption)."""
        return base64.b64encode(self._key.encrypt(plaintext.encode("utf-8"), padding.PKCS1v15())).decode("ascii")


def read_token(fields: dict[str, str]) -> str:
    """The card token of a bind answer: ``token``, or inside ACP's ``tokenPayData={token=…&…}``."""
    token = fields.get("token", "")
    if not token:
        block = fields.get("tokenPayData", "")
        if block.startswith("{") and block.endswith("}"):
            inner = dict(part.split("=", 1) for part in block[1:-1].split("&") if "=" in part)
            token = inner.get("token", "")
    if not token or len(token) > 128 or not token.isprintable():
        raise WireError("the bind answer carries no usable token")
    return token
