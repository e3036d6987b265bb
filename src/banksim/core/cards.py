"""Card numbers: Luhn check, BIN routing between the simulated banks, and masking for logs.

Every simulated card is 19 digits and Luhn-valid (BANKS.md "Card BINs"). Card numbers never
appear in full in logs or pages other than the payer's own; `mask` gives first 6 / last 4.
"""

from __future__ import annotations

BIN_TO_BANK: dict[str, str] = {"621799": "HBB", "622799": "JHB", "623099": "BCB"}
CARD_LENGTH = 19


def luhn_is_valid(number: str) -> bool:
    if not number.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def bank_of(card_no: str) -> str | None:
    """The code of the simulated bank that issued `card_no`, or None for a foreign card."""
    return BIN_TO_BANK.get(card_no[:6])


def is_well_formed(card_no: str) -> bool:
    return len(card_no) == CARD_LENGTH and luhn_is_valid(card_no)


def mask(card_no: str) -> str:
    """First 6 and last 4 digits, the rest as asterisks (the industry's display rule)."""
    if len(card_no) <= 10:
        return "*" * len(card_no)
    return card_no[:6] + "*" * (len(card_no) - 10) + card_no[-4:]
