"""Members (a natural person with a Tianpay identity), their secrets' rules, and one-time SMS codes.

ID numbers and phones exist here only as ``SealedPii`` (ciphertext, keyed fingerprint, masked copy):
the domain never holds them in clear longer than validation takes. The payment password's lockout
(5 wrong tries lock it for 3 hours) and SMS codes' life and tries are rules, written as data.
"""

from __future__ import annotations

import enum
import itertools
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from tianpay.domain.errors import Conflict, DomainError

MAX_PAYMENT_PASSWORD_TRIES: Final = 5
PAYMENT_PASSWORD_LOCK: Final = timedelta(hours=3)
SMS_CODE_DIGITS: Final = 6
SMS_CODE_LIFETIME: Final = timedelta(minutes=5)
MAX_SMS_CODE_TRIES: Final = 5
MIN_NAME_CHARS: Final = 2
MAX_NAME_CHARS: Final = 30
MIN_LOGIN_PASSWORD_CHARS: Final = 8
MAX_LOGIN_PASSWORD_CHARS: Final = 64
EXTERNAL_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
PAYMENT_PASSWORD_PATTERN: Final = re.compile(r"[0-9]{6}")
# CJK ideographs (with extension A), the middle dots of minority names (·, •, ・) and, for foreign
# residents' names written in Latin letters, letters, spaces and hyphens.
_NAME_PATTERN: Final = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u00b7\u2022\u30fbA-Za-z -]+")


class MemberStatus(enum.StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"


class RegisteredVia(enum.StrEnum):
    """How the member came to be: a merchant's backend (implicit) or the wallet sign-up (explicit)."""

    MERCHANT = "merchant"
    WALLET = "wallet"


class SmsPurpose(enum.StrEnum):
    """What an SMS code proves; a code sent for one purpose never passes for another."""

    REGISTER = "register"
    RESET_PAYMENT_PASSWORD = "reset_payment_password"  # noqa: S105 (a purpose, not a password)
    WALLET_PAYMENT = "wallet_payment"


# ---- errors -----------------------------------------------------------------------------------------


class InvalidMember(DomainError):
    code = "member_invalid"


class InvalidName(InvalidMember):
    code = "name_invalid"


class InvalidIdNumber(InvalidMember):
    code = "id_number_invalid"


class InvalidPhone(InvalidMember):
    code = "phone_invalid"


class InvalidExternalId(InvalidMember):
    code = "external_id_invalid"


class InvalidLoginPassword(InvalidMember):
    code = "login_password_invalid"


class InvalidPaymentPassword(InvalidMember):
    """The new payment password breaks a rule (6 digits, not trivially guessable)."""

    code = "payment_password_invalid"


class PhoneInUse(Conflict):
    """Another member signs in with this phone: one phone, one wallet."""

    code = "phone_in_use"


class IdNumberInUse(Conflict):
    """Another wallet is already verified with this ID number: one person, one member."""

    code = "id_number_in_use"


class MemberNotActive(DomainError):
    code = "member_not_active"


class LoginFailed(DomainError):
    """The phone or the login password is wrong; which one is never said."""

    code = "login_failed"
    kind = "authentication_error"


class PaymentPasswordNotSet(DomainError):
    code = "payment_password_not_set"


class PaymentPasswordAlreadySet(Conflict):
    """A set payment password is changed only with an SMS code (``change_payment_password``)."""

    code = "payment_password_already_set"


class PaymentPasswordIncorrect(DomainError):
    code = "payment_password_incorrect"

    def __init__(self, message: str, *, tries_left: int, param: str | None = "payment_password") -> None:
        super().__init__(message, param=param)
        self.tries_left = tries_left


class PaymentPasswordLocked(DomainError):
    code = "payment_password_locked"

    def __init__(self, message: str, *, locked_until: datetime, param: str | None = "payment_password") -> None:
        super().__init__(message, param=param)
        self.locked_until = locked_until


class SmsCodeIncorrect(DomainError):
    code = "sms_code_incorrect"


class SmsCodeExpired(DomainError):
    """No live code: it expired, was used, or was never sent for this phone and purpose."""

    code = "sms_code_expired"


class SmsCodeTooManyTries(DomainError):
    """The code was entered wrong too often and is dead; ask for a new one."""

    code = "sms_code_too_many_tries"


class SmsRateLimited(DomainError):
    """At most one code a minute and ten a day per phone."""

    code = "sms_rate_limited"
    kind = "rate_limit_error"


class SmsCodeRequired(DomainError):
    """The operation needs an SMS code too (a wallet payment above the threshold); one was sent."""

    code = "sms_code_required"


# ---- values -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SealedPii:
    """A personal number at rest: AES-256-GCM ciphertext, keyed fingerprint, masked copy."""

    ciphertext: str
    fingerprint: str
    masked: str


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    name: str | None
    id_number: SealedPii | None
    phone: SealedPii | None
    status: MemberStatus
    registered_via: RegisteredVia
    is_real_name_verified: bool
    created_at: datetime
    updated_at: datetime
    login_password_hash: str | None = None
    payment_password_hash: str | None = None
    payment_password_failures: int = 0
    payment_password_locked_until: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.status is MemberStatus.ACTIVE

    @property
    def has_payment_password(self) -> bool:
        return self.payment_password_hash is not None

    def is_payment_password_locked_at(self, now: datetime) -> bool:
        return self.payment_password_locked_until is not None and now < self.payment_password_locked_until

    def with_real_name(self, name: str, id_number: SealedPii, now: datetime) -> Member:
        return replace(self, name=name, id_number=id_number, is_real_name_verified=True, updated_at=now)


@dataclass(frozen=True, slots=True)
class MerchantMemberLink:
    """How one merchant knows a member: by its own ``external_id``."""

    merchant_id: str
    external_id: str
    member_id: str
    request_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SmsCode:
    """A sent code, kept as a keyed hash; ``failed_tries`` counts wrong entries."""

    id: str
    phone_fingerprint: str
    purpose: SmsPurpose
    code_hash: str
    expires_at: datetime
    created_at: datetime
    failed_tries: int = 0
    consumed_at: datetime | None = None

    def is_live_at(self, now: datetime) -> bool:
        return self.consumed_at is None and now < self.expires_at

    @property
    def is_exhausted(self) -> bool:
        return self.failed_tries >= MAX_SMS_CODE_TRIES


# ---- rules ------------------------------------------------------------------------------------------


def lock_after_failure(failures: int, now: datetime) -> datetime | None:
    """When the payment password unlocks after the ``failures``-th wrong try in a row, or None."""
    if failures < MAX_PAYMENT_PASSWORD_TRIES:
        return None
    return now + PAYMENT_PASSWORD_LOCK


def normalise_name(name: str) -> str:
    """The name as compared and stored: NFKC, inner whitespace collapsed, ends stripped."""
    return " ".join(unicodedata.normalize("NFKC", name).split())


def check_name(name: str) -> str:
    """The normalised name; raises InvalidName for an empty, too long or oddly written one."""
    normalised = normalise_name(name)
    if not MIN_NAME_CHARS <= len(normalised) <= MAX_NAME_CHARS or _NAME_PATTERN.fullmatch(normalised) is None:
        raise InvalidName(
            f"name is {MIN_NAME_CHARS}–{MAX_NAME_CHARS} characters of Chinese (with ·) or Latin letters",
            param="name",
        )
    return normalised


def check_external_id(external_id: str) -> None:
    if EXTERNAL_ID_PATTERN.fullmatch(external_id) is None:
        raise InvalidExternalId("external_id is 1–64 characters of A–Z a–z 0–9 _ . : -", param="external_id")


def check_login_password(password: str) -> None:
    """8–64 characters with at least one letter and one digit."""
    long_enough = MIN_LOGIN_PASSWORD_CHARS <= len(password) <= MAX_LOGIN_PASSWORD_CHARS
    mixed = any(c.isalpha() for c in password) and any(c.isdigit() for c in password)
    if not (long_enough and mixed):
        raise InvalidLoginPassword(
            f"the login password is {MIN_LOGIN_PASSWORD_CHARS}–{MAX_LOGIN_PASSWORD_CHARS} characters "
            "with letters and digits",
            param="login_password",
        )


def check_payment_password(password: str) -> None:
    """Six digits, not all the same and not a run (123456, 654321): those are guessed first."""
    if PAYMENT_PASSWORD_PATTERN.fullmatch(password) is None:
        raise InvalidPaymentPassword("the payment password is 6 digits", param="payment_password")
    steps = {int(b) - int(a) for a, b in itertools.pairwise(password)}
    if steps in ({0}, {1}, {-1}):
        raise InvalidPaymentPassword(
            "the payment password may not be one digit repeated or a run of digits", param="payment_password"
        )


def mask_id_number(id_number: str) -> str:
    """``1****************2``: the first and the last character, the rest hidden."""
    if len(id_number) < 3:
        return "*" * len(id_number)
    return id_number[0] + "*" * (len(id_number) - 2) + id_number[-1]


def mask_phone(phone: str) -> str:
    """``138****8001``: the operator prefix and the last four digits."""
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_card_number(card_number: str) -> str:
    """``621799*********0014``: the first six digits (the BIN) and the last four."""
    if len(card_number) < 11:
        return "*" * len(card_number)
    return card_number[:6] + "*" * (len(card_number) - 10) + card_number[-4:]
