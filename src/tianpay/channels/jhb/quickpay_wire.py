"""JHB's quick-pay messages (协议支付) as JHB names them: ``bind.apply``, ``bind.confirm``, ``unbind``, ``pay``.

Bodies travel inside the SM4-sealed envelope, so the four elements go in clear inside it
(docs/banks/jhb.md §11). Readers are pure and raise ``WireError`` for a body of the wrong shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tianpay.channels.jhb.wire import WireError, read_ret_code

ID_TYPE_RESIDENT_ID = "0"


@dataclass(frozen=True, slots=True)
class BindApply:
    card_no: str = field(repr=False)
    acct_name: str = field(repr=False)
    id_no: str = field(repr=False)
    bind_mob: str = field(repr=False)
    user_id: str

    def to_body(self) -> dict[str, str]:
        return {
            "card_no": self.card_no,
            "acct_name": self.acct_name,
            "id_type": ID_TYPE_RESIDENT_ID,
            "id_no": self.id_no,
            "bind_mob": self.bind_mob,
            "user_id": self.user_id,
        }


@dataclass(frozen=True, slots=True)
class BindConfirm:
    token: str = field(repr=False)
    verify_code: str = field(repr=False)

    def to_body(self) -> dict[str, str]:
        return {"token": self.token, "verify_code": self.verify_code}


@dataclass(frozen=True, slots=True)
class Unbind:
    no_agree: str = field(repr=False)

    def to_body(self) -> dict[str, str]:
        return {"no_agree": self.no_agree}


@dataclass(frozen=True, slots=True)
class Pay:
    no_agree: str = field(repr=False)
    out_trade_no: str
    amount: str
    subject: str
    notify_url: str

    def to_body(self) -> dict[str, str]:
        return {
            "no_agree": self.no_agree,
            "out_trade_no": self.out_trade_no,
            "amount": self.amount,
            "subject": self.subject,
            "notify_url": self.notify_url,
        }


@dataclass(frozen=True, slots=True)
class BindAnswer:
    """``bind.apply`` (``token``) or ``bind.confirm`` (``no_agree``) answers."""

    ret_code: str
    ret_msg: str
    token: str = field(repr=False)
    no_agree: str = field(repr=False)


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WireError(f"{name} must be a string")
    return value


def read_bind_answer(body: Mapping[str, Any]) -> BindAnswer:
    ret_code, ret_msg = read_ret_code(body)
    return BindAnswer(ret_code, ret_msg, token=_text(body, "token"), no_agree=_text(body, "no_agree"))
