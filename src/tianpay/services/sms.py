"""One-time SMS codes the platform sends itself (registration, payment-password reset, large wallet
payments): 6 digits, 5 minutes, 5 tries, at most 1 send a minute and 10 a day per phone.

Only a keyed hash of a code is stored. The code is committed before the SMS leaves, so a code the
payer receives always exists; the send limit is counted per phone fingerprint, in the database.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Final

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.member import (
    MAX_SMS_CODE_TRIES,
    SMS_CODE_DIGITS,
    SMS_CODE_LIFETIME,
    SealedPii,
    SmsCode,
    SmsCodeExpired,
    SmsCodeIncorrect,
    SmsCodeTooManyTries,
    SmsPurpose,
    SmsRateLimited,
)
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.member_tools import MemberTools
from tianpay.services.pii import PiiKind, reveal

log = structlog.stdlib.get_logger(__name__)

_CODE_HASH_KIND: Final = "sms_code"
_TEXTS: Final = {
    SmsPurpose.REGISTER: "【天付】您的注册验证码为{code}，5分钟内有效。请勿告诉他人。",
    SmsPurpose.RESET_PAYMENT_PASSWORD: "【天付】您正在修改支付密码，验证码{code}，5分钟内有效。请勿告诉他人。",
    SmsPurpose.WALLET_PAYMENT: "【天付】您正在使用余额支付{amount}，验证码{code}，5分钟内有效。请勿告诉他人。",
}


def send_code(
    uow_factory: UnitOfWorkFactory, tools: MemberTools, phone: SealedPii, purpose: SmsPurpose, *, amount: str = ""
) -> None:
    """Sends a new code for ``purpose`` to the sealed phone; a new code replaces the one before.

    Raises SmsRateLimited (nothing is sent) beyond 1 send a minute or 10 a day for the phone.
    """
    if not tools.sms_limiter.allow(f"sms:{phone.fingerprint}"):
        log.info("sms.rate_limited", phone=phone.masked, purpose=purpose.value)
        raise SmsRateLimited("too many codes were sent to this phone; wait a minute (at most 10 a day)", param="phone")
    code = "".join(secrets.choice("0123456789") for _ in range(SMS_CODE_DIGITS))
    now = tools.clock.now()
    code_id = tools.ids.new(id_prefixes.SMS_CODE)
    with uow_factory() as uow:
        uow.sms_codes.add(
            SmsCode(
                id=code_id,
                phone_fingerprint=phone.fingerprint,
                purpose=purpose,
                code_hash=_code_hash(tools, code_id, code),
                expires_at=now + SMS_CODE_LIFETIME,
                created_at=now,
            )
        )
        uow.commit()
    text = _TEXTS[purpose].format(code=code, amount=amount)
    tools.sms.send(reveal(tools.cipher, PiiKind.PHONE, phone), phone, text)
    log.info("sms.code_sent", phone=phone.masked, purpose=purpose.value, code_id=code_id)


def check_code(
    uow_factory: UnitOfWorkFactory, tools: MemberTools, phone_fingerprint: str, purpose: SmsPurpose, code: str
) -> None:
    """Consumes the phone's latest code for ``purpose`` if ``code`` is it; raises otherwise.

    SmsCodeExpired: no live code (expired, used, or none sent). SmsCodeTooManyTries: the code was
    entered wrong 5 times and is dead. SmsCodeIncorrect: wrong, with tries left (each is counted and
    committed, whatever the caller does next).
    """
    now = tools.clock.now()
    with uow_factory() as uow:
        latest = uow.sms_codes.latest(phone_fingerprint, purpose.value)
        if latest is None or not latest.is_live_at(now):
            raise SmsCodeExpired("the SMS code has expired or was never sent; ask for a new one", param="sms_code")
        if latest.is_exhausted:
            raise SmsCodeTooManyTries("the SMS code was entered wrong too often; ask for a new one", param="sms_code")
        if hmac.compare_digest(latest.code_hash, _code_hash(tools, latest.id, code)):
            if not uow.sms_codes.consume(latest.id, now):
                raise SmsCodeExpired("the SMS code was already used; ask for a new one", param="sms_code")
            uow.commit()
            return
        failures = uow.sms_codes.count_failure(latest.id)
        uow.commit()
    if failures >= MAX_SMS_CODE_TRIES:
        raise SmsCodeTooManyTries("the SMS code was entered wrong too often; ask for a new one", param="sms_code")
    raise SmsCodeIncorrect(
        f"the SMS code is incorrect ({MAX_SMS_CODE_TRIES - failures} tries left)", param="sms_code"
    )


def _code_hash(tools: MemberTools, code_id: str, code: str) -> str:
    # Keyed and salted by the code's id: six digits are a million guesses, so a plain hash in a
    # leaked table would give every code away.
    return tools.cipher.fingerprint(_CODE_HASH_KIND, f"{code_id}:{code}")
