"""Sealing personal numbers for storage: validate, fingerprint, encrypt, mask, in one call.

Every service that stores an ID number, a phone or a card number goes through here, so each is kept
the same way: AES-256-GCM ciphertext, keyed HMAC-SHA256 fingerprint for look-ups, masked copy for
display. ``reveal`` is for the few places that must send the number on (a bank, an SMS).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from tianpay.domain.member import SealedPii, mask_card_number, mask_id_number, mask_phone
from tianpay.ports.members import PiiCipher
from tianpay.services.validation import valid_card_number, valid_cn_mobile, valid_id_number


class PiiKind(enum.StrEnum):
    ID_NUMBER = "id_number"
    PHONE = "phone"
    CARD_NUMBER = "card_number"


def seal_id_number(cipher: PiiCipher, raw: str) -> SealedPii:
    """Validates (GB 11643) and seals a resident ID number; raises InvalidIdNumber."""
    return _seal(cipher, PiiKind.ID_NUMBER, valid_id_number(raw), mask_id_number)


def seal_phone(cipher: PiiCipher, raw: str) -> SealedPii:
    """Validates (CN mobile) and seals a phone number; raises InvalidPhone."""
    return _seal(cipher, PiiKind.PHONE, valid_cn_mobile(raw), mask_phone)


def seal_card_number(cipher: PiiCipher, raw: str) -> SealedPii:
    """Validates (16–19 digits, Luhn) and seals a card number; raises InvalidCardNumber."""
    return _seal(cipher, PiiKind.CARD_NUMBER, valid_card_number(raw), mask_card_number)


def id_number_fingerprint(cipher: PiiCipher, raw: str) -> str:
    return cipher.fingerprint(PiiKind.ID_NUMBER, valid_id_number(raw))


def phone_fingerprint(cipher: PiiCipher, raw: str) -> str:
    return cipher.fingerprint(PiiKind.PHONE, valid_cn_mobile(raw))


def card_number_fingerprint(cipher: PiiCipher, raw: str) -> str:
    return cipher.fingerprint(PiiKind.CARD_NUMBER, valid_card_number(raw))


def reveal(cipher: PiiCipher, kind: PiiKind, sealed: SealedPii) -> str:
    """The number in clear, for sending it on; never log or render what this returns."""
    return cipher.decrypt(kind, sealed.ciphertext, sealed.fingerprint)


def _seal(cipher: PiiCipher, kind: PiiKind, value: str, mask: Callable[[str], str]) -> SealedPii:
    fingerprint = cipher.fingerprint(kind, value)
    return SealedPii(cipher.encrypt(kind, value, fingerprint), fingerprint, mask(value))
