"""Who holds a card, and whether the four elements (card, name, ID, phone) a partner sent match.

Quick pay at every bank binds a card only when the name, ID number and phone match the bank's
own record of the card holder (research/protocols.md §3.1, §9). The comparison rules live here
so HBB and JHB agree: names after NFKC and trimming, IDs with the check letter upper-cased.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from banksim.core.books import AccountKind, AccountStatus, Books
from banksim.core.cards import bank_of, is_well_formed


@dataclass(frozen=True, slots=True)
class Cardholder:
    card_no: str
    name: str
    id_number: str
    phone: str
    is_frozen: bool

    def __repr__(self) -> str:
        # Card numbers, ID numbers and phones never reach logs in full.
        return f"Cardholder(card=…{self.card_no[-4:]}, frozen={self.is_frozen})"


def cardholder(books: Books, bank_code: str, card_no: str) -> Cardholder | None:
    """The holder of an open card issued by `bank_code`, or None when the card is not valid here."""
    if not is_well_formed(card_no) or bank_of(card_no) != bank_code:
        return None
    account = books.account(card_no)
    if account is None or account.kind is not AccountKind.CARD or account.status is AccountStatus.CLOSED:
        return None
    customer = books.customer(account.id_number) if account.id_number else None
    if customer is None:
        return None
    return Cardholder(
        card_no=card_no,
        name=customer.name,
        id_number=customer.id_number,
        phone=customer.phone,
        is_frozen=account.status is AccountStatus.FROZEN,
    )


def same_name(a: str, b: str) -> bool:
    return _normal_name(a) == _normal_name(b)


def same_id_number(a: str, b: str) -> bool:
    return a.strip().upper() == b.strip().upper()


def elements_match(holder: Cardholder, *, name: str, id_number: str, phone: str) -> bool:
    """All three personal elements agree with the bank's record (the card is the fourth)."""
    return (
        same_name(holder.name, name) and same_id_number(holder.id_number, id_number) and holder.phone == phone.strip()
    )


def mask_phone(phone: str) -> str:
    """`13800138001` → `138****8001`, the way banks show a reserved phone."""
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def _normal_name(name: str) -> str:
    return "".join(unicodedata.normalize("NFKC", name).split())
