"""Validators for what payers type: resident ID numbers, mainland mobile numbers and card numbers.

They use ``python-stdnum`` (GB 11643 check character, birth date and region code) and
``phonenumbers`` (current CN mobile segments), so they live here rather than in the pure domain
(research/protocols.md §9). Each returns the canonical form or raises the domain's named error,
whose message never repeats the number.
"""

from __future__ import annotations

import phonenumbers
from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from tianpay.domain.errors import DomainError
from tianpay.domain.member import InvalidIdNumber, InvalidPhone

MIN_CARD_DIGITS = 16
MAX_CARD_DIGITS = 19


class InvalidCardNumber(DomainError):
    code = "card_number_invalid"


def valid_id_number(raw: str) -> str:
    """The 18-character resident ID number (upper-case X); InvalidIdNumber otherwise.

    15-digit legacy numbers carry no check character and are refused: new accounts need the
    18-character number.
    """
    compact = ric.compact(raw) if isinstance(raw, str) else ""
    if len(compact) != 18:
        raise InvalidIdNumber("id_number is an 18-character resident ID number", param="id_number")
    try:
        return str(ric.validate(compact))
    except ValidationError:
        raise InvalidIdNumber(
            "id_number fails its check character, birth date or region code", param="id_number"
        ) from None


def valid_cn_mobile(raw: str) -> str:
    """The 11-digit mainland mobile number (``+86``/``86`` prefixes and spaces removed)."""
    try:
        parsed = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        raise InvalidPhone("phone is a mainland China mobile number", param="phone") from None
    mobile_types = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    if (
        parsed.country_code != 86
        or not phonenumbers.is_valid_number(parsed)
        or phonenumbers.number_type(parsed) not in mobile_types
    ):
        raise InvalidPhone("phone is a mainland China mobile number", param="phone")
    return str(parsed.national_number)


def valid_card_number(raw: str) -> str:
    """16–19 digits with a correct Luhn check digit (CUP answer 14 covers a bad one)."""
    compact = "".join(raw.split()) if isinstance(raw, str) else ""
    if not compact.isdigit() or not MIN_CARD_DIGITS <= len(compact) <= MAX_CARD_DIGITS or not luhn.is_valid(compact):
        raise InvalidCardNumber("card_number is 16–19 digits with a valid check digit", param="card_number")
    return compact
