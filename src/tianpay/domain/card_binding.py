"""Card bindings (绑卡): a member's bank card checked by its bank with four elements and an SMS code.

The lifecycle is a transition table (DESIGN.md §5): ``applied`` (the bank texted a code) →
``bound`` | ``failed`` | ``expired``; ``bound`` → ``unbound``. The input rules (BIN → bank, Luhn,
resident ID check digit, mainland mobile, name) live here so every entry point refuses alike.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from tianpay.domain.errors import DomainError, IllegalTransition


class BindingStatus(enum.StrEnum):
    APPLIED = "applied"
    BOUND = "bound"
    FAILED = "failed"
    EXPIRED = "expired"
    UNBOUND = "unbound"

    @property
    def is_final(self) -> bool:
        return self in (BindingStatus.FAILED, BindingStatus.EXPIRED, BindingStatus.UNBOUND)


class BindingEvent(enum.StrEnum):
    CONFIRMED = "confirmed"
    # The bank refused for good (elements mismatch, frozen card, too many wrong codes …).
    REJECTED = "rejected"
    # The SMS code's life ran out before a right code arrived.
    EXPIRED = "expired"
    UNBOUND = "unbound"


TRANSITIONS: Final[Mapping[tuple[BindingStatus, BindingEvent], BindingStatus]] = {
    (BindingStatus.APPLIED, BindingEvent.CONFIRMED): BindingStatus.BOUND,
    (BindingStatus.APPLIED, BindingEvent.REJECTED): BindingStatus.FAILED,
    (BindingStatus.APPLIED, BindingEvent.EXPIRED): BindingStatus.EXPIRED,
    (BindingStatus.BOUND, BindingEvent.UNBOUND): BindingStatus.UNBOUND,
}


def next_state(status: BindingStatus, event: BindingEvent) -> BindingStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(
            f"a card binding that is {status.value} cannot take the event {event.value}", param="status"
        ) from None


# BANKS.md "Card BINs": the first six digits name the issuing bank.
BIN_BANKS: Final[Mapping[str, str]] = {"621799": "HBB", "622799": "JHB", "623099": "BCB"}
# BANKS.md: SMS codes live 5 minutes and allow 5 tries; the platform counts too, so it can tell
# the payer "expired" or "too many tries" whatever words the bank uses.
SMS_CODE_LIFE: Final = timedelta(minutes=5)
SMS_CODE_MAX_TRIES: Final = 5

_CARD = re.compile(r"[0-9]{16,19}")
_SMS_CODE = re.compile(r"[0-9]{6}")
_PHONE = re.compile(r"1[3-9][0-9]{9}")
_ID_18 = re.compile(r"[0-9]{17}[0-9X]")
_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK: Final = "10X98765432"
_NAME = re.compile(r"[\u3400-\u9fff\uf900-\ufaff·A-Za-z ]{2,30}")


class InvalidCardHolder(DomainError):
    """A four-element input that no bank would accept; the message never repeats the value."""

    code = "card_holder_invalid"


class CardNumberInvalid(InvalidCardHolder):
    code = "card_number_invalid"


class IdNumberInvalid(InvalidCardHolder):
    code = "id_number_invalid"


class PhoneInvalid(InvalidCardHolder):
    code = "phone_invalid"


class NameInvalid(InvalidCardHolder):
    code = "name_invalid"


class SmsCodeMalformed(InvalidCardHolder):
    code = "sms_code_invalid"


class CardBankUnsupported(DomainError):
    """The card's bank (from its BIN, or as named) offers no quick pay on this platform."""

    code = "card_bank_unsupported"


class CardAlreadyBound(DomainError):
    code = "card_already_bound"
    kind = "invalid_request_error"


class BindingNotPending(DomainError):
    """A code was sent for a binding that no longer waits for one (bound, failed, expired)."""

    code = "card_binding_not_pending"


class CardNotBound(DomainError):
    """A payment named a card that is not (or no longer) bound."""

    code = "card_not_bound"


def luhn_is_valid(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def check_card_number(card_number: str) -> str:
    """The card number, digits only; raises CardNumberInvalid (research/protocols.md §9: Luhn)."""
    digits = card_number.replace(" ", "")
    if _CARD.fullmatch(digits) is None or not luhn_is_valid(digits):
        raise CardNumberInvalid("card_number is 16–19 digits with a valid check digit", param="card_number")
    return digits


def check_id_number(id_number: str) -> str:
    """An 18-character resident ID with its ISO 7064 MOD 11-2 check character (GB 11643-1999)."""
    value = id_number.strip().upper()
    if _ID_18.fullmatch(value) is None:
        raise IdNumberInvalid("id_number is an 18-character resident ID number", param="id_number")
    total = sum(int(digit) * weight for digit, weight in zip(value[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != value[17]:
        raise IdNumberInvalid("id_number's check character is wrong", param="id_number")
    return value


def check_phone(phone: str) -> str:
    value = phone.strip()
    if _PHONE.fullmatch(value) is None:
        raise PhoneInvalid("phone is the 11-digit mainland mobile number reserved at the bank", param="phone")
    return value


def check_name(name: str) -> str:
    """The name as the bank holds it: NFKC, outer spaces removed (research/protocols.md §9)."""
    value = unicodedata.normalize("NFKC", name).strip()
    if _NAME.fullmatch(value) is None:
        raise NameInvalid("name is 2–30 characters of the holder's name", param="name")
    return value


def check_sms_code(code: str) -> str:
    value = code.strip()
    if _SMS_CODE.fullmatch(value) is None:
        raise SmsCodeMalformed("sms_code is the 6-digit code texted by the bank", param="sms_code")
    return value


def bank_for_card(card_number: str) -> str | None:
    """The issuing bank's code from the card's BIN, or None for a card of no bank we know."""
    return BIN_BANKS.get(card_number[:6])


def mask_card(card_number: str) -> str:
    """First six and last four digits, the rest as ``*`` (the form banks print: 621799*********0014)."""
    return card_number[:6] + "*" * (len(card_number) - 10) + card_number[-4:]


@dataclass(frozen=True, slots=True)
class CardBinding:
    """One binding of one card for one member. Sealed values are opaque here (the vault opens them)."""

    id: str
    member_id: str
    merchant_id: str | None
    bank: str
    card_masked: str
    card_fingerprint: str
    status: BindingStatus
    created_at: datetime
    updated_at: datetime
    sms_expires_at: datetime
    card_number_sealed: str = field(repr=False)
    # The other three elements, kept sealed only until the binding ends (HBB asks for them again at
    # the confirm step); cleared once bound, failed or expired.
    holder_sealed: str | None = field(default=None, repr=False)
    # The bank's token between apply and confirm (JHB ``token``), then the card token (HBB
    # ``token``, JHB ``no_agree``) once bound.
    bank_token_sealed: str | None = field(default=None, repr=False)
    sms_tries: int = 0
    failure_code: str | None = None
    bound_at: datetime | None = None
    unbound_at: datetime | None = None

    def moved_to(self, event: BindingEvent, now: datetime) -> CardBinding:
        status = next_state(self.status, event)
        holder = self.holder_sealed if status is BindingStatus.APPLIED else None
        return replace(self, status=status, updated_at=now, holder_sealed=holder)

    def sms_expired_at(self, now: datetime) -> bool:
        return now >= self.sms_expires_at

    @property
    def sms_tries_left(self) -> int:
        return max(SMS_CODE_MAX_TRIES - self.sms_tries, 0)
