"""Account mode in ``tianpay demo``: a member, bound cards, a wallet, quick pay and a failover.

Played after the gateway tour on the same instance with the demo merchant's SDK client: register
张伟 implicitly, bind his HBB and JHB cards (codes read from each bank's SMS outbox), set his payment
password, top up his wallet by online banking at HBB through the wallet pages, pay one order from the
wallet and one by quick pay, pay one while HBB refuses new orders (the router fails over to JHB),
and refund the wallet payment back to the wallet. Each step becomes a row held against what the
platform, the merchant's webhooks, the banks' books and the wallet balance say.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from rich.table import Table

from tianpay.entrypoints.demo_payer import Payer, PayerStuck, the_form
from tianpay.services import wallet

if TYPE_CHECKING:
    from tianpay.entrypoints.demo import Instance

NAME = "张伟"
ID_NUMBER = "110105198503120012"  # BANKS.md's published test identity; never printed unmasked
PHONE = "13800138001"
CARDS = {"HBB": "6217990000000000014", "JHB": "6227990000000000013"}
PAYMENT_PASSWORD = "135792"  # noqa: S105 - the demo member's password, set by the demo itself
LOGIN_PASSWORD = "Demo2026wallet"  # noqa: S105 - the demo member's wallet sign-in, set by the demo
TOP_UP_MINOR = 50_000
WALLET_PAY_MINOR = 12_300
QUICK_PAY_MINOR = 8_888
FAILOVER_MINOR = 6_666
SETTLE_TIMEOUT_S = 20.0
_SIX_DIGITS = re.compile(r"(?<!\d)(\d{6})(?!\d)")


class Kind(enum.Enum):
    BINDING = "binding"
    TOP_UP = "top_up"
    PAYMENT = "payment"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the member did, what must come of it, and the wallet balance seen right after it."""

    title: str
    via: str
    amount_minor: int
    kind: Kind
    subject_id: str
    expected_status: str
    expected_webhooks: tuple[str, ...]
    # Signed movements on our reserve account at each bank (in positive, out negative).
    expected_moves: tuple[tuple[str, int], ...]
    expected_wallet_minor: int
    wallet_minor: int


@dataclass(frozen=True, slots=True)
class Seen:
    status: str
    detail: str
    webhooks: tuple[str, ...]
    moves: tuple[tuple[str, int], ...]
    notices: int

    def agrees(self, step: Step) -> bool:
        return (
            self.status == step.expected_status
            and self.webhooks == step.expected_webhooks
            and self.moves == step.expected_moves
            and step.wallet_minor == step.expected_wallet_minor
        )


def yuan(amount_minor: int) -> str:
    sign = "-" if amount_minor < 0 else ""
    amount = abs(amount_minor)
    return f"{sign}¥{amount // 100:,}.{amount % 100:02d}"


def mask_card(number: str) -> str:
    """The BIN and the last four digits only (the table never shows a whole card number)."""
    return f"{number[:6]}…{number[-4:]}"


# ---- the member's steps ------------------------------------------------------------------------------------


@dataclass
class Member:
    """The member as the merchant knows it: its id and its bound cards (card id per bank)."""

    member_id: str
    cards: dict[str, str]


def play_account_mode(instance: Instance, run_tag: str, say: Any) -> list[Step]:
    """Plays every account-mode step in order; ``say`` prints one progress line."""
    client = instance.client
    registered = client.members.create(external_id=f"demo-{run_tag}-zhangwei", name=NAME, id_number=ID_NUMBER,
                                       phone=PHONE)  # fmt: skip
    member = Member(str(registered["id"]), {})
    say(f"member {member.member_id} registered (phone {registered['phone']}, ID {registered['id_number']})")
    steps = [bind_card(instance, member, bank) for bank in ("HBB", "JHB")]
    client.request("POST", f"/v1/members/{member.member_id}/payment-password",
                   json={"payment_password": PAYMENT_PASSWORD})  # fmt: skip
    say("payment password set")
    steps.append(top_up_at_hbb(instance, member))
    say(f"wallet topped up by online banking at HBB: {yuan(TOP_UP_MINOR)}")
    paid_from_wallet = pay_from_wallet(instance, member, run_tag)
    steps.append(paid_from_wallet)
    steps.append(pay_by_quick_pay(instance, member, run_tag, "quick pay, HBB card", QUICK_PAY_MINOR, "qp"))
    with hbb_refusing_new_orders(instance):
        steps.append(pay_by_quick_pay(instance, member, run_tag, "failover HBB → JHB",
                                      FAILOVER_MINOR, "failover", failover=True))  # fmt: skip
    say("quick pay at HBB, then a failover to JHB while HBB refused new orders (fault reset)")
    steps.append(refund_wallet_payment(instance, member, paid_from_wallet, run_tag))
    return steps


def bind_card(instance: Instance, member: Member, bank: str) -> Step:
    card_number = CARDS[bank]
    applied = instance.client.members.add_card(member.member_id, card_number=card_number, name=NAME,
                                               id_number=ID_NUMBER, phone=PHONE, bank=bank)  # fmt: skip
    code = bank_sms_code(instance, bank)
    confirmed = instance.client.card_bindings.confirm(str(applied["id"]), sms_code=code)
    card = confirmed.get("card", confirmed)
    member.cards[bank] = str(card["id"])
    return Step(f"bind {mask_card(card_number)}", bank, 0, Kind.BINDING, str(card["id"]), "bound", (), (),
                0, wallet_of(instance, member))  # fmt: skip


def bank_sms_code(instance: Instance, bank: str) -> str:
    """The newest code the bank texted to the reserved phone (its outbox, as the payer's phone)."""
    messages = httpx.get(instance.bank_urls[bank] + "/_sim/sms", params={"phone": PHONE}, timeout=10.0).json()
    if not messages or not messages[0].get("code"):
        raise PayerStuck(f"{bank} texted no code to the reserved phone")
    return str(messages[0]["code"])


def top_up_at_hbb(instance: Instance, member: Member) -> Step:
    """Signs up in the wallet with the member's phone, then tops up at HBB through the wallet pages."""
    api = instance.summary["api"]
    with Payer(timeout_s=30.0) as payer:
        sign_up_in_wallet(payer.browser, api)
        page = _ok(payer.browser.get(api + "/wallet/top-up"))
        form = the_form(page, form_id="top-up")
        amount = f"{TOP_UP_MINOR // 100}.{TOP_UP_MINOR % 100:02d}"
        redirect = _ok(payer.browser.post(form.action, data={**form.fields, "amount": amount, "bank": "HBB"}))
        payer.pay_at_bank(the_form(redirect, form_id="bank-form"), "HBB")
    top_up_id = wait_for_top_up(instance, member)
    return Step("top-up, online bank", "HBB", TOP_UP_MINOR, Kind.TOP_UP, top_up_id, "succeeded", (),
                (("HBB", TOP_UP_MINOR),), TOP_UP_MINOR, wallet_of(instance, member))  # fmt: skip


def sign_up_in_wallet(browser: httpx.Client, api: str) -> None:
    """The wallet's sign-up with the phone the merchant registered: the proven phone claims that member."""
    page = _ok(browser.get(api + "/wallet/register"))
    send = the_form(page, form_id="send-code")
    page = _ok(browser.post(send.action, data={**send.fields, "phone": PHONE}))
    register = the_form(page, form_id="register")
    code = platform_sms_code(browser, api)
    _ok(browser.post(register.action, data={**register.fields, "sms_code": code, "login_password": LOGIN_PASSWORD}))


def platform_sms_code(browser: httpx.Client, api: str) -> str:
    """The platform's own text to the member (the development outbox, switched on for the demo)."""
    messages = _ok(browser.get(api + "/wallet/_dev/sms", params={"phone": PHONE})).json()["messages"]
    found = _SIX_DIGITS.search(messages[0]["text"]) if messages else None
    if found is None:
        raise PayerStuck("the platform texted no code to the member's phone")
    return found.group(1)


def wait_for_top_up(instance: Instance, member: Member) -> str:
    """The credited top-up's id (the wallet history names it), once the platform has applied HBB's result."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        lines = wallet.wallet_history(instance.container.uow, member.member_id)
        credited = [line.source_id for line in lines if line.event == "wallet_top_up.succeeded"]
        if credited:
            return credited[0]
        time.sleep(0.5)
    raise PayerStuck("the wallet top-up was never credited")


def pay_from_wallet(instance: Instance, member: Member, run_tag: str) -> Step:
    payment = create_order(instance, run_tag, "wallet", WALLET_PAY_MINOR, "wallet")
    instance.client.payments.confirm(str(payment["id"]), member_id=member.member_id,
                                     payment_password=PAYMENT_PASSWORD)  # fmt: skip
    return Step("pay from the wallet", "wallet", WALLET_PAY_MINOR, Kind.PAYMENT, str(payment["id"]), "succeeded",
                ("payment.succeeded",), (), TOP_UP_MINOR - WALLET_PAY_MINOR, wallet_of(instance, member))  # fmt: skip


def pay_by_quick_pay(
    instance: Instance, member: Member, run_tag: str, title: str, amount_minor: int, key: str, *, failover: bool = False
) -> Step:
    """Pays with the HBB card; with HBB refusing, the router must charge the member's JHB card instead."""
    payment = create_order(instance, run_tag, key, amount_minor, "quick_pay")
    instance.client.payments.confirm(str(payment["id"]), card_id=member.cards["HBB"],
                                     payment_password=PAYMENT_PASSWORD)  # fmt: skip
    via, bank = ("HBB→JHB", "JHB") if failover else ("HBB", "HBB")
    return Step(title, via, amount_minor, Kind.PAYMENT, str(payment["id"]), "succeeded", ("payment.succeeded",),
                ((bank, amount_minor),), TOP_UP_MINOR - WALLET_PAY_MINOR, wallet_of(instance, member))  # fmt: skip


def refund_wallet_payment(instance: Instance, member: Member, paid: Step, run_tag: str) -> Step:
    refund = instance.client.refunds.create(paid.subject_id, out_refund_no=f"demo-{run_tag}-wallet-refund",
                                            amount=paid.amount_minor, reason="demo")  # fmt: skip
    return Step("refund to the wallet", "wallet", paid.amount_minor, Kind.REFUND, str(refund["id"]), "succeeded",
                ("refund.succeeded",), (), TOP_UP_MINOR, wallet_of(instance, member))  # fmt: skip


def create_order(instance: Instance, run_tag: str, key: str, amount_minor: int, method: str) -> dict[str, Any]:
    payment: dict[str, Any] = instance.client.payments.create(
        out_trade_no=f"demo-{run_tag}-acct-{key}", amount=amount_minor, currency="CNY", method=method,
        subject=f"津门好物 · account mode ({key})", return_url=instance.site.return_url(key),
    )  # fmt: skip
    return payment


@contextmanager
def hbb_refusing_new_orders(instance: Instance) -> Iterator[None]:
    """HBB answers every new payment with its own 91 meanwhile; reset even if a step fails."""
    faults = instance.bank_urls["HBB"] + "/_sim/faults"
    httpx.post(faults, json={"refuse_new_orders": True}, timeout=10.0).raise_for_status()
    try:
        yield
    finally:
        httpx.post(faults, json={"reset": True}, timeout=10.0).raise_for_status()


def wallet_of(instance: Instance, member: Member) -> int:
    return instance.ledger_balance(f"member:{member.member_id}:wallet")


def _ok(page: httpx.Response) -> httpx.Response:
    if page.status_code != 200:
        raise PayerStuck(f"{page.request.method} {page.url.path} answered {page.status_code}")
    return page


# ---- observing and reporting -------------------------------------------------------------------------------


def observe_step(instance: Instance, step: Step, states: dict[str, dict[str, Any]]) -> Seen:
    webhooks = tuple(str(event["type"]) for event in instance.site.events_about(step.subject_id))
    if step.kind is Kind.BINDING:
        return Seen(binding_status(instance, step), "", webhooks, (), 0)
    if step.kind is Kind.REFUND:
        status = str(instance.client.refunds.retrieve(step.subject_id)["status"])
        refs, detail = [step.subject_id], ""
    else:
        status, refs, detail = payment_facts(instance, step.subject_id)
    moves, notices = bank_moves(instance, states, refs)
    return Seen(status, detail, webhooks, moves, notices)


def binding_status(instance: Instance, step: Step) -> str:
    listed = instance.client.request("GET", f"/v1/members/{member_of_binding(instance, step)}/cards")
    cards = listed.get("data", []) if isinstance(listed, dict) else []
    return next((str(c["status"]) for c in cards if c["id"] == step.subject_id), "missing")


def member_of_binding(instance: Instance, step: Step) -> str:
    with instance.container.uow() as uow:
        binding = uow.card_bindings.get(step.subject_id)
    return binding.member_id if binding is not None else ""


def payment_facts(instance: Instance, payment_id: str) -> tuple[str, list[str], str]:
    """Status, attempt ids and, for a failover, the attempts in a few words ("HBB 91 → JHB")."""
    with instance.container.uow() as uow:
        payment = uow.payments.get(payment_id)
        attempts = list(uow.payments.attempts_of(payment_id))
    status = payment.status.value if payment is not None else "missing"
    detail = ""
    if len(attempts) > 1:
        # A failover in a few words: every refusing bank's code, then who took the payment.
        detail = " → ".join(f"{a.bank} {a.failure_code}" if a.failure_code else a.bank for a in attempts)
    return status, [a.id for a in attempts], detail


def bank_moves(
    instance: Instance, states: dict[str, dict[str, Any]], refs: list[str]
) -> tuple[tuple[tuple[str, int], ...], int]:
    """Per bank, the signed movement on our reserve naming one of ``refs``, and the notices about them."""
    flat = [ref.replace("_", "") for ref in refs]
    moves: list[tuple[str, int]] = []
    notices = 0
    for bank, state in sorted(states.items()):
        reserve = instance.reserves[bank]
        mine = [t for t in state["transfers"] if any(ref in t["memo"].replace("_", "") for ref in flat)]
        moved = sum(int(t["amount_minor"]) for t in mine if t["credit_acc"] == reserve)
        moved -= sum(int(t["amount_minor"]) for t in mine if t["debit_acc"] == reserve)
        if moved:
            moves.append((bank, moved))
        bank_refs = [t["bank_ref"] for t in mine]
        notices += sum(1 for n in state["notifications"]
                       if n["status"] == "delivered" and any(r in n["event_ref"] for r in bank_refs))  # fmt: skip
    return tuple(moves), notices


def settle_account(instance: Instance, steps: list[Step]) -> dict[str, Seen]:
    """Polls until every step agrees (webhooks arrive after the answers) or time is up."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        states = instance.bank_states()
        seen = {step.subject_id: observe_step(instance, step, states) for step in steps}
        if all(seen[s.subject_id].agrees(s) for s in steps) or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def describe_expected(step: Step) -> str:
    count = len(step.expected_webhooks)
    webhooks = f"{count or 'no'} webhook{'s' if count != 1 else ''}"
    if step.kind is Kind.BINDING:
        return step.expected_status
    return f"{step.expected_status} · {webhooks} · {yuan(step.expected_wallet_minor)}"


def describe_bank(step: Step, seen: Seen) -> str:
    if step.kind is Kind.BINDING:
        return f"{step.via} texted a code"
    if not seen.moves:
        return "no bank (ledger)"
    moved = " · ".join(f"{bank} {yuan(abs(m))} {'in' if m > 0 else 'out'}" for bank, m in seen.moves)
    return f"{moved} · {seen.notices} notice{'s' if seen.notices != 1 else ''}"


def account_table(steps: list[Step], seen: dict[str, Seen]) -> Table:
    table = Table(title="Account mode, end to end (member 张伟)", title_justify="left")
    for name in ("step", "amount", "expected (wallet)", "platform", "webhooks received", "bank's record", "wallet",
                 "ok"):  # fmt: skip
        table.add_column(name, justify="right" if name in ("amount", "wallet") else "left", no_wrap=True)
    for step in steps:
        observed = seen[step.subject_id]
        table.add_row(
            step.title,
            yuan(step.amount_minor) if step.amount_minor else "—",
            describe_expected(step),
            observed.status + (f" ({observed.detail})" if observed.detail else ""),
            ", ".join(observed.webhooks) or "none",
            describe_bank(step, observed),
            yuan(step.wallet_minor),
            "[green]✓[/green]" if observed.agrees(step) else "[red]✗[/red]",
        )
    return table
