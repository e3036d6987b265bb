"""The merchant's and the payers' side of a fault scenario: orders, cashier payments, refunds, payouts.

Payers are browsers made of httpx (``demo_payer.Payer``) that go through the cashier and the bank's
own pages; the merchant signs every API call with the SDK. Order numbers carry a per-process counter
so concurrent payers never collide.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx

from tests.faults.cluster import HANG_S, Cluster, wait_until
from tianpay.entrypoints.demo_payer import Leaves, Payer
from tianpay_sdk.errors import TianpayError

_numbers = itertools.count(1)


def order_number(kind: str) -> str:
    return f"fault-{kind}-{time.time_ns()}-{next(_numbers)}"


def create_cashier_payment(cluster: Cluster, amount_minor: int, *, serve: str = "serve-1") -> dict[str, Any]:
    with cluster.client(serve) as client:
        payment: dict[str, Any] = client.payments.create(
            out_trade_no=order_number("pay"), amount=amount_minor, currency="CNY", method="cashier",
            subject="津门好物 · 故障演练", return_url="https://shop.example/return",
        )  # fmt: skip
    return payment


def pay_at_cashier(cluster: Cluster, amount_minor: int, bank: str, *, serve: str = "serve-1",
                   leaves: Leaves = Leaves.RETURNS) -> str:
    """Creates a payment and pays it at ``bank`` as a payer would; returns the payment id.

    Whatever the payer's browser meets (a bank that holds the request, a platform process killed
    under it) is the scenario's point, so it is swallowed here: the books decide what happened.
    """
    payment = create_cashier_payment(cluster, amount_minor, serve=serve)
    try:
        with Payer(timeout_s=HANG_S + 10) as payer:
            payer.pay(str(payment["cashier_url"]), bank, leaves)
    except Exception:  # the outcome is judged from the books, not from the page
        pass
    return str(payment["id"])


def refund_when_paid(cluster: Cluster, payment_id: str, amount_minor: int, *, serve: str = "serve-1",
                     timeout_s: float = 60.0) -> str | None:
    """Refunds ``amount_minor`` of a payment once it has succeeded; None if it never did."""
    with cluster.client(serve) as client:
        try:
            wait_until(lambda: client.payments.retrieve(payment_id)["status"] in ("succeeded", "failed", "closed"),
                       timeout_s=timeout_s, what=f"{payment_id} final")  # fmt: skip
        except AssertionError:
            return None
        if client.payments.retrieve(payment_id)["status"] != "succeeded":
            return None
        refund: dict[str, Any] = client.refunds.create(
            payment_id, out_refund_no=order_number("rfd"), amount=amount_minor, reason="fault drill"
        )
    return str(refund["id"])


def try_call(action: Any) -> Any:
    """Runs one merchant call against a platform that may be dying; None when it failed."""
    try:
        return action()
    except (TianpayError, OSError, httpx.HTTPError):
        return None


# ---- account mode: a member with cards bound at HBB and JHB (BANKS.md's 张伟) ---------------------------

MEMBER_NAME = "张伟"
MEMBER_ID_NUMBER = "110105198503120012"  # BANKS.md's published test identity
MEMBER_PHONE = "13800138001"
MEMBER_CARDS = {"HBB": "6217990000000000014", "JHB": "6227990000000000013"}
PAYMENT_PASSWORD = "135792"


def member_with_cards(cluster: Cluster, *, serve: str = "serve-1") -> tuple[str, dict[str, str]]:
    """Registers 张伟, binds both cards with the banks' SMS codes and sets a payment password."""
    with cluster.client(serve) as client:
        member = client.members.create(external_id=order_number("member"), name=MEMBER_NAME,
                                       id_number=MEMBER_ID_NUMBER, phone=MEMBER_PHONE)  # fmt: skip
        member_id = str(member["id"])
        cards: dict[str, str] = {}
        for bank, number in MEMBER_CARDS.items():
            applied = client.members.add_card(member_id, card_number=number, name=MEMBER_NAME,
                                              id_number=MEMBER_ID_NUMBER, phone=MEMBER_PHONE, bank=bank)  # fmt: skip
            texts = httpx.get(cluster.bank_urls[bank] + "/_sim/sms", params={"phone": MEMBER_PHONE}, timeout=10).json()
            confirmed = client.card_bindings.confirm(str(applied["id"]), sms_code=str(texts[0]["code"]))
            cards[bank] = str(confirmed.get("card", confirmed)["id"])
        client.request("POST", f"/v1/members/{member_id}/payment-password",
                       json={"payment_password": PAYMENT_PASSWORD})  # fmt: skip
    return member_id, cards


def quick_pay(cluster: Cluster, card_id: str, amount_minor: int, *, serve: str = "serve-1") -> str:
    """A quick-pay order confirmed with ``card_id``; returns the payment id whatever the bank did."""
    with cluster.client(serve) as client:
        payment = client.payments.create(out_trade_no=order_number("qp"), amount=amount_minor, currency="CNY",
                                         method="quick_pay", subject="津门好物 · 快捷支付")  # fmt: skip
        try_call(lambda: client.payments.confirm(str(payment["id"]), card_id=card_id,
                                                 payment_password=PAYMENT_PASSWORD))  # fmt: skip
    return str(payment["id"])
